// Kernel benchmark: the CPU's FMA peak, gemm GFLOP/s at every gemm shape of a training step (our
// kernels and OpenBLAS in alternation), and time per call of attention, RMSNorm, cross-entropy and
// AdamW; PyTorch (FEDBIOT_TORCH_PYTHON, default the setup:torch venv) side by side when present.
// Last line: {"peak_gflops", "threads", "gemm_path", "gemm": [{"shape": "MxKxN op", "ours_gflops",
// "torch_gflops", "openblas_gflops", "ours_pct_of_peak", "ours_cpu_pct_of_peak"}, ...],
// "peak_gflops_per_cpu_s"}. The _cpu_ figures divide by this process's CPU time instead of wall time
// (FLOP per CPU-second against the FMA loop's FLOP per CPU-second): on a machine other jobs are using,
// wall time mostly measures the wait for a core, CPU time what the kernel itself costs.
// Usage: npm run bench:kernels [-- --threads N]
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Kernels } from '../src/kernels/api.js';
import {
  gemmPath,
  loadNativeKernels,
  nativeLoadError,
  peakGflops,
  referenceKernels,
  setGemmPath,
} from '../src/kernels/index.js';
import { TORCH_PYTHON } from './torch-python.js';

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

// Every gemm of the reference model's training step (B 4 x T 256 = 1024 tokens, d 512, ffn 1376,
// vocab 4096): forward y = x W^T (NT), input gradient dx = dy W (NN), weight gradient dW = dy^T x
// (TN). [M, N, K, transA, transB]; the shape label is "MxKxN op".
const N = 1024;
const layers: [number, number][] = [
  [512, 512],
  [1376, 512],
  [512, 1376],
  [4096, 512],
]; // [out, in]: q/k/v/o, gate/up, down, lm head
const gemms: [number, number, number, boolean, boolean][] = [];
for (const [o, i] of layers) gemms.push([N, o, i, false, true], [N, i, o, false, false], [o, i, N, true, false]);
// The fused projections run as one gemm each (ops.linearGroup): q/k/v (3 x 512 outputs) and
// gate/up (2 x 1376), forward and input gradient; their weight gradients stay per projection (above).
for (const [o, i] of [
  [3 * 512, 512],
  [2 * 1376, 512],
] as const)
  gemms.push([N, o, i, false, true], [N, i, o, false, false]);
const label = ([M, Nn, K, tA, tB]: (typeof gemms)[number]) => `${M}x${K}x${Nn} ${tA ? 'T' : 'N'}${tB ? 'T' : 'N'}`;
function gemmCall(k: Kernels<Float32Array>, M: number, Nn: number, K: number, tA: boolean, tB = true) {
  const A = rand(M * K),
    B = rand(Nn * K),
    C = new Float32Array(M * Nn);
  return () =>
    k.gemm({
      transA: tA,
      transB: tB,
      M,
      N: Nn,
      K,
      alpha: 1,
      A,
      aOff: 0,
      lda: tA ? M : K,
      strideA: 0,
      B,
      bOff: 0,
      ldb: tB ? K : Nn,
      strideB: 0,
      beta: 0,
      C,
      cOff: 0,
      ldc: Nn,
      strideC: 0,
      batch: 1,
    });
}
/** CPU seconds of this process (all threads) since c0. */
const cpuSince = (c0: NodeJS.CpuUsage) => {
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1e6;
};
/** Best of several short runs: the machine's FMA peak on all threads (load only lowers it), by wall
 * time and per CPU-second. */
let peak = 0,
  peakCpu = 0;
for (let i = 0; i < 5; i++) {
  const c0 = process.cpuUsage(),
    t0 = performance.now();
  const g = peakGflops(4_000_000);
  const gflop = (g * (performance.now() - t0)) / 1000;
  peak = Math.max(peak, g);
  peakCpu = Math.max(peakCpu, gflop / cpuSince(c0));
}
/** Seconds of CPU time (all threads) per call, over calls for at least minTime of wall time. */
function cpuTime(fn: () => void, minTime = 0.1): number {
  fn();
  const start = performance.now(),
    c0 = process.cpuUsage();
  let n = 0;
  while (performance.now() - start < minTime * 1000 || n < 3) {
    fn();
    n++;
  }
  return cpuSince(c0) / n;
}
// Our default path and OpenBLAS timed in alternation, so that load from other processes hits both.
const ownPath = gemmPath();
const gemmRows: { shape: string; ours: number; oursCpu: number; openblas: number; flops: number }[] = [];
for (const g of gemms) {
  const [M, Nn, K, tA, tB] = g;
  const call = gemmCall(native, M, Nn, K, tA, tB);
  let ours = Infinity,
    oursCpu = Infinity,
    ob = Infinity;
  for (let rep = 0; rep < 3; rep++) {
    setGemmPath(ownPath);
    ours = Math.min(ours, time(call, 0.1));
    oursCpu = Math.min(oursCpu, cpuTime(call));
    setGemmPath('openblas');
    ob = Math.min(ob, time(call, 0.1));
  }
  setGemmPath(ownPath);
  gemmRows.push({ shape: label(g), ours, oursCpu, openblas: ob, flops: 2 * M * Nn * K });
  rows.push({ name: `gemm ${label(g)}`, ours, flops: 2 * M * Nn * K });
}

function attention(k: Kernels<Float32Array>, B: number, T: number, H: number, Dh: number) {
  const n = B * T * H * Dh;
  const q = rand(n),
    kk = rand(n),
    v = rand(n),
    out = new Float32Array(n),
    probs = new Float32Array(B * H * T * T);
  const dOut = rand(n),
    dq = new Float32Array(n),
    dk = new Float32Array(n),
    dv = new Float32Array(n);
  const scale = 1 / Math.sqrt(Dh);
  return () => {
    k.attentionForward({
      q,
      k: kk,
      v,
      out,
      probs,
      keyMask: null,
      B,
      T,
      S: T,
      H,
      Hkv: H,
      Dh,
      qOffset: 0,
      scale,
      causal: true,
    });
    k.attentionBackward({ dOut, q, k: kk, v, probs, dq, dk, dv, B, T, S: T, H, Hkv: H, Dh, scale });
  };
}
rows.push({ name: 'attention fwd+bwd', ours: time(attention(native, 4, 256, 8, 64)) });

{
  const D = 512,
    x = rand(N * D),
    w = rand(D),
    out = new Float32Array(N * D),
    rstd = new Float32Array(N);
  const g = rand(N * D),
    dx = new Float32Array(N * D),
    dw = new Float32Array(D);
  rows.push({
    name: 'rmsnorm fwd+bwd',
    ours: time(() => {
      native.rmsnormForward(x, w, out, rstd, N, D, 1e-5);
      native.rmsnormBackward(g, x, w, rstd, dx, dw, N, D);
    }),
  });
}
{
  const V = 4096,
    logits = rand(N * V),
    lse = new Float32Array(N),
    d = new Float32Array(N * V);
  const t = Int32Array.from({ length: N }, () => Math.floor(Math.random() * V));
  rows.push({
    name: 'cross-entropy fwd+bwd',
    ours: time(() => {
      native.fill(d, 0, N * V); // the autodiff layer zeroes gradients; torch allocates them
      const { count } = native.crossEntropyForward(logits, t, lse, N, V, -100);
      native.crossEntropyBackward(logits, t, lse, d, N, V, -100, 1 / count);
    }),
  });
}
{
  const n = 30_000_000,
    param = rand(n),
    grad = rand(n),
    m = new Float32Array(n),
    v = new Float32Array(n);
  let step = 0;
  rows.push({
    name: 'adamw 30M',
    ours: time(() =>
      native.adamwStep({
        param,
        grad,
        m,
        v,
        n,
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weightDecay: 0.1,
        step: ++step,
        gradScale: 1,
      }),
    ),
  });
}

// PyTorch from the venv of npm run setup:torch (or FEDBIOT_TORCH_PYTHON), when present.
let torchTimes: Record<string, number> | null = null;
try {
  const script = join(dirname(fileURLToPath(import.meta.url)), 'kernels_torch.py');
  const shapes = JSON.stringify(gemms.map((g) => [...g, `gemm ${label(g)}`]));
  torchTimes = JSON.parse(
    execFileSync(TORCH_PYTHON, [script, String(threads), shapes], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }),
  );
} catch {
  torchTimes = null;
}

console.log(
  `fedbiot kernels, ${threads} threads, gemm path ${ownPath}, FMA peak ${peak.toFixed(0)} GFLOP/s (${peakCpu.toFixed(0)} per CPU-second)${torchTimes ? '' : ` (PyTorch not found: ${TORCH_PYTHON} -c "import torch" failed)`}`,
);
const pad = (s: string, n: number) => s.padEnd(n);
console.log(pad('op', 32) + pad('ours', 22) + (torchTimes ? pad('torch', 22) + 'torch/ours' : ''));
const fmt = (t: number, flops?: number) =>
  `${(t * 1e3).toFixed(2)} ms` + (flops ? ` ${(flops / t / 1e9).toFixed(0)} GF/s` : '');
for (const r of rows) {
  const tt = torchTimes?.[r.name];
  console.log(
    pad(r.name, 32) +
      pad(fmt(r.ours, r.flops), 22) +
      (tt !== undefined ? pad(fmt(tt, r.flops), 22) + (tt / r.ours).toFixed(2) + 'x' : ''),
  );
}

// Native against the reference on a small case (what the fallback costs).
const ref = referenceKernels<Float32Array>();
const smallN = time(gemmCall(native, 128, 128, 128, false), 0.1),
  smallR = time(gemmCall(ref, 128, 128, 128, false), 0.1);
const attN = time(attention(native, 1, 64, 2, 32), 0.1),
  attR = time(attention(ref, 1, 64, 2, 32), 0.1);
console.log(
  `native vs reference: gemm 128^3 ${(smallR / smallN).toFixed(0)}x faster; attention B1 T64 H2 Dh32 ${(attR / attN).toFixed(0)}x faster`,
);
const gf = (flops: number, t: number | undefined) => (t === undefined ? null : Math.round(flops / t / 1e8) / 10);
console.log(
  JSON.stringify({
    peak_gflops: Math.round(peak * 10) / 10,
    threads,
    gemm_path: ownPath,
    gemm: gemmRows.map((r) => ({
      shape: r.shape,
      ours_gflops: gf(r.flops, r.ours),
      torch_gflops: gf(r.flops, torchTimes?.[`gemm ${r.shape}`]),
      openblas_gflops: gf(r.flops, r.openblas),
      ours_pct_of_peak: Math.round((r.flops / r.ours / 1e9 / peak) * 1000) / 10,
      ours_cpu_pct_of_peak: Math.round((r.flops / r.oursCpu / 1e9 / peakCpu) * 1000) / 10,
    })),
    peak_gflops_per_cpu_s: Math.round(peakCpu * 10) / 10,
  }),
);
