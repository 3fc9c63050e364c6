// The binary format of a compressed update (both directions), self-describing and checked on receipt.
//
//   header (20 bytes, little-endian)
//     "FBCU"  magic
//     u8      format version (1)
//     u8      kind: 0 full state, 1 delta against the state `base` the receiver holds
//     u16     reserved, 0
//     u32     layout id (layout.ts), agreed at join
//     u32     base: version of the state a delta applies to (0 for a full state)
//     u32     tensor count: every tensor of the layout, once
//   per tensor
//     u16     index in the layout
//     u8      encoding: 0 zero (no data), 1 f32, 2 q8, 3 q4
//     u8      sparsity: 0 dense, 1 bitmap of kept entries, 2 LEB128 gaps between kept indices
//     u32     kept entries (the tensor's size when dense)
//     [sparse 1: ceil(size/8) bytes of bitmap, low bit first; sparse 2: u32 byte length, the gaps]
//     [q8/q4: u16 block size, f32 tensor scale, u16 f16 factor per block] (blocks.ts)
//     values: f32 4 bytes each, q8 1 byte each, q4 two per byte
//   trailer
//     u32     CRC-32 of every byte before it
//
// Anything else (bad magic, unknown encoding, an index twice, codes outside the codec's range,
// a set bitmap bit past the end, trailing bytes) is refused with a CodecError naming the field.
import { crc32 } from 'node:zlib';
import {
  codeAt,
  codeBytes,
  blockCount,
  dequantizeBlocks,
  quantizeBlocks,
  QMAX,
  type QuantBits,
  type QuantizedBlocks,
} from './blocks.js';
import { topK, topKCount, type ErrorFeedback } from './topk.js';
import type { Layout, NamedArrays } from './layout.js';
import type { Random } from '../util/rng.js';

export const WIRE_MAGIC = 'FBCU';
export const WIRE_VERSION = 1;
const HEADER_BYTES = 20;

export const CODECS = ['none', 'q8', 'q4'] as const;
export type CodecName = (typeof CODECS)[number];

/** Default block sizes: 2 bytes of scale per 64 (q8) or 32 (q4) values, as GGUF's Q8_0/Q4_0 blocks. */
export const DEFAULT_BLOCK: Record<CodecName, number> = { none: 0, q8: 64, q4: 32 };

const ENC_ZERO = 0;
const ENC_F32 = 1;
const ENC_Q8 = 2;
const ENC_Q4 = 3;
const SPARSE_NONE = 0;
const SPARSE_BITMAP = 1;
const SPARSE_GAPS = 2;

/** A refused payload: `field` says which part is at fault. */
export class CodecError extends Error {
  constructor(
    readonly what: string,
    readonly field: string,
    reason: string,
  ) {
    super(`${what}: ${field}: ${reason}`);
    this.name = 'CodecError';
  }
}

export type PayloadKind = 'full' | 'delta';

export interface EncodeOptions {
  codec: CodecName;
  /** Keep only this fraction of each tensor's entries (largest magnitude first). */
  topk?: number | null;
  blockSize?: number;
  /** Stochastic rounding (uploads); round to nearest without it. */
  random?: Random;
  /** The sender's residuals: added before encoding, updated with what the receiver will not get. */
  feedback?: ErrorFeedback;
}

export interface Encoded {
  bytes: Uint8Array;
  /** Exactly what the receiver decodes, so the sender can track the state the receiver holds. */
  received: NamedArrays;
}

class Writer {
  private buf = new Uint8Array(1024);
  private dv = new DataView(this.buf.buffer);
  length = 0;
  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.dv = new DataView(next.buffer);
  }
  u8(v: number): void {
    this.room(1);
    this.dv.setUint8(this.length, v);
    this.length += 1;
  }
  u16(v: number): void {
    this.room(2);
    this.dv.setUint16(this.length, v, true);
    this.length += 2;
  }
  u32(v: number): void {
    this.room(4);
    this.dv.setUint32(this.length, v >>> 0, true);
    this.length += 4;
  }
  f32(v: number): void {
    this.room(4);
    this.dv.setFloat32(this.length, v, true);
    this.length += 4;
  }
  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  f32s(a: Float32Array): void {
    this.room(a.length * 4);
    for (let i = 0; i < a.length; i++) this.dv.setFloat32(this.length + i * 4, a[i]!, true);
    this.length += a.length * 4;
  }
  u16s(a: Uint16Array): void {
    this.room(a.length * 2);
    for (let i = 0; i < a.length; i++) this.dv.setUint16(this.length + i * 2, a[i]!, true);
    this.length += a.length * 2;
  }
  finish(): Uint8Array {
    const body = this.buf.subarray(0, this.length);
    const crc = crc32(body);
    this.u32(crc);
    return this.buf.slice(0, this.length);
  }
}

function gapsOf(idx: Uint32Array): Uint8Array {
  const out: number[] = [];
  let prev = -1;
  for (const i of idx) {
    let g = i - prev - 1;
    prev = i;
    while (g >= 0x80) {
      out.push((g & 0x7f) | 0x80);
      g >>>= 7;
    }
    out.push(g);
  }
  return Uint8Array.from(out);
}

function bitmapOf(idx: Uint32Array, size: number): Uint8Array {
  const b = new Uint8Array(Math.ceil(size / 8));
  for (const i of idx) b[i >> 3] |= 1 << (i & 7);
  return b;
}

/** Encodes the layout's tensors of `tensors` (every one must be present, with the layout's shape). */
export function encodeTensors(
  layout: Layout,
  tensors: NamedArrays,
  kind: PayloadKind,
  base: number,
  o: EncodeOptions,
): Encoded {
  const bits: QuantBits | null = o.codec === 'q8' ? 8 : o.codec === 'q4' ? 4 : null;
  const blockSize = o.blockSize ?? DEFAULT_BLOCK[o.codec];
  if (bits && !(Number.isInteger(blockSize) && blockSize >= 1 && blockSize <= 0xffff))
    throw new RangeError(`block size must be an integer in 1..65535, got ${blockSize}`);
  if (tensors.size !== layout.names.length)
    throw new RangeError(`the payload has ${tensors.size} tensors, the layout ${layout.names.length}`);
  const w = new Writer();
  for (const c of WIRE_MAGIC) w.u8(c.charCodeAt(0));
  w.u8(WIRE_VERSION);
  w.u8(kind === 'full' ? 0 : 1);
  w.u16(0);
  w.u32(layout.id);
  w.u32(base);
  w.u32(layout.names.length);
  const received: NamedArrays = new Map();
  layout.names.forEach((name, index) => {
    const t = tensors.get(name);
    const size = layout.sizes[index]!;
    if (!t) throw new RangeError(`tensor '${name}' of the layout is missing`);
    if (t.data.length !== size)
      throw new RangeError(`tensor '${name}' has ${t.data.length} values, the layout ${size}`);
    const wanted = o.feedback ? o.feedback.compensate(name, t.data) : t.data;
    const got = new Float32Array(size);
    let zero = true;
    for (let i = 0; i < size; i++)
      if (wanted[i] !== 0) {
        zero = false;
        break;
      }
    w.u16(index);
    if (zero) {
      w.u8(ENC_ZERO);
      w.u8(SPARSE_NONE);
      w.u32(0);
    } else {
      const keep = o.topk != null && o.topk < 1 ? topK(wanted, topKCount(size, o.topk)) : null;
      const values = keep ? Float32Array.from(keep, (i) => wanted[i]!) : wanted;
      w.u8(bits === 8 ? ENC_Q8 : bits === 4 ? ENC_Q4 : ENC_F32);
      if (keep) {
        const bitmap = bitmapOf(keep, size);
        const gaps = gapsOf(keep);
        if (bitmap.length <= gaps.length + 4) {
          w.u8(SPARSE_BITMAP);
          w.u32(keep.length);
          w.bytes(bitmap);
        } else {
          w.u8(SPARSE_GAPS);
          w.u32(keep.length);
          w.u32(gaps.length);
          w.bytes(gaps);
        }
      } else {
        w.u8(SPARSE_NONE);
        w.u32(size);
      }
      let decoded: Float32Array;
      if (bits) {
        const q = quantizeBlocks(values, bits, blockSize, o.random);
        w.u16(blockSize);
        w.f32(q.tensorScale);
        w.u16s(q.factors);
        w.bytes(q.codes);
        decoded = dequantizeBlocks(q);
      } else {
        w.f32s(values);
        decoded = values;
      }
      if (keep) keep.forEach((i, j) => (got[i] = decoded[j]!));
      else got.set(decoded);
    }
    if (o.feedback) o.feedback.record(name, wanted, got);
    received.set(name, { shape: [...layout.shapes[index]!], data: got });
  });
  return { bytes: w.finish(), received };
}

export interface Decoded {
  kind: PayloadKind;
  base: number;
  codec: CodecName | 'mixed';
  tensors: NamedArrays;
}

/** Parses and checks a payload against the agreed layout; `what` names it in errors (e.g. "update from client 3"). */
export function decodeTensors(buf: Uint8Array, layout: Layout, what: string): Decoded {
  const fail = (field: string, reason: string): never => {
    throw new CodecError(what, field, reason);
  };
  if (buf.length < HEADER_BYTES + 4) fail('header', `${buf.length} bytes is too short for a compressed payload`);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const magic = String.fromCharCode(buf[0]!, buf[1]!, buf[2]!, buf[3]!);
  if (magic !== WIRE_MAGIC) fail('magic', `expected "${WIRE_MAGIC}", got ${JSON.stringify(magic)}`);
  const version = buf[4]!;
  if (version !== WIRE_VERSION)
    fail('version', `format version ${version} is not supported (expected ${WIRE_VERSION})`);
  const end = buf.length - 4;
  const crc = dv.getUint32(end, true);
  if (crc32(buf.subarray(0, end)) !== crc) fail('crc32', 'checksum mismatch: the payload was damaged in transit');
  const kindByte = buf[5]!;
  if (kindByte > 1) fail('kind', `unknown payload kind ${kindByte}`);
  if (dv.getUint16(6, true) !== 0) fail('reserved', 'must be 0');
  const layoutId = dv.getUint32(8, true);
  if (layoutId !== layout.id)
    fail(
      'layout',
      `payload is for layout ${layoutId.toString(16)}, the agreed one is ${layout.id.toString(16)} (another model or adapter shape)`,
    );
  const base = dv.getUint32(12, true);
  const count = dv.getUint32(16, true);
  if (count !== layout.names.length) fail('tensor count', `${count}, the layout has ${layout.names.length}`);
  let pos = HEADER_BYTES;
  const need = (n: number, field: string) => {
    if (pos + n > end) fail(field, `needs ${n} bytes at offset ${pos}, only ${end - pos} left`);
  };
  const tensors: NamedArrays = new Map();
  const codecs = new Set<CodecName>();
  for (let t = 0; t < count; t++) {
    need(8, `tensor #${t} header`);
    const index = dv.getUint16(pos, true);
    const enc = buf[pos + 2]!;
    const sparse = buf[pos + 3]!;
    const kept = dv.getUint32(pos + 4, true);
    pos += 8;
    if (index >= layout.names.length)
      fail(`tensor #${t} index`, `${index} is outside the layout (${layout.names.length} tensors)`);
    const name = layout.names[index]!;
    const field = `tensor '${name}'`;
    if (tensors.has(name)) fail(field, 'appears twice');
    const size = layout.sizes[index]!;
    const out = new Float32Array(size);
    tensors.set(name, { shape: [...layout.shapes[index]!], data: out });
    if (enc > ENC_Q4) fail(`${field} encoding`, `unknown encoding ${enc}`);
    if (sparse > SPARSE_GAPS) fail(`${field} sparsity`, `unknown sparsity ${sparse}`);
    if (enc === ENC_ZERO) {
      if (sparse !== SPARSE_NONE || kept !== 0) fail(`${field} encoding`, 'a zero tensor carries no entries');
      continue;
    }
    codecs.add(enc === ENC_F32 ? 'none' : enc === ENC_Q8 ? 'q8' : 'q4');
    if (sparse === SPARSE_NONE && kept !== size)
      fail(`${field} entries`, `a dense tensor has ${size} entries, the payload says ${kept}`);
    if (kept > size || kept === 0) fail(`${field} entries`, `${kept} kept entries of ${size}`);
    let idx: Uint32Array | null = null;
    if (sparse === SPARSE_BITMAP) {
      const nb = Math.ceil(size / 8);
      need(nb, `${field} bitmap`);
      idx = new Uint32Array(kept);
      let j = 0;
      for (let i = 0; i < size; i++) {
        if (buf[pos + (i >> 3)]! & (1 << (i & 7))) {
          if (j >= kept) fail(`${field} bitmap`, `more than the ${kept} entries the header says`);
          idx[j++] = i;
        }
      }
      if (j !== kept) fail(`${field} bitmap`, `${j} bits set, the header says ${kept}`);
      if (size % 8 !== 0 && buf[pos + nb - 1]! >> (size % 8) !== 0)
        fail(`${field} bitmap`, 'bits set past the end of the tensor');
      pos += nb;
    } else if (sparse === SPARSE_GAPS) {
      need(4, `${field} gaps length`);
      const len = dv.getUint32(pos, true);
      pos += 4;
      need(len, `${field} gaps`);
      const stop = pos + len;
      idx = new Uint32Array(kept);
      let prev = -1;
      for (let j = 0; j < kept; j++) {
        let g = 0;
        let shift = 0;
        for (;;) {
          if (pos >= stop) fail(`${field} gaps`, `end of the gap list after ${j} of ${kept} indices`);
          const b = buf[pos++]!;
          g += (b & 0x7f) * 2 ** shift;
          shift += 7;
          if (!(b & 0x80)) break;
          if (shift > 28) fail(`${field} gaps`, 'gap too long');
        }
        const i = prev + 1 + g;
        if (i >= size) fail(`${field} gaps`, `index ${i} is past the tensor's ${size} entries`);
        idx[j] = i;
        prev = i;
      }
      if (pos !== stop) fail(`${field} gaps`, `${stop - pos} bytes left over after ${kept} indices`);
    }
    let values: Float32Array;
    if (enc === ENC_F32) {
      need(kept * 4, `${field} values`);
      values = new Float32Array(kept);
      for (let i = 0; i < kept; i++) {
        const v = dv.getFloat32(pos + i * 4, true);
        if (!Number.isFinite(v)) fail(`${field} values`, `entry ${i} is ${v}`);
        values[i] = v;
      }
      pos += kept * 4;
    } else {
      const bits: QuantBits = enc === ENC_Q8 ? 8 : 4;
      need(6, `${field} scales`);
      const blockSize = dv.getUint16(pos, true);
      const tensorScale = dv.getFloat32(pos + 2, true);
      pos += 6;
      if (blockSize === 0) fail(`${field} block size`, 'is 0');
      if (!(Number.isFinite(tensorScale) && tensorScale >= 0))
        fail(`${field} tensor scale`, `${tensorScale} is not a finite non-negative number`);
      const nb = blockCount(kept, blockSize);
      need(nb * 2, `${field} block scales`);
      const factors = new Uint16Array(nb);
      for (let b = 0; b < nb; b++) {
        const f = dv.getUint16(pos + b * 2, true);
        // f16 with the sign bit, or exponent 31 (inf/NaN), cannot be a scale factor
        if (f & 0x8000 || (f & 0x7c00) === 0x7c00)
          fail(`${field} block scales`, `block ${b} has an invalid f16 factor 0x${f.toString(16)}`);
        factors[b] = f;
      }
      pos += nb * 2;
      const nc = codeBytes(bits, kept);
      need(nc, `${field} codes`);
      const q: QuantizedBlocks = {
        bits,
        blockSize,
        count: kept,
        tensorScale,
        factors,
        codes: buf.slice(pos, pos + nc),
      };
      pos += nc;
      const qmax = QMAX[bits];
      for (let i = 0; i < kept; i++) {
        const c = codeAt(q, i);
        if (c < -qmax || c > qmax)
          fail(`${field} codes`, `entry ${i} has code ${c}, outside the ${bits}-bit range [-${qmax}, ${qmax}]`);
      }
      if (bits === 4 && kept % 2 === 1 && q.codes[nc - 1]! >> 4 !== 0)
        fail(`${field} codes`, 'padding nibble is not 0');
      values = dequantizeBlocks(q);
    }
    if (idx) idx.forEach((i, j) => (out[i] = values[j]!));
    else out.set(values);
  }
  if (pos !== end) fail('trailer', `${end - pos} unexpected bytes after the last tensor`);
  return {
    kind: kindByte === 0 ? 'full' : 'delta',
    base,
    codec: codecs.size === 0 ? 'none' : codecs.size === 1 ? [...codecs][0]! : 'mixed',
    tensors,
  };
}
