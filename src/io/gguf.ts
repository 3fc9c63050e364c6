/**
 * GGUF (v3) container reader and writer.
 *
 * Layout: "GGUF" magic, u32 version, u64 tensor count, u64 key/value count, the
 * key/values, the tensor infos (name, n_dims, dims fastest-first, ggml type, offset),
 * padding to general.alignment (default 32), then the tensor data, each tensor at an
 * aligned offset relative to the data start. All little-endian.
 *
 * Shapes in this API are row-major, outermost first (PyTorch order); on disk GGUF
 * stores them reversed (ne[0] is the contiguous dimension).
 */
import { BufferSource, FileSource, writeAll, writeFileAtomic, type ByteSource } from './byte-source.js';
import { decodeInto, encodeInto } from './dtype.js';
import { dequantizeRows, isGgufQuantType, quantBytes, type GgufQuantType } from './gguf-quant.js';
import { FormatError, numel, type DType, type TensorRecord } from './types.js';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as little-endian u32
export const GGUF_DEFAULT_ALIGNMENT = 32;

export type GgufScalarType =
  | 'u8'
  | 'i8'
  | 'u16'
  | 'i16'
  | 'u32'
  | 'i32'
  | 'f32'
  | 'bool'
  | 'string'
  | 'u64'
  | 'i64'
  | 'f64';
const TYPE_IDS: Record<GgufScalarType | 'array', number> = {
  u8: 0,
  i8: 1,
  u16: 2,
  i16: 3,
  u32: 4,
  i32: 5,
  f32: 6,
  bool: 7,
  string: 8,
  array: 9,
  u64: 10,
  i64: 11,
  f64: 12,
};
const TYPE_NAMES = Object.fromEntries(Object.entries(TYPE_IDS).map(([k, v]) => [v, k])) as Record<
  number,
  GgufScalarType | 'array'
>;
const SCALAR_SIZE: Record<Exclude<GgufScalarType, 'string'>, number> = {
  u8: 1,
  i8: 1,
  u16: 2,
  i16: 2,
  u32: 4,
  i32: 4,
  f32: 4,
  bool: 1,
  u64: 8,
  i64: 8,
  f64: 8,
};

export type GgufScalar = number | bigint | boolean | string;
export type GgufValue =
  | { type: GgufScalarType; value: GgufScalar }
  | { type: 'array'; itemType: GgufScalarType; value: GgufScalar[] };

/** Shorthands for building typed values. */
export const gv = {
  u32: (v: number): GgufValue => ({ type: 'u32', value: v }),
  i32: (v: number): GgufValue => ({ type: 'i32', value: v }),
  u64: (v: number | bigint): GgufValue => ({ type: 'u64', value: v }),
  f32: (v: number): GgufValue => ({ type: 'f32', value: v }),
  bool: (v: boolean): GgufValue => ({ type: 'bool', value: v }),
  str: (v: string): GgufValue => ({ type: 'string', value: v }),
  arr: (itemType: GgufScalarType, v: GgufScalar[]): GgufValue => ({ type: 'array', itemType, value: v }),
};

/** ggml tensor types: id, elements per block, bytes per block. Float ones and gguf-quant.ts's decode. */
interface GgmlType {
  name: string;
  id: number;
  block: number;
  bytes: number;
  dtype?: DType;
}
const GGML_TYPES: GgmlType[] = [
  { name: 'F32', id: 0, block: 1, bytes: 4, dtype: 'F32' },
  { name: 'F16', id: 1, block: 1, bytes: 2, dtype: 'F16' },
  { name: 'Q4_0', id: 2, block: 32, bytes: 18 },
  { name: 'Q4_1', id: 3, block: 32, bytes: 20 },
  { name: 'Q5_0', id: 6, block: 32, bytes: 22 },
  { name: 'Q5_1', id: 7, block: 32, bytes: 24 },
  { name: 'Q8_0', id: 8, block: 32, bytes: 34 },
  { name: 'Q8_1', id: 9, block: 32, bytes: 36 },
  { name: 'Q2_K', id: 10, block: 256, bytes: 84 },
  { name: 'Q3_K', id: 11, block: 256, bytes: 110 },
  { name: 'Q4_K', id: 12, block: 256, bytes: 144 },
  { name: 'Q5_K', id: 13, block: 256, bytes: 176 },
  { name: 'Q6_K', id: 14, block: 256, bytes: 210 },
  { name: 'Q8_K', id: 15, block: 256, bytes: 292 },
  { name: 'I8', id: 24, block: 1, bytes: 1, dtype: 'I8' },
  { name: 'I16', id: 25, block: 1, bytes: 2, dtype: 'I16' },
  { name: 'I32', id: 26, block: 1, bytes: 4, dtype: 'I32' },
  { name: 'I64', id: 27, block: 1, bytes: 8, dtype: 'I64' },
  { name: 'F64', id: 28, block: 1, bytes: 8, dtype: 'F64' },
  { name: 'BF16', id: 30, block: 1, bytes: 2, dtype: 'BF16' },
];
const GGML_BY_ID = new Map(GGML_TYPES.map((t) => [t.id, t]));
const GGML_BY_NAME = new Map(GGML_TYPES.map((t) => [t.name, t]));

export type GgufTensorType = 'F32' | 'F16' | 'BF16';

export interface GgufTensorInfo {
  name: string;
  /** Row-major shape (reverse of the on-disk ne). */
  shape: number[];
  /** ggml type name, e.g. "F16" or "Q4_K". */
  type: string;
  /** Offset relative to the data section. */
  offset: number;
  byteLength: number;
}

const MAX_DIMS = 4; // GGML_MAX_DIMS
const MAX_STRING = 1 << 30;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Sequential reader over a ByteSource, refilling a window as needed. */
class Cursor {
  pos = 0;
  private win = new Uint8Array(0);
  private winStart = 0;
  private dv = new DataView(this.win.buffer);
  constructor(private readonly src: ByteSource) {}
  get remaining(): number {
    return this.src.size - this.pos;
  }
  private need(n: number, what: string): number {
    if (n > this.remaining)
      throw new FormatError(
        this.src.label,
        `truncated: ${what} needs ${n} bytes at offset ${this.pos}, only ${this.remaining} left`,
      );
    const rel = this.pos - this.winStart;
    if (rel >= 0 && rel + n <= this.win.length) return rel;
    const len = Math.min(this.remaining, Math.max(n, 1 << 20));
    this.win = new Uint8Array(len);
    this.src.read(this.pos, this.win);
    this.winStart = this.pos;
    this.dv = new DataView(this.win.buffer);
    return 0;
  }
  u8(what: string): number {
    const r = this.need(1, what);
    this.pos += 1;
    return this.dv.getUint8(r);
  }
  i8(what: string): number {
    const r = this.need(1, what);
    this.pos += 1;
    return this.dv.getInt8(r);
  }
  u16(what: string): number {
    const r = this.need(2, what);
    this.pos += 2;
    return this.dv.getUint16(r, true);
  }
  i16(what: string): number {
    const r = this.need(2, what);
    this.pos += 2;
    return this.dv.getInt16(r, true);
  }
  u32(what: string): number {
    const r = this.need(4, what);
    this.pos += 4;
    return this.dv.getUint32(r, true);
  }
  i32(what: string): number {
    const r = this.need(4, what);
    this.pos += 4;
    return this.dv.getInt32(r, true);
  }
  f32(what: string): number {
    const r = this.need(4, what);
    this.pos += 4;
    return this.dv.getFloat32(r, true);
  }
  f64(what: string): number {
    const r = this.need(8, what);
    this.pos += 8;
    return this.dv.getFloat64(r, true);
  }
  u64(what: string): bigint {
    const r = this.need(8, what);
    this.pos += 8;
    return this.dv.getBigUint64(r, true);
  }
  i64(what: string): bigint {
    const r = this.need(8, what);
    this.pos += 8;
    return this.dv.getBigInt64(r, true);
  }
  /** A u64 that must fit in `max` (and a JS number). */
  count(what: string, max: number): number {
    const v = this.u64(what);
    if (v > BigInt(max))
      throw new FormatError(this.src.label, `${what} ${v} is impossible (at most ${max} fit in the rest of the file)`);
    return Number(v);
  }
  str(what: string): string {
    const n = this.count(`${what} length`, Math.min(this.remaining - 8, MAX_STRING));
    const r = this.need(n, what);
    this.pos += n;
    try {
      return utf8.decode(this.win.subarray(r, r + n));
    } catch {
      throw new FormatError(this.src.label, `${what} is not valid UTF-8`);
    }
  }
}

export interface GgufFile {
  version: number;
  kv: Map<string, GgufValue>;
  tensors: Map<string, GgufTensorInfo>;
  alignment: number;
  dataStart: number;
}

function readScalar(c: Cursor, t: GgufScalarType, what: string): GgufScalar {
  switch (t) {
    case 'u8':
      return c.u8(what);
    case 'i8':
      return c.i8(what);
    case 'u16':
      return c.u16(what);
    case 'i16':
      return c.i16(what);
    case 'u32':
      return c.u32(what);
    case 'i32':
      return c.i32(what);
    case 'f32':
      return c.f32(what);
    case 'f64':
      return c.f64(what);
    case 'u64':
      return c.u64(what);
    case 'i64':
      return c.i64(what);
    case 'bool': {
      const b = c.u8(what);
      if (b > 1) throw new Error(`${what}: bool value ${b} is not 0 or 1`);
      return b === 1;
    }
    case 'string':
      return c.str(what);
  }
}

/** Parses and validates the header, KV section and tensor infos. */
export function readGgufHeader(src: ByteSource): GgufFile {
  const file = src.label;
  const c = new Cursor(src);
  const fail = (m: string): never => {
    throw new FormatError(file, m);
  };
  if (src.size < 24) fail(`too short for a GGUF file (${src.size} bytes)`);
  if (c.u32('magic') !== GGUF_MAGIC) fail('bad magic: not a GGUF file');
  const version = c.u32('version');
  if (version !== 2 && version !== 3) fail(`unsupported GGUF version ${version} (expected 3)`);
  // every tensor info takes at least 8+4+8+4+8 bytes, every kv at least 8+4+1
  const nTensors = c.count('tensor count', Math.floor(c.remaining / 32));
  const nKv = c.count('key/value count', Math.floor(c.remaining / 13));
  const kv = new Map<string, GgufValue>();
  for (let i = 0; i < nKv; i++) {
    const key = c.str(`key #${i}`);
    if (key.length === 0) fail(`key #${i} is empty`);
    if (kv.has(key)) fail(`duplicate key "${key}"`);
    const tid = c.u32(`type of "${key}"`);
    const tname = TYPE_NAMES[tid];
    if (tname === undefined) fail(`key "${key}": unknown value type ${tid}`);
    try {
      if (tname === 'array') {
        const itid = c.u32(`array item type of "${key}"`);
        const it = TYPE_NAMES[itid];
        if (it === undefined) fail(`key "${key}": unknown array item type ${itid}`);
        if (it === 'array') fail(`key "${key}": nested arrays are not supported`);
        const minSize = it === 'string' ? 8 : SCALAR_SIZE[it as Exclude<GgufScalarType, 'string'>];
        const n = c.count(`array length of "${key}"`, Math.floor(c.remaining / minSize));
        const vals: GgufScalar[] = new Array<GgufScalar>(n);
        for (let j = 0; j < n; j++) vals[j] = readScalar(c, it as GgufScalarType, `"${key}"[${j}]`);
        kv.set(key, { type: 'array', itemType: it as GgufScalarType, value: vals });
      } else {
        kv.set(key, { type: tname, value: readScalar(c, tname, `value of "${key}"`) });
      }
    } catch (e) {
      if (e instanceof FormatError) throw e;
      fail(`key "${key}": ${(e as Error).message}`);
    }
  }
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const al = kv.get('general.alignment');
  if (al) {
    if (al.type !== 'u32') fail('general.alignment must be a u32');
    const a = al.value as number;
    if (a === 0 || (a & (a - 1)) !== 0 || a > 1 << 16) fail(`general.alignment ${a} is not a reasonable power of two`);
    alignment = a;
  }
  const tensors = new Map<string, GgufTensorInfo>();
  for (let i = 0; i < nTensors; i++) {
    const name = c.str(`tensor #${i} name`);
    if (tensors.has(name)) fail(`duplicate tensor "${name}"`);
    const nd = c.u32(`tensor "${name}" n_dims`);
    if (nd < 1 || nd > MAX_DIMS) fail(`tensor "${name}": n_dims ${nd} outside 1..${MAX_DIMS}`);
    const ne: number[] = [];
    for (let d = 0; d < nd; d++) {
      const v = c.u64(`tensor "${name}" dim ${d}`);
      if (v === 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`tensor "${name}": dimension ${d} is ${v}`);
      ne.push(Number(v));
    }
    const tid = c.u32(`tensor "${name}" type`);
    const gt = GGML_BY_ID.get(tid);
    if (!gt) fail(`tensor "${name}": unknown ggml type ${tid}`);
    const offBig = c.u64(`tensor "${name}" offset`);
    if (offBig > BigInt(src.size)) fail(`tensor "${name}": offset ${offBig} is past the end of the file`);
    const offset = Number(offBig);
    if (offset % alignment !== 0) fail(`tensor "${name}": offset ${offset} is not aligned to ${alignment}`);
    let n: number;
    try {
      n = numel(ne);
    } catch (e) {
      return fail(`tensor "${name}": ${(e as Error).message}`);
    }
    if (ne[0]! % gt!.block !== 0)
      fail(`tensor "${name}": row length ${ne[0]} is not a multiple of the ${gt!.name} block size ${gt!.block}`);
    const byteLength = (n / gt!.block) * gt!.bytes;
    if (!Number.isSafeInteger(byteLength)) fail(`tensor "${name}": byte size overflows`);
    tensors.set(name, { name, shape: [...ne].reverse(), type: gt!.name, offset, byteLength });
  }
  const dataStart = Math.ceil(c.pos / alignment) * alignment;
  const dataSize = src.size - dataStart;
  if (nTensors > 0 && dataSize < 0) fail('file ends before the tensor data section');
  const sorted = [...tensors.values()].sort((a, b) => a.offset - b.offset);
  let end = 0;
  for (const t of sorted) {
    if (t.offset < end)
      fail(`tensor "${t.name}" at offset ${t.offset} overlaps the previous tensor (which ends at ${end})`);
    end = t.offset + t.byteLength;
    if (end > dataSize)
      fail(`tensor "${t.name}" (offset ${t.offset}, ${t.byteLength} bytes) runs past the end of the file`);
  }
  return { version, kv, tensors, alignment, dataStart };
}

export class GgufReader {
  private constructor(
    private readonly src: ByteSource,
    readonly gguf: GgufFile,
  ) {}
  static open(path: string): GgufReader {
    const src = new FileSource(path);
    try {
      return new GgufReader(src, readGgufHeader(src));
    } catch (e) {
      src.close();
      throw e;
    }
  }
  static fromBuffer(buf: Uint8Array, label = '<buffer>'): GgufReader {
    const src = new BufferSource(buf, label);
    return new GgufReader(src, readGgufHeader(src));
  }
  get kv(): Map<string, GgufValue> {
    return this.gguf.kv;
  }
  get tensors(): Map<string, GgufTensorInfo> {
    return this.gguf.tensors;
  }
  /** Value of a key, or undefined. */
  get(key: string): GgufScalar | GgufScalar[] | undefined {
    return this.gguf.kv.get(key)?.value;
  }
  /** A tensor's bytes as stored (e.g. Q8_0 blocks, which the engine computes with directly). */
  loadRaw(name: string): { type: string; shape: number[]; bytes: Uint8Array } {
    const t = this.gguf.tensors.get(name);
    if (!t) throw new FormatError(this.src.label, `no tensor named "${name}"`);
    const bytes = new Uint8Array(t.byteLength);
    this.src.read(this.gguf.dataStart + t.offset, bytes);
    return { type: t.type, shape: [...t.shape], bytes };
  }
  /** Decodes a float tensor, or a Q8_0 / Q4_0 / Q4_K one, to f32 (other quantized types are listed but not decoded). */
  load(name: string): TensorRecord {
    const t = this.gguf.tensors.get(name);
    if (!t) throw new FormatError(this.src.label, `no tensor named "${name}"`);
    const gt = GGML_BY_NAME.get(t.type)!;
    if (isGgufQuantType(t.type)) {
      const cols = t.shape[t.shape.length - 1]!;
      const data = dequantizeRows(t.type, this.loadRaw(name).bytes, t.byteLength / quantBytes(t.type, 1, cols), cols);
      return { dtype: 'F32', shape: [...t.shape], data };
    }
    if (!gt.dtype) throw new FormatError(this.src.label, `tensor "${name}": decoding ${t.type} is not supported`);
    const raw = new Uint8Array(t.byteLength);
    this.src.read(this.gguf.dataStart + t.offset, raw);
    const n = t.byteLength / gt.bytes;
    const out = new Float32Array(n);
    decodeInto(gt.dtype, raw, n, out, 0);
    return { dtype: gt.dtype, shape: [...t.shape], data: out };
  }
  close(): void {
    this.src.close();
  }
}

export type GgufTensorInput =
  | {
      name: string;
      /** Row-major shape (written reversed, as GGUF expects). */
      shape: number[];
      type: GgufTensorType;
      data: Float32Array;
    }
  | {
      name: string;
      shape: number[];
      /** Already quantized (gguf-quant.ts): `raw` holds the blocks, row after row. */
      type: GgufQuantType;
      raw: Uint8Array;
    };

/** Bytes a tensor takes in the data section (before alignment padding). */
function tensorBytes(t: GgufTensorInput, n: number): number {
  return 'raw' in t ? t.raw.length : n * TYPE_BYTES[t.type];
}

export interface GgufWriteInput {
  kv: Iterable<readonly [string, GgufValue]>;
  tensors: GgufTensorInput[];
}

class ByteBuilder {
  private parts: Uint8Array[] = [];
  length = 0;
  push(b: Uint8Array): void {
    this.parts.push(b);
    this.length += b.length;
  }
  scalar(t: Exclude<GgufScalarType, 'string'>, v: GgufScalar): void {
    const b = new Uint8Array(SCALAR_SIZE[t]);
    const dv = new DataView(b.buffer);
    switch (t) {
      case 'u8':
        dv.setUint8(0, v as number);
        break;
      case 'i8':
        dv.setInt8(0, v as number);
        break;
      case 'u16':
        dv.setUint16(0, v as number, true);
        break;
      case 'i16':
        dv.setInt16(0, v as number, true);
        break;
      case 'u32':
        dv.setUint32(0, v as number, true);
        break;
      case 'i32':
        dv.setInt32(0, v as number, true);
        break;
      case 'f32':
        dv.setFloat32(0, v as number, true);
        break;
      case 'f64':
        dv.setFloat64(0, v as number, true);
        break;
      case 'u64':
        dv.setBigUint64(0, BigInt(v as number | bigint), true);
        break;
      case 'i64':
        dv.setBigInt64(0, BigInt(v as number | bigint), true);
        break;
      case 'bool':
        dv.setUint8(0, v ? 1 : 0);
        break;
    }
    this.push(b);
  }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.scalar('u64', b.length);
    this.push(b);
  }
  value(t: GgufScalarType, v: GgufScalar): void {
    if (t === 'string') {
      if (typeof v !== 'string') throw new TypeError(`expected a string, got ${typeof v}`);
      this.str(v);
    } else {
      if (t === 'bool' ? typeof v !== 'boolean' : typeof v !== 'number' && typeof v !== 'bigint')
        throw new TypeError(`expected a ${t}, got ${typeof v}`);
      this.scalar(t, v);
    }
  }
  concat(): Uint8Array {
    return Buffer.concat(this.parts, this.length);
  }
}

const GGML_WRITE_ID: Record<GgufTensorType | GgufQuantType, number> = {
  F32: 0,
  F16: 1,
  BF16: 30,
  Q8_0: 8,
  Q4_0: 2,
  Q4_K: 12,
};
const TYPE_BYTES: Record<GgufTensorType, number> = { F32: 4, F16: 2, BF16: 2 };

/** Writes a GGUF v3 file atomically. general.alignment is honoured if given (default 32). */
export function writeGguf(path: string, input: GgufWriteInput): void {
  const kv = new Map<string, GgufValue>();
  for (const [k, v] of input.kv) {
    if (kv.has(k)) throw new FormatError(path, `duplicate key "${k}"`);
    kv.set(k, v);
  }
  const al = kv.get('general.alignment');
  const alignment = al ? (al.value as number) : GGUF_DEFAULT_ALIGNMENT;
  if (!Number.isInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0)
    throw new FormatError(path, `bad alignment ${alignment}`);
  const h = new ByteBuilder();
  h.scalar('u32', GGUF_MAGIC);
  h.scalar('u32', 3);
  h.scalar('u64', input.tensors.length);
  h.scalar('u64', kv.size);
  for (const [k, v] of kv) {
    h.str(k);
    h.scalar('u32', TYPE_IDS[v.type]);
    try {
      if (v.type === 'array') {
        h.scalar('u32', TYPE_IDS[v.itemType]);
        h.scalar('u64', v.value.length);
        for (const x of v.value) h.value(v.itemType, x);
      } else h.value(v.type, v.value);
    } catch (e) {
      throw new FormatError(path, `key "${k}": ${(e as Error).message}`);
    }
  }
  const names = new Set<string>();
  let offset = 0;
  const offsets: number[] = [];
  for (const t of input.tensors) {
    if (names.has(t.name)) throw new FormatError(path, `duplicate tensor "${t.name}"`);
    names.add(t.name);
    if (t.shape.length < 1 || t.shape.length > MAX_DIMS)
      throw new FormatError(path, `tensor "${t.name}": ${t.shape.length} dimensions (GGUF allows 1..4)`);
    const n = numel(t.shape, `tensor "${t.name}"`);
    if (!(t.type in GGML_WRITE_ID))
      throw new FormatError(path, `tensor "${t.name}": cannot write type ${String(t.type)}`);
    if ('raw' in t) {
      const cols = t.shape[t.shape.length - 1]!;
      let want: number;
      try {
        want = quantBytes(t.type, n / cols, cols);
      } catch (e) {
        throw new FormatError(path, `tensor "${t.name}": ${(e as Error).message}`);
      }
      if (t.raw.length !== want)
        throw new FormatError(
          path,
          `tensor "${t.name}": ${t.type} [${t.shape.join(', ')}] takes ${want} bytes, got ${t.raw.length}`,
        );
    } else if (n !== t.data.length)
      throw new FormatError(
        path,
        `tensor "${t.name}": shape [${t.shape.join(', ')}] has ${n} elements but data has ${t.data.length}`,
      );
    h.str(t.name);
    h.scalar('u32', t.shape.length);
    for (let d = t.shape.length - 1; d >= 0; d--) h.scalar('u64', t.shape[d]!);
    h.scalar('u32', GGML_WRITE_ID[t.type]);
    h.scalar('u64', offset);
    offsets.push(offset);
    offset += Math.ceil(tensorBytes(t, n) / alignment) * alignment;
  }
  const header = h.concat();
  const pad = (len: number) => new Uint8Array((alignment - (len % alignment)) % alignment);
  writeFileAtomic(path, (fd) => {
    writeAll(fd, header);
    writeAll(fd, pad(header.length));
    const CHUNK = 1 << 20;
    const buf = new Uint8Array(CHUNK * 4);
    for (const t of input.tensors) {
      if ('raw' in t) {
        writeAll(fd, t.raw);
        writeAll(fd, pad(t.raw.length));
        continue;
      }
      const esz = TYPE_BYTES[t.type];
      const d = t.data; // read once: a record may produce its data on demand
      for (let i = 0; i < d.length; i += CHUNK) {
        const n = Math.min(CHUNK, d.length - i);
        const view = buf.subarray(0, n * esz);
        encodeInto(t.type, d, i, n, view);
        writeAll(fd, view);
      }
      writeAll(fd, pad(d.length * esz));
    }
  });
}
