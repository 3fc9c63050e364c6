// The native kernels: loads the C++ addon (build/Release/fedbiot_native.node) and adapts the
// contract's object arguments to the addon's positional ones. Float32Array only.
//
// Rules the callers (src/tensor) can rely on, for both implementations:
// - Elementwise ops (add, mul, axpy, scale, swiglu/silu forward, optimisers) and softmaxForward /
//   logSoftmaxForward / ropeForward may write in place (out === an input). Partial overlap of
//   distinct views is not allowed. Backward kernels' gradient outputs must not alias their inputs.
// - attentionBackward needs the probs written by attentionForward; it needs no causal flag or
//   qOffset because hidden keys have probability exactly 0.
// - Native only: wrong typed array types and arrays shorter than the shapes imply throw
//   TypeError/RangeError (as do cross-entropy targets outside [0, V) that are not ignoreIndex);
//   setThreads is process-wide (the addon's pool and OpenBLAS).

import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Kernels } from './api.js';
import { weightFormatId } from './weights.js';

type F = Float32Array;

// The addon's functions, positional (see native/addon.cc).
interface Addon {
  gemm(...args: unknown[]): void;
  weightGemm(...args: unknown[]): void;
  weightGroupGemm(...args: unknown[]): void;
  add(a: F, b: F, out: F, n: number): void;
  mul(a: F, b: F, out: F, n: number): void;
  axpy(alpha: number, x: F, y: F, n: number): void;
  scale(alpha: number, x: F, out: F, n: number): void;
  fill(x: F, value: number, n: number): void;
  sumSquares(x: F, n: number): number;
  embeddingForward(table: F, ids: Int32Array, out: F, N: number, D: number): void;
  embeddingBackward(dOut: F, ids: Int32Array, dTable: F, N: number, D: number): void;
  rmsnormForward(x: F, w: F, out: F, rstd: F, N: number, D: number, eps: number): void;
  rmsnormBackward(dOut: F, x: F, w: F, rstd: F, dx: F | null, dw: F | null, N: number, D: number): void;
  ropeForward(x: F, out: F, invFreq: F, B: number, T: number, H: number, Dh: number, posOffset: number): void;
  ropeBackward(dOut: F, dx: F, invFreq: F, B: number, T: number, H: number, Dh: number, posOffset: number): void;
  attentionForward(...args: unknown[]): void;
  attentionBackward(...args: unknown[]): void;
  swigluForward(gate: F, up: F, out: F, n: number): void;
  swigluBackward(dOut: F, gate: F, up: F, dGate: F, dUp: F, n: number): void;
  siluForward(x: F, out: F, n: number): void;
  siluBackward(dOut: F, x: F, dx: F, n: number): void;
  softmaxForward(x: F, out: F, N: number, V: number): void;
  softmaxBackward(dOut: F, y: F, dx: F, N: number, V: number): void;
  logSoftmaxForward(x: F, out: F, N: number, V: number): void;
  logSoftmaxBackward(dOut: F, y: F, dx: F, N: number, V: number): void;
  crossEntropyForward(
    logits: F,
    targets: Int32Array,
    lse: F,
    N: number,
    V: number,
    ignoreIndex: number,
  ): [number, number];
  crossEntropyBackward(
    logits: F,
    targets: Int32Array,
    lse: F,
    dLogits: F,
    N: number,
    V: number,
    ignoreIndex: number,
    gradScale: number,
  ): void;
  klForward(
    teacher: F,
    student: F,
    studentLse: F,
    rowWeight: F | null,
    N: number,
    V: number,
    teacherIsProbs: boolean,
  ): number;
  klBackward(
    teacher: F,
    student: F,
    studentLse: F,
    rowWeight: F | null,
    dStudent: F,
    N: number,
    V: number,
    teacherIsProbs: boolean,
    gradScale: number,
  ): void;
  nmseForward(student: F, teacher: F, n: number): [number, number];
  nmseBackward(student: F, teacher: F, dStudent: F, n: number, denom: number, gradScale: number): void;
  adamwStep(...args: unknown[]): void;
  sgdStep(...args: unknown[]): void;
  setThreads(n: number): void;
  getThreads(): number;
  gemmPaths(): string[];
  gemmPath(): string;
  setGemmPath(name: string): void;
  peakGflops(iters: number): number;
}

/** The package root: the nearest folder above this file holding package.json (works from src/ and dist/src/). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'binding.gyp'))) return dir;
    const up = dirname(dir);
    if (up === dir)
      throw new Error('package root (package.json + binding.gyp) not found above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

let lastError = '';
let loaded: Addon | null = null;

/**
 * The gemm paths this CPU can run, default first ('avx512', 'avx512bf16', 'avx2', 'openblas'; avx512bf16
 * is opt-in: bf16 weights multiplied with AVX512-BF16 dot products, activations rounded to bf16); empty without the
 * addon. The best is the default; FEDBIOT_GEMM=<path> forces one at load, setGemmPath at run time.
 */
export function gemmPaths(): string[] {
  return loadNativeKernels() ? loaded!.gemmPaths() : [];
}

/** The gemm path in use ('' without the addon). */
export function gemmPath(): string {
  return loadNativeKernels() ? loaded!.gemmPath() : '';
}

/**
 * This CPU's fp32 FMA peak on all threads in GFLOP/s, measured by a native loop of independent
 * FMAs at the widest vector width (iters loop trips per thread; 0 without an x86 vector path).
 */
export function peakGflops(iters = 20_000_000): number {
  return loadNativeKernels() ? loaded!.peakGflops(iters) : 0;
}

/** Forces a gemm path for every later gemm (throws when this CPU cannot run it). */
export function setGemmPath(name: string): void {
  if (!loadNativeKernels()) throw new Error(`setGemmPath(${name}): native kernels unavailable (${lastError})`);
  loaded!.setGemmPath(name);
}

/** Why the last loadNativeKernels() returned null ('' if it did not). */
export function nativeLoadError(): string {
  return lastError;
}

let cached: Kernels<Float32Array> | null | undefined;

/** The native kernels, or null (see nativeLoadError()) when the addon cannot be loaded. */
export function loadNativeKernels(): Kernels<Float32Array> | null {
  if (cached !== undefined) return cached;
  let addon: Addon;
  try {
    const root = packageRoot();
    const path = join(root, 'build', 'Release', 'fedbiot_native.node');
    if (!existsSync(path)) throw new Error(`${path} does not exist (run npm install, or npx node-gyp rebuild)`);
    addon = createRequire(import.meta.url)(path) as Addon;
  } catch (e) {
    lastError = e instanceof Error ? e.message : String(e);
    cached = null;
    return null;
  }
  lastError = '';
  loaded = addon;
  cached = wrap(addon);
  return cached;
}

function wrap(n: Addon): Kernels<Float32Array> {
  return {
    name: 'native',
    gemm: (p) =>
      n.gemm(
        p.transA,
        p.transB,
        p.M,
        p.N,
        p.K,
        p.alpha,
        p.A,
        p.aOff,
        p.lda,
        p.strideA,
        p.B,
        p.bOff,
        p.ldb,
        p.strideB,
        p.beta,
        p.C,
        p.cOff,
        p.ldc,
        p.strideC,
        p.batch,
      ),
    weightGemm: (p) =>
      n.weightGemm(
        weightFormatId(p.format),
        p.W,
        p.N,
        p.K,
        p.transW,
        p.M,
        p.alpha,
        p.X,
        p.xOff,
        p.ldx,
        p.beta,
        p.Y,
        p.yOff,
        p.ldy,
      ),
    weightGroupGemm: (p) =>
      n.weightGroupGemm(
        p.K,
        p.transW,
        p.M,
        p.alpha,
        p.beta,
        p.shared,
        p.sharedOff,
        p.ldShared,
        p.parts.map((q) => [weightFormatId(q.format), q.W, q.N, q.io, q.ioOff, q.ldio]),
      ),
    add: (a, b, out, len) => n.add(a, b, out, len),
    mul: (a, b, out, len) => n.mul(a, b, out, len),
    axpy: (alpha, x, y, len) => n.axpy(alpha, x, y, len),
    scale: (alpha, x, out, len) => n.scale(alpha, x, out, len),
    fill: (x, value, len) => n.fill(x, value, len),
    sumSquares: (x, len) => n.sumSquares(x, len),
    embeddingForward: (t, ids, out, N, D) => n.embeddingForward(t, ids, out, N, D),
    embeddingBackward: (d, ids, dt, N, D) => n.embeddingBackward(d, ids, dt, N, D),
    rmsnormForward: (x, w, out, rstd, N, D, eps) => n.rmsnormForward(x, w, out, rstd, N, D, eps),
    rmsnormBackward: (d, x, w, rstd, dx, dw, N, D) => n.rmsnormBackward(d, x, w, rstd, dx, dw, N, D),
    ropeForward: (x, out, f, B, T, H, Dh, pos) => n.ropeForward(x, out, f, B, T, H, Dh, pos),
    ropeBackward: (d, dx, f, B, T, H, Dh, pos) => n.ropeBackward(d, dx, f, B, T, H, Dh, pos),
    attentionForward: (p) =>
      n.attentionForward(
        p.q,
        p.k,
        p.v,
        p.out,
        p.probs,
        p.keyMask,
        p.B,
        p.T,
        p.S,
        p.H,
        p.Hkv,
        p.Dh,
        p.qOffset,
        p.scale,
        p.causal,
        p.window ?? 0,
      ),
    attentionBackward: (p) =>
      n.attentionBackward(p.dOut, p.q, p.k, p.v, p.probs, p.dq, p.dk, p.dv, p.B, p.T, p.S, p.H, p.Hkv, p.Dh, p.scale),
    swigluForward: (g, u, out, len) => n.swigluForward(g, u, out, len),
    swigluBackward: (d, g, u, dg, du, len) => n.swigluBackward(d, g, u, dg, du, len),
    siluForward: (x, out, len) => n.siluForward(x, out, len),
    siluBackward: (d, x, dx, len) => n.siluBackward(d, x, dx, len),
    softmaxForward: (x, out, N, V) => n.softmaxForward(x, out, N, V),
    softmaxBackward: (d, y, dx, N, V) => n.softmaxBackward(d, y, dx, N, V),
    logSoftmaxForward: (x, out, N, V) => n.logSoftmaxForward(x, out, N, V),
    logSoftmaxBackward: (d, y, dx, N, V) => n.logSoftmaxBackward(d, y, dx, N, V),
    crossEntropyForward: (logits, targets, lse, N, V, ignore) => {
      const [sum, count] = n.crossEntropyForward(logits, targets, lse, N, V, ignore);
      return { sum, count };
    },
    crossEntropyBackward: (logits, targets, lse, d, N, V, ignore, gs) =>
      n.crossEntropyBackward(logits, targets, lse, d, N, V, ignore, gs),
    klForward: (t, s, lse, w, N, V, probs) => n.klForward(t, s, lse, w, N, V, probs),
    klBackward: (t, s, lse, w, d, N, V, probs, gs) => n.klBackward(t, s, lse, w, d, N, V, probs, gs),
    nmseForward: (s, t, len) => {
      const [value, denom] = n.nmseForward(s, t, len);
      return { value, denom };
    },
    nmseBackward: (s, t, d, len, denom, gs) => n.nmseBackward(s, t, d, len, denom, gs),
    adamwStep: (p) =>
      n.adamwStep(p.param, p.grad, p.m, p.v, p.n, p.lr, p.beta1, p.beta2, p.eps, p.weightDecay, p.step, p.gradScale),
    sgdStep: (p) => n.sgdStep(p.param, p.grad, p.buf, p.n, p.lr, p.momentum, p.weightDecay, p.gradScale),
    setThreads: (t) => n.setThreads(t),
    getThreads: () => n.getThreads(),
  };
}
