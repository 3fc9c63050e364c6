// Stored frozen-weight formats: how a weight matrix W [N, K] (N rows of K values, the nn.Linear
// layout) is laid out in bytes, how to encode an f32 matrix into each format, and how to widen one
// row back to numbers. The native gemm widens the same layouts inside its packing; this file is the
// reference for both.
//
// Layouts (little-endian, rows back to back, no padding):
// - f32:  4 bytes per value.
// - bf16: 2 bytes per value, the top half of the f32 bit pattern.
// - f16:  2 bytes per value, IEEE binary16.
// - q8_0: K/32 blocks of 34 bytes: an f16 scale d, then 32 int8 q; value = d * q (GGUF Q8_0).
// - q4_0: K/32 blocks of 18 bytes: an f16 scale d, then 16 bytes whose low nibbles are values
//         0..15 and high nibbles values 16..31; value = d * (nibble - 8) (GGUF Q4_0).
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../io/dtype.js';

export type WeightFormat = 'f32' | 'bf16' | 'f16' | 'q8_0' | 'q4_0';

export const WEIGHT_FORMATS: readonly WeightFormat[] = ['f32', 'bf16', 'f16', 'q8_0', 'q4_0'];

/** Values per block: quantized formats store K in blocks of 32 (K must be a multiple). */
export const QBLOCK = 32;

/** Bytes one row of K values takes in a format (throws when K does not fit the format's blocks). */
export function weightRowBytes(format: WeightFormat, K: number): number {
  switch (format) {
    case 'f32':
      return 4 * K;
    case 'bf16':
    case 'f16':
      return 2 * K;
    case 'q8_0':
    case 'q4_0':
      if (K % QBLOCK !== 0) throw new Error(`${format} weight: in features ${K} is not a multiple of ${QBLOCK}`);
      return (K / QBLOCK) * (format === 'q8_0' ? 34 : 18);
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
 * with the sign of the value of largest magnitude, q = min(15, trunc(x / d + 8.5))).
 */
export function encodeWeight(format: WeightFormat, w: ArrayLike<number>, N: number, K: number): Uint8Array {
  if (w.length !== N * K) throw new Error(`encodeWeight(${format}): ${w.length} values for a [${N}, ${K}] matrix`);
  const rowBytes = weightRowBytes(format, K);
  const out = new Uint8Array(N * rowBytes);
  const dv = new DataView(out.buffer);
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
        for (let b = 0; b < K / QBLOCK; b++) {
          const o = base + b * 34,
            s = src + b * QBLOCK;
          let amax = 0;
          for (let j = 0; j < QBLOCK; j++) amax = Math.max(amax, Math.abs(w[s + j]!));
          const d = Math.fround(amax / 127),
            id = d ? 1 / d : 0;
          dv.setUint16(o, f32ToF16(d), true);
          for (let j = 0; j < QBLOCK; j++) dv.setInt8(o + 2 + j, roundAway(Math.fround(w[s + j]! * id)));
        }
        break;
      case 'q4_0':
        for (let b = 0; b < K / QBLOCK; b++) {
          const o = base + b * 18,
            s = src + b * QBLOCK;
          let amax = 0,
            max = 0;
          for (let j = 0; j < QBLOCK; j++) {
            const v = w[s + j]!;
            if (Math.abs(v) > amax) {
              amax = Math.abs(v);
              max = v;
            }
          }
          const d = Math.fround(max / -8),
            id = d ? 1 / d : 0;
          dv.setUint16(o, f32ToF16(d), true);
          const q = (v: number) => Math.min(15, Math.trunc(Math.fround(v * id) + 8.5));
          for (let j = 0; j < QBLOCK / 2; j++) out[o + 2 + j] = q(w[s + j]!) | (q(w[s + j + QBLOCK / 2]!) << 4);
        }
        break;
    }
  }
  return out;
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
      for (let b = 0; b < K / QBLOCK; b++) {
        const d = f16ToF32(dv.getUint16(b * 34, true));
        for (let j = 0; j < QBLOCK; j++) out[outOff + b * QBLOCK + j] = d * dv.getInt8(b * 34 + 2 + j);
      }
      return;
    case 'q4_0':
      for (let b = 0; b < K / QBLOCK; b++) {
        const d = f16ToF32(dv.getUint16(b * 18, true));
        for (let j = 0; j < QBLOCK / 2; j++) {
          const byte = dv.getUint8(b * 18 + 2 + j);
          out[outOff + b * QBLOCK + j] = d * ((byte & 15) - 8);
          out[outOff + b * QBLOCK + j + QBLOCK / 2] = d * ((byte >> 4) - 8);
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
