// AVX512-BF16 dot products for bf16 weights (gemm path "avx512bf16"): the activations are rounded to
// bf16 (nearest even) and multiplied by vdpbf16ps with f32 accumulation. Two checks against float64:
// (1) with the activations rounded the same way first, the result agrees to f32 accumulation error
// (every pair of k and every column lands where it belongs); (2) against the exact product, the
// error stays within the bound rounding implies: |y - y_exact| <= 2^-8 |alpha| sum_k |x_k w_k|
// (bf16 keeps 8 significant bits: a relative rounding error of at most 2^-9 per activation, doubled
// for margin), plus the f32 accumulation term.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gemmPaths, loadNativeKernels, setGemmPath } from '../../src/kernels/native.js';
import { referenceKernels } from '../../src/kernels/reference.js';
import { decodeWeight } from '../../src/kernels/weights.js';
import { assertClose, paddedWeightGemm, randn, rng } from './helpers.js';

const native = loadNativeKernels();
const ref = referenceKernels<Float64Array>();
const have = native !== null && gemmPaths().includes('avx512bf16');
const skip = have ? false : 'this CPU has no AVX512-BF16 (or the addon is not loaded)';

/** x rounded to bf16, nearest even (what the kernel does to the activations). */
function roundBf16(x: Float32Array): Float32Array {
  const out = Float32Array.from(x);
  const u = new Uint32Array(out.buffer);
  for (let i = 0; i < u.length; i++) u[i] = ((u[i]! + 0x7fff + ((u[i]! >>> 16) & 1)) & 0xffff0000) >>> 0;
  return out;
}

function onPath<T>(path: string, fn: () => T): T {
  const prev = gemmPaths()[0]!;
  setGemmPath(path);
  try {
    return fn();
  } finally {
    setGemmPath(prev);
  }
}

for (const transW of [true, false])
  for (const [M, N, K] of [
    [37, 80, 97],
    [150, 300, 256],
    [5, 33, 600],
  ] as const)
    for (const beta of [0, 0.5])
      test(`bf16: vdpbf16ps weightGemm transW=${transW} M=${M} N=${N} K=${K} beta=${beta} within the bf16 rounding bound of float64`, {
        skip,
      }, () => {
        const r = rng(M + N + K + (transW ? 1 : 0) + beta * 4);
        const alpha = 0.75;
        const {
          W,
          X,
          Y0,
          params: p,
          pad,
          inCols,
          outCols,
          ldx,
          at,
        } = paddedWeightGemm('bf16', { M, N, K, transW, beta, alpha }, r);
        const Wf = decodeWeight('bf16', W, N, K);
        const got = Float32Array.from(Y0);
        onPath('avx512bf16', () => native!.weightGemm({ ...p, X, Y: got }));
        const f32path = Float32Array.from(Y0);
        onPath('avx512', () => native!.weightGemm({ ...p, X, Y: f32path }));
        const exact = Float64Array.from(Y0);
        ref.weightGemm({ ...p, X: Float64Array.from(X), Y: exact });
        const rounded = Float64Array.from(Y0);
        ref.weightGemm({ ...p, X: Float64Array.from(roundBf16(X)), Y: rounded });
        let differs = false;
        for (let i = 0; i < M * outCols; i++) {
          const m = Math.floor(i / outCols),
            j = i % outCols;
          // sum_k |x_k w_k| for this output
          let mag = 0;
          for (let k = 0; k < inCols; k++) {
            const x = X[pad + m * ldx + k]!;
            const w = transW ? Wf[j * K + k]! : Wf[k * K + j]!;
            mag += Math.abs(x * w);
          }
          const g = at(got, i);
          const acc = 1e-5 * Math.abs(alpha) * mag + 1e-6 * Math.abs(at(exact, i));
          assert.ok(
            Math.abs(g - at(rounded, i)) <= acc,
            `output (${m}, ${j}): ${g} vs ${at(rounded, i)} with the activations rounded first`,
          );
          assert.ok(
            Math.abs(g - at(exact, i)) <= 2 ** -8 * Math.abs(alpha) * mag + acc,
            `output (${m}, ${j}): ${g} vs exact ${at(exact, i)}, beyond the bf16 bound (sum |x w| = ${mag})`,
          );
          if (g !== at(f32path, i)) differs = true;
        }
        assert.ok(differs, 'the avx512bf16 path gave exactly the f32 result: the bf16 kernel did not run');
      });

test('bf16: the avx512bf16 path leaves f32 gemms as the avx512 path computes them', { skip }, () => {
  const r = rng(9),
    M = 40,
    N = 70,
    K = 50;
  const A = randn(M * K, r),
    B = randn(K * N, r);
  const run = (path: string) =>
    onPath(path, () => {
      const C = new Float32Array(M * N);
      native!.gemm({
        transA: false,
        transB: false,
        M,
        N,
        K,
        alpha: 1,
        A,
        aOff: 0,
        lda: K,
        strideA: 0,
        B,
        bOff: 0,
        ldb: N,
        strideB: 0,
        beta: 0,
        C,
        cOff: 0,
        ldc: N,
        strideC: 0,
        batch: 1,
      });
      return C;
    });
  assertClose(run('avx512bf16'), run('avx512'), { atol: 0, rtol: 0 }, 'f32 gemm');
});
