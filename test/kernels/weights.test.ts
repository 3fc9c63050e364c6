// Stored frozen-weight formats (bf16, f16, GGUF q8_0 / q4_0) and the gemm that widens them in its
// packing: byte layouts checked against hand-made GGUF blocks, native weightGemm against the
// float64 reference on the same stored bytes, and the frozen linear layer's input gradient against
// finite differences.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gemmPaths, loadNativeKernels, nativeLoadError, setGemmPath } from '../../src/kernels/native.js';
import { referenceKernels } from '../../src/kernels/reference.js';
import {
  decodeWeight,
  decodeWeightRow,
  encodeWeight,
  WEIGHT_FORMATS,
  weightRowBytes,
  type WeightFormat,
} from '../../src/kernels/weights.js';
import { f16ToF32, f32ToF16 } from '../../src/io/dtype.js';
import { FrozenWeight } from '../../src/tensor/frozen.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { linear, loraLinear, nmse } from '../../src/tensor/ops.js';
import { useReference64 } from '../../src/tensor/engine.js';
import { checkGradients } from '../helpers/finite-diff.js';
import { assertClose, assertWithin, int8ActivationBound, paddedWeightGemm, randn, rng } from './helpers.js';

const native = loadNativeKernels();
const ref = referenceKernels<Float64Array>();
const skip = native ? false : `native addon not loaded: ${nativeLoadError()}`;

test('weights: GGUF q8_0 and q4_0 blocks decode as the format defines', () => {
  // q8_0: f16 scale 0.5 (0x3800), then 32 int8: value = 0.5 * q
  const q8 = new Uint8Array(34);
  q8[0] = 0x00;
  q8[1] = 0x38;
  for (let j = 0; j < 32; j++) q8[2 + j] = (j - 16) & 0xff;
  assert.deepEqual(
    Array.from(decodeWeight('q8_0', q8, 1, 32)),
    Array.from({ length: 32 }, (_, j) => 0.5 * (j - 16)),
  );
  // q4_0: f16 scale 2 (0x4000), byte j = low nibble (value j) | high nibble (value j + 16)
  const q4 = new Uint8Array(18);
  q4[0] = 0x00;
  q4[1] = 0x40;
  for (let j = 0; j < 16; j++) q4[2 + j] = (j & 15) | ((15 - j) << 4);
  const want = [
    ...Array.from({ length: 16 }, (_, j) => 2 * (j - 8)),
    ...Array.from({ length: 16 }, (_, j) => 2 * (15 - j - 8)),
  ];
  assert.deepEqual(Array.from(decodeWeight('q4_0', q4, 1, 32)), want);
  // bf16 0x3fc0 = 1.5, f16 0x3e00 = 1.5
  assert.deepEqual(Array.from(decodeWeight('bf16', new Uint8Array([0xc0, 0x3f]), 1, 1)), [1.5]);
  assert.deepEqual(Array.from(decodeWeight('f16', new Uint8Array([0x00, 0x3e]), 1, 1)), [1.5]);
});

test("weights: encoding error is within each format's resolution", () => {
  // K = 64: whole 32-value blocks; 40, 17, 688: the last block of each row is partial
  for (const K of [64, 40, 17, 688]) checkEncoding(4, K);
});

function checkEncoding(N: number, K: number): void {
  const r = rng(3 + K);
  const w = randn(N * K, r);
  // Relative to the block's largest magnitude: q8_0 rounds to 1/254 of it, q4_0 to 1/16 (one
  // step of 2 max/16 on the side of the extreme value); bf16 / f16 are relative to each value.
  const bound: Record<WeightFormat, (v: number, amax: number) => number> = {
    f32: () => 0,
    bf16: (v) => Math.abs(v) * 2 ** -8,
    f16: (v) => Math.abs(v) * 2 ** -11 + 2 ** -24,
    q8_0: (_, amax) => (amax / 254) * 1.01 + amax * 2 ** -11,
    q4_0: (_, amax) => (amax / 8) * 1.01 + amax * 2 ** -11,
  };
  for (const f of WEIGHT_FORMATS) {
    const bytes = encodeWeight(f, w, N, K);
    assert.equal(bytes.length, N * weightRowBytes(f, K), `${f} K=${K}: bytes`);
    const back = decodeWeight(f, bytes, N, K);
    for (let i = 0; i < w.length; i++) {
      // the block of 32 values within the row (the last one holds only the row's real values)
      const row = Math.floor(i / K) * K,
        b0 = row + Math.floor((i - row) / 32) * 32;
      let amax = 0;
      for (let j = b0; j < Math.min(b0 + 32, row + K); j++) amax = Math.max(amax, Math.abs(w[j]!));
      assert.ok(
        Math.abs(back[i]! - w[i]!) <= bound[f](w[i]!, amax),
        `${f} K=${K}: element ${i} ${w[i]} came back as ${back[i]}`,
      );
    }
  }
}

test('weights: rows that do not fill whole blocks end in a partial block, scaled over its real values and zero-padded', () => {
  // [2, 40]: each row is one whole block, then 8 values. Row 0's last 8 are -0.75 .. 1 (largest
  // magnitude 1); row 1's values are 100 times larger, so a scale taken past row 0's end would show.
  const K = 40;
  const w = Float32Array.from({ length: 2 * K }, (_, i) => {
    const k = i % K;
    return (i < K ? 1 : 100) * (k < 32 ? 0.01 * (k - 16) : 0.25 * (k - 35));
  });
  const half = (b: Uint8Array, o: number) => f16ToF32(b[o]! | (b[o + 1]! << 8));
  const q8 = FrozenWeight.encode('q8_0', w, [2, K], 'w');
  assert.equal(q8.bytes.length, 2 * 2 * 34);
  assert.equal(half(q8.bytes, 34), f16ToF32(f32ToF16(Math.fround(1 / 127))), 'q8_0: d = max|x| / 127 over 8 values');
  assert.deepEqual(Array.from(q8.bytes.subarray(36 + 8, 68)), new Array(24).fill(0), 'q8_0 padding is q = 0');
  // q4_0: d = (value of largest magnitude) / -8 = 1 / -8; its padding is nibble 8 (value 0)
  const q4 = FrozenWeight.encode('q4_0', w, [2, K], 'w');
  assert.equal(q4.bytes.length, 2 * 2 * 18);
  assert.equal(half(q4.bytes, 18), -0.125);
  for (let j = 0; j < 16; j++) {
    const byte = q4.bytes[20 + j]!;
    if (j >= 8) assert.equal(byte & 15, 8, `q4_0 padding value ${32 + j}`);
    assert.equal(byte >> 4, 8, `q4_0 padding value ${48 + j}`);
  }
  // the partial blocks come back within their own resolution (row 0's q4_0 values are multiples of
  // its d = -1/8, so exactly); a scale taken from the neighbouring row would be 100 times coarser
  const back8 = q8.toFloat32(),
    back4 = q4.toFloat32();
  for (let k = 32; k < K; k++) {
    assert.ok(back4[k] === w[k], `q4_0 row 0 value ${k}: ${back4[k]}`);
    assert.ok(Math.abs(back8[k]! - w[k]!) <= 1 / 254 + 2 ** -11, `q8_0 row 0 value ${k}: ${back8[k]}`);
    assert.ok(Math.abs(back4[K + k]! - w[K + k]!) <= 100 / 8, `q4_0 row 1 value ${k}`);
    assert.ok(Math.abs(back8[K + k]! - w[K + k]!) <= 100 / 254 + 100 * 2 ** -11, `q8_0 row 1 value ${k}`);
  }
  // decoding writes K values per row and no more: a row's neighbours in the output stay as they were
  const out = new Float64Array(K + 2).fill(7);
  decodeWeightRow('q8_0', q8.bytes, K, 1, out, 1);
  assert.equal(out[0], 7);
  assert.equal(out[K + 1], 7);
  assert.deepEqual(Array.from(out.subarray(1, K + 1)), Array.from(q8.toFloat32().subarray(K)));
  assert.throws(() => new FrozenWeight('q8_0', new Uint8Array(34), [1, K], 'w'), /34 bytes, expected 68/);
  assert.throws(() => new FrozenWeight('bf16', new Uint8Array(10), [2, 3], 'proj'), /'proj'.*10 bytes, expected 12/);
});

// Native against the float64 reference on the same stored bytes: the only difference left is
// float32 arithmetic, so the gemm tolerances apply. Every gemm path widens in its own way (our
// kernels in the B packing, OpenBLAS in row blocks), so each runs.
const paths = native ? gemmPaths() : ['none'];
function onPath<T>(path: string, fn: () => T): T {
  setGemmPath(path);
  try {
    return fn();
  } finally {
    setGemmPath(paths[0]!);
  }
}
/**
 * The gemm tolerances, except for bf16 weights on the avx512bf16 path, where the activations are
 * rounded to bf16 (2^-9 relative): outputs of magnitude ~1 then carry errors of a few 1e-3 (the
 * exact bound is checked in bf16.test.ts).
 */
function tolerance(path: string, f: WeightFormat, atol: number): { atol: number; rtol: number } {
  return path === 'avx512bf16' && f === 'bf16' ? { atol: 3e-2, rtol: 1e-2 } : { atol, rtol: 1e-4 };
}

/** q8_0 / q4_0 weights times at most 4 rows on our kernels: the matrix-vector path's int8 activations. */
const int8Activations = (path: string, f: WeightFormat, transW: boolean, M: number) =>
  (f === 'q8_0' || f === 'q4_0') && transW && M <= 4 && path !== 'openblas';

for (const path of paths)
  for (const f of WEIGHT_FORMATS) {
    for (const transW of [true, false]) {
      for (const M of [1, 3, 37]) {
        for (const beta of [0, 0.5]) {
          test(
            `weights [${path}]: weightGemm ${f} transW=${transW} M=${M} beta=${beta} matches float64`,
            { skip },
            () =>
              onPath(path, () => {
                // K = 96: whole 32-value blocks; 40: rows ending in a partial block
                for (const K of [96, 40]) checkWeightGemm(path, f, transW, M, beta, K);
              }),
          );
        }
      }
    }
  }

function checkWeightGemm(path: string, f: WeightFormat, transW: boolean, M: number, beta: number, K: number): void {
  const r = rng(M * 7 + (transW ? 1 : 2) + beta * 10 + K);
  const N = 80;
  const {
    W,
    X,
    Y0,
    params: p,
    pad,
    ldx,
    outputs: pick,
  } = paddedWeightGemm(f, { M, N, K, transW, beta, alpha: 0.75 }, r);
  const got = Float32Array.from(Y0),
    want = Float64Array.from(Y0);
  native!.weightGemm({ ...p, X, Y: got });
  ref.weightGemm({ ...p, X: Float64Array.from(X), Y: want });
  if (int8Activations(path, f, transW, M)) {
    // the matrix-vector path rounds activations to int8 blocks (bound in matvec.test.ts)
    const b = int8ActivationBound(decodeWeight(f, W, N, K), N, K, X, pad, ldx, M, 0.75);
    assertWithin(
      pick(got),
      pick(want),
      b.map((v, i) => v + 1e-6 * Math.abs(pick(want)[i]!)),
      `weightGemm ${f} K=${K}`,
    );
  } else assertClose(pick(got), pick(want), tolerance(path, f, 1e-4), `weightGemm ${f} K=${K}`);
}

for (const path of paths)
  test(`weights [${path}]: a large weight spans several blocks (rows, K and column blocks)`, { skip }, () =>
    onPath(path, () => {
      const r = rng(11),
        N = 1700,
        K = 688,
        M = 9;
      // K = 688 (models/base's down_proj): 21.5 blocks, the last KC block ending in a partial one
      for (const f of ['bf16', 'q8_0', 'q4_0'] as const) {
        const W = encodeWeight(f, randn(N * K, r, 0.05), N, K);
        for (const transW of [true, false]) {
          const inCols = transW ? K : N,
            outCols = transW ? N : K;
          const X = randn(M * inCols, r);
          const got = new Float32Array(M * outCols),
            want = new Float64Array(M * outCols);
          const p = { format: f, W, N, K, transW, M, alpha: 1, xOff: 0, ldx: inCols, beta: 0, yOff: 0, ldy: outCols };
          native!.weightGemm({ ...p, X, Y: got });
          ref.weightGemm({ ...p, X: Float64Array.from(X), Y: want });
          assertClose(got, want, tolerance(path, f, 2e-4), `weightGemm ${f} transW=${transW} blocked`);
        }
      }
    }),
  );

test('weights: linear and loraLinear over a FrozenWeight equal the same layers over its f32 values, and their input gradient matches finite differences', () => {
  const restore = useReference64();
  try {
    const r = rng(5),
      N = 6,
      K = 32,
      T = 3,
      rank = 2;
    for (const f of WEIGHT_FORMATS) {
      const fw = FrozenWeight.encode(f, randn(N * K, r, 0.3), [N, K], 'w');
      const dense = Tensor.param(Float64Array.from(fw.toFloat32()) as unknown as Float32Array, [N, K], 'w', false);
      const x = Tensor.param(Float64Array.from(randn(T * K, r)) as unknown as Float32Array, [T, K], 'x');
      const A = Tensor.param(Float64Array.from(randn(rank * K, r, 0.2)) as unknown as Float32Array, [rank, K], 'A');
      const B = Tensor.param(Float64Array.from(randn(N * rank, r, 0.2)) as unknown as Float32Array, [N, rank], 'B');
      const R = Float64Array.from(randn(T * N, r));
      const weighted = (y: Tensor) => {
        let s = 0;
        for (let i = 0; i < y.size; i++) s += y.data[i]! * R[i]!;
        return s;
      };
      assertClose([weighted(linear(x, fw))], [weighted(linear(x, dense))], { atol: 1e-12, rtol: 1e-12 }, `${f} linear`);
      assertClose(
        [weighted(loraLinear(x, fw, A, B, 2, null))],
        [weighted(loraLinear(x, dense, A, B, 2, null))],
        { atol: 1e-12, rtol: 1e-12 },
        `${f} loraLinear`,
      );
      const teacher = R as unknown as Float32Array;
      checkGradients([x], () => nmse(linear(x, fw), teacher));
      checkGradients([x, A, B], () => nmse(loraLinear(x, fw, A, B, 2, null), teacher));
    }
  } finally {
    restore();
  }
});
