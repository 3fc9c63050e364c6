// Stored frozen-weight formats: how a weight matrix W [N, K] (N rows of K values, the nn.Linear
// layout) is laid out in bytes, how to encode an f32 matrix into each format, and how to widen one
// row back to numbers. The native gemm widens the same layouts inside its packing; this file is the
// reference for both.
//
// Layouts (little-endian, rows back to back, no padding):
// - f32:  4 bytes per value.
// - bf16: 2 bytes per value, the top half of the f32 bit pattern.
// - f16:  2 bytes per value, IEEE binary16.
// - q8_0: ceil(K/32) blocks of 34 bytes: an f16 scale d, then 32 int8 q; value = d * q (GGUF Q8_0).
// - q4_0: ceil(K/32) blocks of 18 bytes: an f16 scale d, then 16 bytes whose low nibbles are values
//         0..15 and high nibbles values 16..31; value = d * (nibble - 8) (GGUF Q4_0).
// When K is not a multiple of 32 the last block of each row is partial: its scale is taken over the
// real values only and the values past K are stored as zeros (q = 0; nibble 8). GGUF and llama.cpp
// need whole blocks, so a GGUF export writes such matrices in F16 (quantTypeFor in src/io/gguf-llama.ts).
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../io/dtype.js';

export type WeightFormat = 'f32' | 'bf16' | 'f16' | 'q8_0' | 'q4_0';

export const WEIGHT_FORMATS: readonly WeightFormat[] = ['f32', 'bf16', 'f16', 'q8_0', 'q4_0'];

/** Values per block: quantized formats store a row in ceil(K / 32) blocks of 32 (the last may be partial). */
export const QBLOCK = 32;

/** Bytes one row of K values takes in a format. */
export function weightRowBytes(format: WeightFormat, K: number): number {
  switch (format) {
    case 'f32':
      return 4 * K;
    case 'bf16':
    case 'f16':
      return 2 * K;
    case 'q8_0':
    case 'q4_0':
      return Math.ceil(K / QBLOCK) * (format === 'q8_0' ? 34 : 18);
  }
}

/** Numeric id of a format, as the native addon takes it. */
export function weightFormatId(format: WeightFormat): number {
  return WEIGHT_FORMATS.indexOf(format);
}

export function isWeightFormat(s: unknown): s is WeightFormat {
  return typeof s === 'string' && (WEIGHT_FORMATS as readonly string[]).includes(s);
}

/**
 * Encodes an f32 matrix [N, K] into a format. bf16/f16 round to nearest even; q8_0/q4_0 follow
 * ggml's reference quantizers (q8_0: d = max|x| / 127, q = round(x / d); q4_0: d = x_maxabs / -8
 * with the sign of the value of largest magnitude, q = min(15, trunc(x / d + 8.5))). A partial last
 * block is quantized as if padded with zeros (which leaves its scale that of the real values).
 */
export function encodeWeight(format: WeightFormat, w: ArrayLike<number>, N: number, K: number): Uint8Array {
  if (w.length !== N * K) throw new Error(`encodeWeight(${format}): ${w.length} values for a [${N}, ${K}] matrix`);
  const rowBytes = weightRowBytes(format, K);
  const out = new Uint8Array(N * rowBytes);
  const dv = new DataView(out.buffer);
  const blk = new Float64Array(QBLOCK);
  for (let n = 0; n < N; n++) {
    const base = n * rowBytes,
      src = n * K;
    switch (format) {
      case 'f32':
        for (let k = 0; k < K; k++) dv.setFloat32(base + 4 * k, w[src + k]!, true);
        break;
      case 'bf16':
        for (let k = 0; k < K; k++) dv.setUint16(base + 2 * k, f32ToBf16(w[src + k]!), true);
        break;
      case 'f16':
        for (let k = 0; k < K; k++) dv.setUint16(base + 2 * k, f32ToF16(w[src + k]!), true);
        break;
      case 'q8_0':
        for (let b = 0; b < Math.ceil(K / QBLOCK); b++) {
          const o = base + b * 34,
            x = blockValues(w, src, K, b, blk);
          let amax = 0;
          for (let j = 0; j < QBLOCK; j++) amax = Math.max(amax, Math.abs(x[j]!));
          const d = Math.fround(amax / 127),
            id = d ? 1 / d : 0;
          dv.setUint16(o, f32ToF16(d), true);
          for (let j = 0; j < QBLOCK; j++) dv.setInt8(o + 2 + j, roundAway(Math.fround(x[j]! * id)));
        }
        break;
      case 'q4_0':
        for (let b = 0; b < Math.ceil(K / QBLOCK); b++) {
          const o = base + b * 18,
            x = blockValues(w, src, K, b, blk);
          let amax = 0,
            max = 0;
          for (let j = 0; j < QBLOCK; j++) {
            const v = x[j]!;
            if (Math.abs(v) > amax) {
              amax = Math.abs(v);
              max = v;
            }
          }
          const d = Math.fround(max / -8),
            id = d ? 1 / d : 0;
          dv.setUint16(o, f32ToF16(d), true);
          const q = (v: number) => Math.min(15, Math.trunc(Math.fround(v * id) + 8.5));
          for (let j = 0; j < QBLOCK / 2; j++) out[o + 2 + j] = q(x[j]!) | (q(x[j + QBLOCK / 2]!) << 4);
        }
        break;
    }
  }
  return out;
}

/** Copies the 32 values of block b of the row starting at w[src] into x, zeros past K (a partial last block). */
function blockValues(w: ArrayLike<number>, src: number, K: number, b: number, x: Float64Array): Float64Array {
  for (let j = 0; j < QBLOCK; j++) x[j] = b * QBLOCK + j < K ? w[src + b * QBLOCK + j]! : 0;
  return x;
}

/** C's roundf: halves round away from zero (Math.round rounds them up). */
function roundAway(v: number): number {
  return Math.sign(v) * Math.round(Math.abs(v));
}

/** Widens row n of a stored [N, K] weight into out[outOff .. outOff + K). */
export function decodeWeightRow(
  format: WeightFormat,
  bytes: Uint8Array,
  K: number,
  n: number,
  out: { [i: number]: number },
  outOff = 0,
): void {
  const rowBytes = weightRowBytes(format, K);
  const dv = new DataView(bytes.buffer, bytes.byteOffset + n * rowBytes, rowBytes);
  switch (format) {
    case 'f32':
      for (let k = 0; k < K; k++) out[outOff + k] = dv.getFloat32(4 * k, true);
      return;
    case 'bf16':
      for (let k = 0; k < K; k++) out[outOff + k] = bf16ToF32(dv.getUint16(2 * k, true));
      return;
    case 'f16':
      for (let k = 0; k < K; k++) out[outOff + k] = f16ToF32(dv.getUint16(2 * k, true));
      return;
    case 'q8_0':
      for (let b = 0; b < Math.ceil(K / QBLOCK); b++) {
        const d = f16ToF32(dv.getUint16(b * 34, true));
        for (let j = 0; j < QBLOCK && b * QBLOCK + j < K; j++)
          out[outOff + b * QBLOCK + j] = d * dv.getInt8(b * 34 + 2 + j);
      }
      return;
    case 'q4_0':
      for (let b = 0; b < Math.ceil(K / QBLOCK); b++) {
        const d = f16ToF32(dv.getUint16(b * 18, true));
        for (let j = 0; j < QBLOCK; j++) {
          if (b * QBLOCK + j >= K) break;
          const byte = dv.getUint8(b * 18 + 2 + (j % (QBLOCK / 2)));
          out[outOff + b * QBLOCK + j] = d * ((j < QBLOCK / 2 ? byte & 15 : byte >> 4) - 8);
        }
      }
      return;
  }
}

/** The whole weight widened to f32 [N, K] (for export, merging, or tests; the gemm never does this). */
export function decodeWeight(format: WeightFormat, bytes: Uint8Array, N: number, K: number): Float32Array {
  const out = new Float32Array(N * K);
  for (let n = 0; n < N; n++) decodeWeightRow(format, bytes, K, n, out, n * K);
  return out;
}
