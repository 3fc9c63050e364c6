// Symmetric block quantization of f32 values to 8 or 4 bits with a scale per block.
//
// Each block of `blockSize` values stores one scale; a value x becomes the integer code
// q = round(x / scale) in [-qmax, qmax] (qmax 127 for 8 bits, 7 for 4 bits). Scales travel as a
// per-tensor f32 (the largest block scale) times an f16 factor per block, so that tiny LoRA deltas
// keep full precision (f16 alone underflows below 6e-5) while a block costs 2 bytes of scale.
// The encoder quantizes with the scale exactly as transmitted, so the receiver's dequantization
// equals the sender's. Error per value: at most scale/2 with round-to-nearest, below one scale
// with stochastic rounding (unbiased: E[dequantized] = x).
import { f16ToF32, f32ToF16 } from '../io/dtype.js';
import type { Random } from '../util/rng.js';

export type QuantBits = 8 | 4;

export const QMAX: Record<QuantBits, number> = { 8: 127, 4: 7 };

export interface QuantizedBlocks {
  bits: QuantBits;
  blockSize: number;
  /** Number of values. */
  count: number;
  /** The largest block scale; block b's scale is tensorScale * f16(factors[b]). */
  tensorScale: number;
  factors: Uint16Array;
  /** 8 bits: one signed byte per value. 4 bits: two codes per byte, code + 8 in each nibble (low first). */
  codes: Uint8Array;
}

export function codeBytes(bits: QuantBits, count: number): number {
  return bits === 8 ? count : Math.ceil(count / 2);
}

export function blockCount(count: number, blockSize: number): number {
  return Math.ceil(count / blockSize);
}

/** Scale of each block as the receiver computes it. */
export function blockScales(q: Pick<QuantizedBlocks, 'tensorScale' | 'factors'>): Float32Array {
  const s = new Float32Array(q.factors.length);
  for (let b = 0; b < s.length; b++) s[b] = Math.fround(q.tensorScale * f16ToF32(q.factors[b]!));
  return s;
}

/**
 * Quantizes `x` in blocks. `random` switches to stochastic rounding (floor(x/scale + u), u uniform
 * in [0, 1)); without it values round to nearest.
 */
export function quantizeBlocks(x: Float32Array, bits: QuantBits, blockSize: number, random?: Random): QuantizedBlocks {
  if (!Number.isInteger(blockSize) || blockSize < 1)
    throw new RangeError(`block size must be a positive integer, got ${blockSize}`);
  const qmax = QMAX[bits];
  const nb = blockCount(x.length, blockSize);
  const absmax = new Float32Array(nb);
  let top = 0;
  for (let b = 0; b < nb; b++) {
    let m = 0;
    const end = Math.min(x.length, (b + 1) * blockSize);
    for (let i = b * blockSize; i < end; i++) {
      const a = Math.abs(x[i]!);
      if (!(a <= 3.4e38)) throw new RangeError(`cannot quantize a non-finite value (${x[i]}) at index ${i}`);
      if (a > m) m = a;
    }
    absmax[b] = m;
    if (m > top) top = m;
  }
  const tensorScale = Math.fround(top / qmax);
  const factors = new Uint16Array(nb);
  if (tensorScale > 0) for (let b = 0; b < nb; b++) factors[b] = f32ToF16(absmax[b]! / qmax / tensorScale);
  const scales = blockScales({ tensorScale, factors });
  const codes = new Uint8Array(codeBytes(bits, x.length));
  for (let b = 0; b < nb; b++) {
    const s = scales[b]!;
    const inv = s > 0 ? 1 / s : 0;
    const end = Math.min(x.length, (b + 1) * blockSize);
    for (let i = b * blockSize; i < end; i++) {
      const v = x[i]! * inv;
      let q = random ? Math.floor(v + random()) : Math.round(v);
      // f16 rounding of the scale can put |v| a hair above qmax
      if (q > qmax) q = qmax;
      else if (q < -qmax) q = -qmax;
      if (bits === 8) codes[i] = q & 0xff;
      else codes[i >> 1] |= (q + 8) << ((i & 1) * 4);
    }
  }
  return { bits, blockSize, count: x.length, tensorScale, factors, codes };
}

/** The integer code of value i. */
export function codeAt(q: Pick<QuantizedBlocks, 'bits' | 'codes'>, i: number): number {
  if (q.bits === 8) return (q.codes[i]! << 24) >> 24;
  return ((q.codes[i >> 1]! >> ((i & 1) * 4)) & 0xf) - 8;
}

export function dequantizeBlocks(q: QuantizedBlocks, out = new Float32Array(q.count)): Float32Array {
  const scales = blockScales(q);
  for (let i = 0; i < q.count; i++) out[i] = Math.fround(codeAt(q, i) * scales[Math.floor(i / q.blockSize)]!);
  return out;
}
