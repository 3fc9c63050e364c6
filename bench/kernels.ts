// Kernel benchmark: gemm GFLOP/s at the model's shapes, and time per call of attention,
// RMSNorm, cross-entropy and AdamW; PyTorch (Debian's /usr/bin/python3) side by side when present.
// Usage: npm run bench:kernels [-- --threads N]
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Kernels } from '../src/kernels/api.js';
import { loadNativeKernels, nativeLoadError, referenceKernels } from '../src/kernels/index.js';

const native = loadNativeKernels();
if (!native) {
  console.error(`native kernels unavailable: ${nativeLoadError()}`);
  process.exit(1);
}
const ti = process.argv.indexOf('--threads');
if (ti > 0) native.setThreads(Number(process.argv[ti + 1]));
const threads = native.getThreads();

function rand(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() * 2 - 1;
  return a;
}

/** Median seconds per call, running for at least minTime after one warm-up call. */
function time(fn: () => void, minTime = 0.3): number {
  fn();
  const ts: number[] = [];
  const start = performance.now();
  while (performance.now() - start < minTime * 1000 || ts.length < 3) {
    const t0 = performance.now();
    fn();
    ts.push((performance.now() - t0) / 1000);
  }
  ts.sort((a, b) => a - b);
  return ts[ts.length >> 1]!;
}

type Row = { name: string; ours: number; flops?: number };
const rows: Row[] = [];

// [M, N, K, transA, label]: y = x W^T for the projections, and dW = dY^T X for their gradients.
const N = 1024; // batch 4 x seq 256 tokens
const gemms: [number, number, number, boolean, string][] = [
  [N, 512, 512, false, 'gemm attn proj 1024x512x512'],
  [N, 1376, 512, false, 'gemm ffn up 1024x1376x512'],
  [N, 512, 1376, false, 'gemm ffn down 1024x512x1376'],
  [N, 4096, 512, false, 'gemm lm head 1024x4096x512'],
  [512, 1376, N, true, 'gemm dW (A^T) 512x1376x1024'],
];
function gemmCall(k: Kernels<Float32Array>, M: number, Nn: number, K: number, tA: boolean) {
  const A = rand(M * K), B = rand(Nn * K), C = new Float32Array(M * Nn);
  return () => k.gemm({ transA: tA, transB: true, M, N: Nn, K, alpha: 1, A, aOff: 0, lda: tA ? M : K, strideA: 0,
    B, bOff: 0, ldb: K, strideB: 0, beta: 0, C, cOff: 0, ldc: Nn, strideC: 0, batch: 1 });
}
for (const [M, Nn, K, tA, label] of gemms) rows.push({ name: label, ours: time(gemmCall(native, M, Nn, K, tA)), flops: 2 * M * Nn * K });

function attention(k: Kernels<Float32Array>, B: number, T: number, H: number, Dh: number) {
  const n = B * T * H * Dh;
  const q = rand(n), kk = rand(n), v = rand(n), out = new Float32Array(n), probs = new Float32Array(B * H * T * T);
  const dOut = rand(n), dq = new Float32Array(n), dk = new Float32Array(n), dv = new Float32Array(n);
  const scale = 1 / Math.sqrt(Dh);
  return () => {
    k.attentionForward({ q, k: kk, v, out, probs, keyMask: null, B, T, S: T, H, Hkv: H, Dh, qOffset: 0, scale, causal: true });
    k.attentionBackward({ dOut, q, k: kk, v, probs, dq, dk, dv, B, T, S: T, H, Hkv: H, Dh, scale });
  };
}
rows.push({ name: 'attention fwd+bwd', ours: time(attention(native, 4, 256, 8, 64)) });

{
  const D = 512, x = rand(N * D), w = rand(D), out = new Float32Array(N * D), rstd = new Float32Array(N);
  const g = rand(N * D), dx = new Float32Array(N * D), dw = new Float32Array(D);
  rows.push({ name: 'rmsnorm fwd+bwd', ours: time(() => {
    native.rmsnormForward(x, w, out, rstd, N, D, 1e-5);
    native.rmsnormBackward(g, x, w, rstd, dx, dw, N, D);
  }) });
}
{
  const V = 4096, logits = rand(N * V), lse = new Float32Array(N), d = new Float32Array(N * V);
  const t = Int32Array.from({ length: N }, () => Math.floor(Math.random() * V));
  rows.push({ name: 'cross-entropy fwd+bwd', ours: time(() => {
    native.fill(d, 0, N * V); // the autodiff layer zeroes gradients; torch allocates them
    const { count } = native.crossEntropyForward(logits, t, lse, N, V, -100);
    native.crossEntropyBackward(logits, t, lse, d, N, V, -100, 1 / count);
  }) });
}
{
  const n = 30_000_000, param = rand(n), grad = rand(n), m = new Float32Array(n), v = new Float32Array(n);
  let step = 0;
  rows.push({ name: 'adamw 30M', ours: time(() => native.adamwStep({ param, grad, m, v, n, lr: 1e-3, beta1: 0.9,
    beta2: 0.999, eps: 1e-8, weightDecay: 0.1, step: ++step, gradScale: 1 })) });
}

// PyTorch, if Debian's python3-torch is installed.
let torchTimes: Record<string, number> | null = null;
try {
  const script = join(dirname(fileURLToPath(import.meta.url)), 'kernels_torch.py');
  const shapes = JSON.stringify(gemms);
  torchTimes = JSON.parse(execFileSync('/usr/bin/python3', [script, String(threads), shapes], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
} catch {
  torchTimes = null;
}

console.log(`fedbiot kernels, ${threads} threads${torchTimes ? '' : ' (PyTorch not found: /usr/bin/python3 -c "import torch" failed)'}`);
const pad = (s: string, n: number) => s.padEnd(n);
console.log(pad('op', 32) + pad('ours', 22) + (torchTimes ? pad('torch', 22) + 'torch/ours' : ''));
const fmt = (t: number, flops?: number) => `${(t * 1e3).toFixed(2)} ms` + (flops ? ` ${(flops / t / 1e9).toFixed(0)} GF/s` : '');
for (const r of rows) {
  const tt = torchTimes?.[r.name];
  console.log(pad(r.name, 32) + pad(fmt(r.ours, r.flops), 22) + (tt !== undefined ? pad(fmt(tt, r.flops), 22) + (tt / r.ours).toFixed(2) + 'x' : ''));
}

// Native against the reference on a small case (what the fallback costs).
const ref = referenceKernels<Float32Array>();
const smallN = time(gemmCall(native, 128, 128, 128, false), 0.1), smallR = time(gemmCall(ref, 128, 128, 128, false), 0.1);
const attN = time(attention(native, 1, 64, 2, 32), 0.1), attR = time(attention(ref, 1, 64, 2, 32), 0.1);
console.log(`native vs reference: gemm 128^3 ${(smallR / smallN).toFixed(0)}x faster; attention B1 T64 H2 Dh32 ${(attR / attN).toFixed(0)}x faster`);
