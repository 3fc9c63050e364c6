// ggml's block-quantized tensor types as GGUF stores them, row by row (a row is ne[0] values):
//
//   Q8_0  32 values in 34 bytes: f16 d, 32 int8 q; x = d * q
//   Q4_0  32 values in 18 bytes: f16 d, 16 bytes of nibbles (low: values 0..15, high: 16..31); x = d * (q - 8)
//   Q4_K  256 values in 144 bytes: f16 d, f16 dmin, 12 bytes of 6-bit sub-block scales and mins
//         (8 sub-blocks of 32), 128 bytes of nibbles; x = d * sc_j * q - dmin * m_j
//
// Q8_0 and Q4_0 are the engine's stored frozen-weight formats too (src/kernels/weights.ts holds
// their encoder and decoder, which follow ggml's reference quantizers); Q4_K lives here, since only
// GGUF files use it. GGUF rows are whole blocks: the engine's partial last block (a row length not a
// multiple of 32) is refused here, and the export writes such matrices in F16 (gguf-llama.ts). Q4_K's scales and mins come from each sub-block's range (min clipped to <= 0,
// as ggml does), not from ggml's iterative search: a valid encoding, slightly less precise.
import { decodeWeight, encodeWeight } from '../kernels/weights.js';
import { f16ToF32, f32ToF16 } from './dtype.js';

export type GgufQuantType = 'Q8_0' | 'Q4_0' | 'Q4_K';
export const GGUF_QUANT_TYPES: readonly GgufQuantType[] = ['Q8_0', 'Q4_0', 'Q4_K'];

const LAYOUT: Record<GgufQuantType, { block: number; bytes: number }> = {
  Q8_0: { block: 32, bytes: 34 },
  Q4_0: { block: 32, bytes: 18 },
  Q4_K: { block: 256, bytes: 144 },
};

export function isGgufQuantType(t: string): t is GgufQuantType {
  return (GGUF_QUANT_TYPES as readonly string[]).includes(t);
}

/** Values per block of a type (a row length must be a multiple). */
export function quantBlock(type: GgufQuantType): number {
  return LAYOUT[type].block;
}

/** Bytes of `rows` rows of `cols` values; throws when cols is not a whole number of blocks. */
export function quantBytes(type: GgufQuantType, rows: number, cols: number): number {
  const { block, bytes } = LAYOUT[type];
  if (cols % block !== 0) throw new RangeError(`${type}: row length ${cols} is not a multiple of ${block}`);
  return rows * (cols / block) * bytes;
}

/** Quantizes a row-major [rows, cols] matrix. */
export function quantizeRows(type: GgufQuantType, x: Float32Array, rows: number, cols: number): Uint8Array {
  if (x.length !== rows * cols) throw new RangeError(`${type}: ${x.length} values for [${rows}, ${cols}]`);
  quantBytes(type, rows, cols);
  if (type === 'Q8_0') return encodeWeight('q8_0', x, rows, cols);
  if (type === 'Q4_0') return encodeWeight('q4_0', x, rows, cols);
  const out = new Uint8Array(quantBytes(type, rows, cols));
  for (let b = 0; b < x.length / 256; b++) quantizeQ4KBlock(x, b * 256, out, b * 144);
  return out;
}

/** The values of a quantized [rows, cols] matrix as f32. */
export function dequantizeRows(type: GgufQuantType, bytes: Uint8Array, rows: number, cols: number): Float32Array {
  const want = quantBytes(type, rows, cols);
  if (bytes.length !== want)
    throw new RangeError(`${type}: ${bytes.length} bytes for [${rows}, ${cols}], expected ${want}`);
  if (type === 'Q8_0') return decodeWeight('q8_0', bytes, rows, cols);
  if (type === 'Q4_0') return decodeWeight('q4_0', bytes, rows, cols);
  const out = new Float32Array(rows * cols);
  for (let b = 0; b < out.length / 256; b++) dequantizeQ4KBlock(bytes, b * 144, out, b * 256);
  return out;
}

/** Sub-block j's 6-bit scale and min from the 12 packed bytes (ggml's get_scale_min_k4). */
function scaleMin(q: Uint8Array, o: number, j: number): [number, number] {
  if (j < 4) return [q[o + j]! & 63, q[o + j + 4]! & 63];
  return [(q[o + j + 4]! & 0xf) | ((q[o + j - 4]! >> 6) << 4), (q[o + j + 4]! >> 4) | ((q[o + j]! >> 6) << 4)];
}

function quantizeQ4KBlock(x: Float32Array, xo: number, out: Uint8Array, o: number): void {
  const scales = new Float32Array(8);
  const mins = new Float32Array(8);
  for (let j = 0; j < 8; j++) {
    let mn = Infinity;
    let mx = -Infinity;
    for (let l = 0; l < 32; l++) {
      const v = x[xo + j * 32 + l]!;
      if (v < mn) mn = v;
      if (v > mx) mx = v;
    }
    if (mn > 0) mn = 0;
    scales[j] = (mx - mn) / 15;
    mins[j] = -mn;
  }
  const maxScale = Math.max(...scales);
  const maxMin = Math.max(...mins);
  const d = f16ToF32(f32ToF16(maxScale / 63));
  const dmin = f16ToF32(f32ToF16(maxMin / 63));
  const dv = new DataView(out.buffer, out.byteOffset);
  dv.setUint16(o, f32ToF16(maxScale / 63), true);
  dv.setUint16(o + 2, f32ToF16(maxMin / 63), true);
  const sc = o + 4;
  const ls = new Uint8Array(8);
  const lm = new Uint8Array(8);
  for (let j = 0; j < 8; j++) {
    ls[j] = d > 0 ? Math.min(63, Math.round(scales[j]! / d)) : 0;
    lm[j] = dmin > 0 ? Math.min(63, Math.round(mins[j]! / dmin)) : 0;
    if (j < 4) {
      out[sc + j] = ls[j]!;
      out[sc + j + 4] = lm[j]!;
    } else {
      out[sc + j + 4] = (ls[j]! & 0xf) | ((lm[j]! & 0xf) << 4);
      out[sc + j - 4] |= (ls[j]! >> 4) << 6;
      out[sc + j] |= (lm[j]! >> 4) << 6;
    }
  }
  const qs = o + 16;
  for (let j = 0; j < 8; j++) {
    const dl = d * ls[j]!;
    const ml = dmin * lm[j]!;
    const inv = dl > 0 ? 1 / dl : 0;
    // sub-blocks 2p and 2p+1 share 32 bytes: low nibbles for the first, high for the second
    const pair = qs + (j >> 1) * 32;
    for (let l = 0; l < 32; l++) {
      const q = Math.max(0, Math.min(15, Math.round((x[xo + j * 32 + l]! + ml) * inv)));
      out[pair + l] |= j & 1 ? q << 4 : q;
    }
  }
}

function dequantizeQ4KBlock(b: Uint8Array, o: number, out: Float32Array, yo: number): void {
  const dv = new DataView(b.buffer, b.byteOffset);
  const d = f16ToF32(dv.getUint16(o, true));
  const dmin = f16ToF32(dv.getUint16(o + 2, true));
  for (let j = 0; j < 8; j++) {
    const [s, m] = scaleMin(b, o + 4, j);
    const dl = d * s;
    const ml = dmin * m;
    const pair = o + 16 + (j >> 1) * 32;
    for (let l = 0; l < 32; l++) {
      const q = j & 1 ? b[pair + l]! >> 4 : b[pair + l]! & 0xf;
      out[yo + j * 32 + l] = dl * q - ml;
    }
  }
}
