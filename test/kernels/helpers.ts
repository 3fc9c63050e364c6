// Shared helpers for the kernel tests: a seeded PRNG, array builders and a closeness check
// that names the worst element.
import assert from 'node:assert/strict';
import { encodeWeight, type WeightFormat } from '../../src/kernels/weights.js';
import { mulberry32 } from '../../src/util/rng.js';

/** The project's seeded PRNG (mulberry32), under the name the tests use. */
export const rng = mulberry32;

/** n standard normal values (Box-Muller), rounded to float32 so both precisions see the same input. */
export function randn(n: number, r: () => number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(r(), 1e-12),
      v = r();
    out[i] = scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  return out;
}

export function randInt(n: number, max: number, r: () => number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(r() * max);
  return out;
}

export const f64 = (x: ArrayLike<number>): Float64Array => Float64Array.from(x);
export const f32 = (x: ArrayLike<number>): Float32Array => Float32Array.from(x);

/** Asserts |actual - expected| <= atol + rtol * |expected| elementwise (NaN never passes). */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: { atol: number; rtol: number },
  what: string,
): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let worst = -1,
    worstExcess = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!,
      e = expected[i]!;
    if (a === e) continue; // covers equal infinities
    const excess = Math.abs(a - e) - (tol.atol + tol.rtol * Math.abs(e));
    if (!(excess <= 0) && (worst < 0 || !(excess <= worstExcess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) {
    assert.fail(
      `${what}: element ${worst} is ${actual[worst]}, expected ${expected[worst]} (atol ${tol.atol}, rtol ${tol.rtol})`,
    );
  }
}

export function assertNear(actual: number, expected: number, tol: { atol: number; rtol: number }, what: string): void {
  assertClose([actual], [expected], tol, what);
}

/**
 * Per-output error bound of a matrix-vector product on quantized weights (q8_0 / q4_0) computed as
 * llama.cpp does, with each 32-value block of x rounded to int8 (scale max|x| / 127): rounding moves
 * each x_j by at most half a step, so |y - y_exact| <= |alpha| sum_b (max_b |x| / 254) sum_{j in b}
 * |w_j|, plus float32 accumulation (K / 8 + 8 roundings of 2^-23 relative to sum |w_j x_j|).
 * `w` holds the dequantized weights [N, K]; x row m starts at xOff + m * ldx. Returns [M * N].
 */
export function int8ActivationBound(
  w: ArrayLike<number>,
  N: number,
  K: number,
  x: ArrayLike<number>,
  xOff: number,
  ldx: number,
  M: number,
  alpha: number,
): Float64Array {
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    const xr = (j: number) => x[xOff + m * ldx + j]!;
    const step = Array.from({ length: Math.ceil(K / 32) }, (_, b) => {
      let a = 0;
      for (let j = b * 32; j < Math.min(K, b * 32 + 32); j++) a = Math.max(a, Math.abs(xr(j)));
      return (a / 254) * 1.001;
    });
    for (let n = 0; n < N; n++) {
      let q = 0,
        abs = 0;
      for (let j = 0; j < K; j++) {
        const wj = Math.abs(w[n * K + j]!);
        q += wj * step[j >> 5]!;
        abs += wj * Math.abs(xr(j));
      }
      out[m * N + n] = Math.abs(alpha) * (q + (K / 8 + 8) * 2 ** -23 * abs);
    }
  }
  return out;
}

/** Asserts |actual[i] - expected[i]| <= bound[i] (NaN never passes), naming the worst element. */
export function assertWithin(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  bound: ArrayLike<number>,
  what: string,
): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  assert.equal(bound.length, expected.length, `${what}: bound length`);
  let worst = -1,
    ratio = 1;
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] === expected[i]) continue;
    const r = Math.abs(actual[i]! - expected[i]!) / bound[i]!;
    if (!(r <= ratio)) {
      worst = i;
      ratio = Number.isNaN(r) ? Infinity : r;
    }
  }
  if (worst >= 0)
    assert.fail(
      `${what}: element ${worst} is ${actual[worst]}, expected ${expected[worst]} within ${bound[worst]} (${ratio.toFixed(2)}x the bound)`,
    );
}

/**
 * A padded weightGemm problem on stored weights W [N, K] in `format`: X and Y rows start `pad` values
 * in and have `pad` extra values per row, so the kernels' offsets and leading dimensions are exercised.
 * Y0 is NaN where beta = 0 (the kernel must not read it). `outputs(y)` lists the M x outCols results.
 */
export function paddedWeightGemm(
  format: WeightFormat,
  sizes: { M: number; N: number; K: number; transW: boolean; beta: number; alpha: number },
  r: () => number,
) {
  const { M, N, K, transW, beta, alpha } = sizes;
  const pad = 3;
  const W = encodeWeight(format, randn(N * K, r, 0.1), N, K);
  const inCols = transW ? K : N,
    outCols = transW ? N : K;
  const ldx = inCols + pad,
    ldy = outCols + pad;
  const X = randn(pad + M * ldx, r);
  const Y0 = randn(pad + M * ldy, r);
  if (beta === 0) Y0.fill(NaN);
  const params = { format, W, N, K, transW, M, alpha, xOff: pad, ldx, beta, yOff: pad, ldy };
  const at = (y: ArrayLike<number>, i: number) => y[pad + Math.floor(i / outCols) * ldy + (i % outCols)]!;
  const outputs = (y: ArrayLike<number>) => Array.from({ length: M * outCols }, (_, i) => at(y, i));
  return { W, X, Y0, params, pad, inCols, outCols, ldx, ldy, at, outputs };
}
