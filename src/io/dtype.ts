/**
 * Encoding and decoding of on-disk element types to/from f32.
 * f16/bf16 encoders round to nearest even, as PyTorch's .to() does.
 */
import type { DType } from './types.js';

export const DTYPE_BYTES: Record<DType, number> = {
  F32: 4,
  F16: 2,
  BF16: 2,
  F64: 8,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

export function isDType(s: unknown): s is DType {
  return typeof s === 'string' && Object.hasOwn(DTYPE_BYTES, s);
}

/** Which dtypes the writers can encode (the float ones). */
export const WRITABLE_DTYPES: readonly DType[] = ['F32', 'F16', 'BF16'];

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

export function f32ToF16(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // subnormal half (or zero): shift the implicit 1 in, round to nearest even
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    if (rem > half || (rem === half && r & 1)) r++;
    return sign | r;
  }
  let r = mant >>> 13;
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && r & 1)) {
    r++;
    if (r === 0x400) {
      r = 0;
      e++;
      if (e >= 31) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | r;
}

export function bf16ToF32(h: number): number {
  u32[0] = h << 16;
  return f32[0]!;
}

export function f32ToBf16(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return ((x >>> 16) | 0x40) & 0xffff; // keep NaN a NaN
  const rounded = x + 0x7fff + ((x >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

// Lookup table: 64K entries make f16 decode of multi-GB files cheap.
let f16Table: Float32Array | undefined;
function f16Lut(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) f16Table[i] = f16ToF32(i);
  }
  return f16Table;
}

/**
 * Decode `count` elements of `dtype` from little-endian `src` (starting at byte 0)
 * into `dst` at element offset `dstOff`.
 */
export function decodeInto(dtype: DType, src: Uint8Array, count: number, dst: Float32Array, dstOff: number): void {
  const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < count; i++) dst[dstOff + i] = dv.getFloat32(i * 4, true);
      return;
    case 'F16': {
      const lut = f16Lut();
      for (let i = 0; i < count; i++) dst[dstOff + i] = lut[dv.getUint16(i * 2, true)]!;
      return;
    }
    case 'BF16': {
      const out = new Uint32Array(dst.buffer, dst.byteOffset + dstOff * 4, count);
      for (let i = 0; i < count; i++) out[i] = dv.getUint16(i * 2, true) << 16;
      return;
    }
    case 'F64':
      for (let i = 0; i < count; i++) dst[dstOff + i] = dv.getFloat64(i * 8, true);
      return;
    case 'I64':
      // ids beyond 2^24 lose precision in f32; fine for token ids and masks
      for (let i = 0; i < count; i++) dst[dstOff + i] = Number(dv.getBigInt64(i * 8, true));
      return;
    case 'I32':
      for (let i = 0; i < count; i++) dst[dstOff + i] = dv.getInt32(i * 4, true);
      return;
    case 'I16':
      for (let i = 0; i < count; i++) dst[dstOff + i] = dv.getInt16(i * 2, true);
      return;
    case 'I8':
      for (let i = 0; i < count; i++) dst[dstOff + i] = dv.getInt8(i);
      return;
    case 'U8':
    case 'BOOL':
      for (let i = 0; i < count; i++) dst[dstOff + i] = src[i]!;
      return;
  }
}

/** Encode `count` f32 elements from `src[srcOff..]` as `dtype` into `dst` (little-endian). */
export function encodeInto(dtype: DType, src: Float32Array, srcOff: number, count: number, dst: Uint8Array): void {
  const dv = new DataView(dst.buffer, dst.byteOffset, dst.byteLength);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < count; i++) dv.setFloat32(i * 4, src[srcOff + i]!, true);
      return;
    case 'F16':
      for (let i = 0; i < count; i++) dv.setUint16(i * 2, f32ToF16(src[srcOff + i]!), true);
      return;
    case 'BF16':
      for (let i = 0; i < count; i++) dv.setUint16(i * 2, f32ToBf16(src[srcOff + i]!), true);
      return;
    case 'F64':
      for (let i = 0; i < count; i++) dv.setFloat64(i * 8, src[srcOff + i]!, true);
      return;
    case 'I64':
      for (let i = 0; i < count; i++) dv.setBigInt64(i * 8, BigInt(Math.trunc(src[srcOff + i]!)), true);
      return;
    case 'I32':
      for (let i = 0; i < count; i++) dv.setInt32(i * 4, src[srcOff + i]!, true);
      return;
    case 'I16':
      for (let i = 0; i < count; i++) dv.setInt16(i * 2, src[srcOff + i]!, true);
      return;
    case 'I8':
      for (let i = 0; i < count; i++) dv.setInt8(i, src[srcOff + i]!);
      return;
    case 'U8':
    case 'BOOL':
      for (let i = 0; i < count; i++) dst[i] = src[srcOff + i]!;
      return;
  }
}

/** Round-trip values through a dtype (what a reader will see after writing). */
export function quantize(dtype: DType, data: Float32Array): Float32Array {
  const bytes = new Uint8Array(data.length * DTYPE_BYTES[dtype]);
  encodeInto(dtype, data, 0, data.length, bytes);
  const out = new Float32Array(data.length);
  decodeInto(dtype, bytes, data.length, out, 0);
  return out;
}
