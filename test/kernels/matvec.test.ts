// The matrix-vector path of weightGemm / weightGroupGemm (M <= 4 rows, decoding; native/matvec.cc):
// every stored format on every gemm path (AVX-512 with VNNI, AVX2, the portable C++ of the openblas
// path), 1 to 4 rows, sizes that are not multiples of any vector width, against the float64
// reference of the dequantized weights. Float formats are held to float32 accumulation; q8_0 / q4_0
// multiply int8-rounded activations (as llama.cpp does) and are held to that rounding's bound.
import { test } from 'node:test';
import type { GroupPart } from '../../src/kernels/api.js';
import { gemmPaths, loadNativeKernels, nativeLoadError, setGemmPath } from '../../src/kernels/native.js';
import { referenceKernels } from '../../src/kernels/reference.js';
import { decodeWeight, encodeWeight, WEIGHT_FORMATS, type WeightFormat } from '../../src/kernels/weights.js';
import { assertWithin, int8ActivationBound, randn, rng } from './helpers.js';

const native = loadNativeKernels();
const ref = referenceKernels<Float64Array>();
const skip = native ? false : `native addon not loaded: ${nativeLoadError()}`;
const paths = native ? gemmPaths() : ['none'];
const quantized = (f: WeightFormat) => f === 'q8_0' || f === 'q4_0';

/** The bound for one weight's outputs: float32 accumulation, plus int8 activations where quantized. */
function bound(
  f: WeightFormat,
  path: string,
  w: Float32Array,
  N: number,
  K: number,
  x: Float32Array,
  xOff: number,
  ldx: number,
  M: number,
  alpha: number,
): Float64Array {
  if (quantized(f) && path !== 'openblas') return int8ActivationBound(w, N, K, x, xOff, ldx, M, alpha);
  // float32 accumulation only: (K / 8 + 8) roundings relative to sum |w x|, and the alpha / beta step
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let abs = 0;
      for (let j = 0; j < K; j++) abs += Math.abs(w[n * K + j]! * x[xOff + m * ldx + j]!);
      out[m * N + n] = Math.abs(alpha) * (K / 8 + 8) * 2 ** -23 * abs + 1e-30;
    }
  return out;
}

const sizes: Record<'float' | 'quant', [number, number][]> = {
  // [N, K]: K of 1, odd, below and past one vector step; N of 1 and odd
  float: [
    [1, 1],
    [7, 37],
    [131, 100],
    [33, 515],
  ],
  // whole 32-value blocks, then rows whose last block is partial (688: models/base's down_proj)
  quant: [
    [1, 32],
    [7, 96],
    [131, 160],
    [33, 544],
    [5, 17],
    [9, 40],
    [17, 688],
  ],
};

for (const path of paths)
  for (const f of WEIGHT_FORMATS)
    for (const M of [1, 2, 3, 4])
      test(`matvec [${path}]: weightGemm ${f} M=${M} matches the float64 reference within its bound`, { skip }, () => {
        setGemmPath(path);
        try {
          for (const [si, [N, K]] of sizes[quantized(f) ? 'quant' : 'float'].entries())
            for (const beta of [0, 0.5]) {
              const r = rng(1000 + M * 31 + si * 7 + beta * 4);
              const pad = 3,
                ldx = K + 5,
                ldy = N + 2,
                alpha = 0.75;
              const W = encodeWeight(f, randn(N * K, r, 0.1), N, K);
              const w = decodeWeight(f, W, N, K);
              const X = randn(pad + M * ldx, r);
              const Y0 = randn(pad + M * ldy, r);
              if (beta === 0) Y0.fill(NaN);
              const got = Float32Array.from(Y0),
                want = Float64Array.from(Y0);
              const p = { format: f, W, N, K, transW: true, M, alpha, xOff: pad, ldx, beta, yOff: pad, ldy };
              native!.weightGemm({ ...p, X, Y: got });
              ref.weightGemm({ ...p, X: Float64Array.from(X), Y: want });
              const pick = (y: ArrayLike<number>) =>
                Array.from({ length: M * N }, (_, i) => y[pad + Math.floor(i / N) * ldy + (i % N)]!);
              // beta * y rounds once in float32 too
              const b = bound(f, path, w, N, K, X, pad, ldx, M, alpha).map(
                (v, i) => v + 2 ** -23 * Math.abs(pick(want)[i]!),
              );
              assertWithin(pick(got), pick(want), b, `${f} N=${N} K=${K} beta=${beta}`);
            }
        } finally {
          setGemmPath(paths[0]!);
        }
      });

// A group (q/k/v-like parts of mixed formats) in one call: the rows of all parts are split across
// threads together, so part boundaries fall inside a thread's range.
for (const path of paths)
  for (const M of [1, 4])
    test(`matvec [${path}]: weightGroupGemm with mixed formats, M=${M}, matches float64 within its bounds`, {
      skip,
    }, () => {
      setGemmPath(path);
      try {
        const r = rng(77 + M);
        const K = 256,
          pad = 2,
          alpha = 1.25;
        const specs: { N: number; f: WeightFormat }[] = [
          { N: 900, f: 'q8_0' },
          { N: 130, f: 'bf16' },
          { N: 61, f: 'f32' },
          { N: 1500, f: 'q4_0' },
          { N: 257, f: 'f16' },
        ];
        const parts = specs.map((s) => {
          const dense = randn(s.N * K, r, 0.1);
          const W = s.f === 'f32' ? dense : encodeWeight(s.f, dense, s.N, K);
          return { ...s, W, w: s.f === 'f32' ? dense : decodeWeight(s.f, W as Uint8Array, s.N, K) };
        });
        const shared = randn(pad + M * (K + pad), r);
        const run = <A extends Float32Array | Float64Array>(
          k: { weightGroupGemm: (p: never) => void },
          arr: (x: ArrayLike<number>) => A,
        ) => {
          const io = parts.map((p) => arr(new Float64Array(pad + M * (p.N + 1)).fill(Number.NaN)));
          const gp: GroupPart<A>[] = parts.map((p, i) => ({
            format: p.f,
            W: p.f === 'f32' ? arr(p.W) : (p.W as Uint8Array),
            N: p.N,
            io: io[i]!,
            ioOff: pad,
            ldio: p.N + 1,
          }));
          (k.weightGroupGemm as (p: unknown) => void)({
            K,
            transW: true,
            M,
            alpha,
            beta: 0,
            shared: arr(shared),
            sharedOff: pad,
            ldShared: K + pad,
            parts: gp,
          });
          return io;
        };
        const got = run(native!, (x) => Float32Array.from(x));
        const want = run(ref, (x) => Float64Array.from(x));
        parts.forEach((p, i) => {
          const pick = (y: ArrayLike<number>) =>
            Array.from({ length: M * p.N }, (_, j) => y[pad + Math.floor(j / p.N) * (p.N + 1) + (j % p.N)]!);
          const b = bound(p.f, path, p.w, p.N, K, shared, pad, K + pad, M, alpha);
          assertWithin(pick(got[i]!), pick(want[i]!), b, `part ${i} (${p.f})`);
        });
      } finally {
        setGemmPath(paths[0]!);
      }
    });
