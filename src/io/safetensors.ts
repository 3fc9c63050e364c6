/**
 * safetensors reader and writer.
 *
 * Layout: u64 little-endian header length N, N bytes of UTF-8 JSON
 * ({name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {string: string}}),
 * then the byte buffer that the offsets index (relative to its start). The reader
 * validates everything before touching tensor data and loads tensors lazily.
 */
import { BufferSource, FileSource, writeAll, writeFileAtomic, type ByteSource } from './byte-source.js';
import { DTYPE_BYTES, decodeInto, encodeInto, isDType } from './dtype.js';
import { parseStrictJson } from './strict-json.js';
import { FormatError, numel, type DType, type TensorInfo, type TensorRecord } from './types.js';

/** The reference implementation rejects headers above 100 MB; so do we. */
export const MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsEntry extends TensorInfo {
  name: string;
  /** Offsets relative to the start of the data buffer. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  entries: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
  /** Absolute position of the data buffer in the file. */
  dataStart: number;
}

/** Tensors given to the writers: a Map, entries, or a plain record. */
export type TensorInput =
  | ReadonlyMap<string, TensorRecord>
  | Iterable<readonly [string, TensorRecord]>
  | Readonly<Record<string, TensorRecord>>;

export interface SafetensorsWriteOptions {
  /** Encode every tensor as this dtype (default: each record's own dtype). */
  dtype?: DType;
  metadata?: Record<string, string>;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Parses and validates the header of a safetensors file of `fileSize` bytes. */
export function readSafetensorsHeader(src: ByteSource): SafetensorsHeader {
  const file = src.label;
  if (src.size < 8) throw new FormatError(file, `too short for a safetensors file (${src.size} bytes)`);
  const lenBytes = new Uint8Array(8);
  src.read(0, lenBytes);
  const n = new DataView(lenBytes.buffer).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES))
    throw new FormatError(file, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  const headerLen = Number(n);
  if (headerLen < 2) throw new FormatError(file, `header length ${headerLen} is too small`);
  if (8 + headerLen > src.size) {
    throw new FormatError(file, `header length ${headerLen} runs past the end of the file (${src.size} bytes)`);
  }
  const hb = new Uint8Array(headerLen);
  src.read(8, hb);
  let text: string;
  try {
    text = utf8.decode(hb);
  } catch {
    throw new FormatError(file, 'header is not valid UTF-8');
  }
  if (!text.startsWith('{')) throw new FormatError(file, 'header does not start with "{"');
  // writers may pad the header with trailing spaces for alignment
  let json: unknown;
  try {
    json = parseStrictJson(text.trimEnd());
  } catch (e) {
    throw new FormatError(file, `header JSON is invalid: ${(e as Error).message}`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json))
    throw new FormatError(file, 'header is not a JSON object');
  const dataStart = 8 + headerLen;
  const dataSize = src.size - dataStart;
  const entries = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = validateMetadata(file, raw);
      continue;
    }
    entries.set(name, validateEntry(file, name, raw, dataSize));
  }
  // the data buffer must be covered exactly: no overlaps, no holes, no trailing bytes
  const sorted = [...entries.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  for (const e of sorted) {
    if (e.begin < pos)
      throw new FormatError(file, `tensor "${e.name}": data_offsets [${e.begin}, ${e.end}] overlap another tensor`);
    if (e.begin > pos)
      throw new FormatError(
        file,
        `tensor "${e.name}": gap in the data buffer before offset ${e.begin} (previous data ends at ${pos})`,
      );
    pos = e.end;
  }
  if (pos !== dataSize) {
    throw new FormatError(file, `tensor data covers ${pos} bytes but the data buffer holds ${dataSize} bytes`);
  }
  return { entries, metadata, dataStart };
}

function validateMetadata(file: string, raw: unknown): Record<string, string> {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new FormatError(file, '__metadata__ is not an object');
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof v !== 'string') throw new FormatError(file, `__metadata__["${k}"] is not a string`);
    out[k] = v;
  }
  return out;
}

function validateEntry(file: string, name: string, raw: unknown, dataSize: number): SafetensorsEntry {
  const bad = (msg: string): never => {
    throw new FormatError(file, `tensor "${name}": ${msg}`);
  };
  if (name.length === 0) bad('empty tensor name');
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return bad('entry is not an object');
  const r = raw as Record<string, unknown>;
  for (const k of Object.keys(r))
    if (k !== 'dtype' && k !== 'shape' && k !== 'data_offsets') bad(`unexpected field "${k}"`);
  if (!isDType(r.dtype)) return bad(`unknown dtype ${JSON.stringify(r.dtype)}`);
  const dtype = r.dtype;
  if (!Array.isArray(r.shape)) return bad('shape is not an array');
  const shape = r.shape as unknown[];
  if (shape.length > 16) bad(`shape has ${shape.length} dimensions`);
  for (const d of shape)
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) bad(`bad dimension ${JSON.stringify(d)} in shape`);
  let count: number;
  try {
    count = numel(shape as number[]);
  } catch (e) {
    return bad((e as Error).message);
  }
  const off = r.data_offsets;
  if (!Array.isArray(off) || off.length !== 2) return bad('data_offsets is not a [begin, end] pair');
  const [begin, end] = off as unknown[];
  if (
    typeof begin !== 'number' ||
    typeof end !== 'number' ||
    !Number.isSafeInteger(begin) ||
    !Number.isSafeInteger(end) ||
    begin < 0 ||
    end < 0
  ) {
    return bad(`data_offsets ${JSON.stringify(off)} are not non-negative integers`);
  }
  if (end < begin) bad(`data_offsets [${begin}, ${end}] end before they begin`);
  if (end > dataSize) bad(`data_offsets [${begin}, ${end}] run past the data buffer (${dataSize} bytes)`);
  const byteLength = count * DTYPE_BYTES[dtype];
  if (!Number.isSafeInteger(byteLength)) bad('byte size overflows');
  if (end - begin !== byteLength) {
    bad(`shape [${shape.join(', ')}] of ${dtype} needs ${byteLength} bytes but data_offsets span ${end - begin}`);
  }
  return { name, dtype, shape: shape as number[], byteLength, begin, end };
}

/** Lazy reader: the header is parsed on open; tensors are read on demand. */
export class SafetensorsReader {
  private constructor(
    private readonly src: ByteSource,
    readonly header: SafetensorsHeader,
  ) {}

  static open(path: string): SafetensorsReader {
    const src = new FileSource(path);
    try {
      return new SafetensorsReader(src, readSafetensorsHeader(src));
    } catch (e) {
      src.close();
      throw e;
    }
  }

  static fromBuffer(buf: Uint8Array, label = '<buffer>'): SafetensorsReader {
    const src = new BufferSource(buf, label);
    return new SafetensorsReader(src, readSafetensorsHeader(src));
  }

  get file(): string {
    return this.src.label;
  }
  get metadata(): Record<string, string> {
    return this.header.metadata;
  }
  names(): string[] {
    return [...this.header.entries.keys()];
  }
  has(name: string): boolean {
    return this.header.entries.has(name);
  }
  info(name: string): TensorInfo {
    const e = this.entry(name);
    return { dtype: e.dtype, shape: [...e.shape], byteLength: e.byteLength };
  }

  /** Reads and decodes one tensor to f32, in chunks so only the output is large. */
  load(name: string): TensorRecord {
    const e = this.entry(name);
    const count = e.byteLength / DTYPE_BYTES[e.dtype];
    const out = new Float32Array(count);
    const pos = this.header.dataStart + e.begin;
    if (e.dtype === 'F32' && isLittleEndian) {
      this.src.read(pos, new Uint8Array(out.buffer));
    } else {
      const esz = DTYPE_BYTES[e.dtype];
      const chunkElems = Math.max(1, Math.floor((8 << 20) / esz));
      const chunk = new Uint8Array(Math.min(count, chunkElems) * esz);
      for (let i = 0; i < count; i += chunkElems) {
        const n = Math.min(chunkElems, count - i);
        const view = chunk.subarray(0, n * esz);
        this.src.read(pos + i * esz, view);
        decodeInto(e.dtype, view, n, out, i);
      }
    }
    return { dtype: e.dtype, shape: [...e.shape], data: out };
  }

  /** Raw stored bytes of one tensor (for copying without re-encoding). */
  loadRaw(name: string): Uint8Array {
    const e = this.entry(name);
    const out = new Uint8Array(e.byteLength);
    this.src.read(this.header.dataStart + e.begin, out);
    return out;
  }

  loadAll(): Map<string, TensorRecord> {
    const m = new Map<string, TensorRecord>();
    for (const n of this.names()) m.set(n, this.load(n));
    return m;
  }

  close(): void {
    this.src.close();
  }

  private entry(name: string): SafetensorsEntry {
    const e = this.header.entries.get(name);
    if (!e) throw new FormatError(this.src.label, `no tensor named "${name}"`);
    return e;
  }
}

const isLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export function tensorEntries(t: TensorInput): [string, TensorRecord][] {
  if (t instanceof Map) return [...(t as ReadonlyMap<string, TensorRecord>).entries()];
  if (Symbol.iterator in (t as object))
    return [...(t as Iterable<readonly [string, TensorRecord]>)].map(([k, v]) => [k, v]);
  return Object.entries(t as Record<string, TensorRecord>);
}

interface Planned {
  name: string;
  rec: TensorRecord;
  dtype: DType;
  begin: number;
  end: number;
}

/** Validates the tensors and lays out the header; shared by the file and buffer writers. */
function plan(
  label: string,
  tensors: TensorInput,
  opts: SafetensorsWriteOptions,
): { header: Uint8Array; items: Planned[]; dataSize: number } {
  const items: Planned[] = [];
  const seen = new Set<string>();
  let pos = 0;
  const json: Record<string, unknown> = {};
  if (opts.metadata) {
    for (const [k, v] of Object.entries(opts.metadata))
      if (typeof v !== 'string') throw new FormatError(label, `metadata "${k}" is not a string`);
    json.__metadata__ = opts.metadata;
  }
  for (const [name, rec] of tensorEntries(tensors)) {
    if (!name || name === '__metadata__') throw new FormatError(label, `invalid tensor name "${name}"`);
    if (seen.has(name)) throw new FormatError(label, `duplicate tensor name "${name}"`);
    seen.add(name);
    const dtype = opts.dtype ?? rec.dtype;
    if (!isDType(dtype)) throw new FormatError(label, `tensor "${name}": unknown dtype ${String(dtype)}`);
    let n: number;
    try {
      n = numel(rec.shape);
    } catch (e) {
      throw new FormatError(label, `tensor "${name}": ${(e as Error).message}`);
    }
    if (n !== rec.data.length) {
      throw new FormatError(
        label,
        `tensor "${name}": shape [${rec.shape.join(', ')}] has ${n} elements but data has ${rec.data.length}`,
      );
    }
    const bytes = n * DTYPE_BYTES[dtype];
    items.push({ name, rec, dtype, begin: pos, end: pos + bytes });
    json[name] = { dtype, shape: rec.shape, data_offsets: [pos, pos + bytes] };
    pos += bytes;
  }
  let text = JSON.stringify(json);
  // pad with spaces so the data buffer starts 8-byte aligned, as the reference writer does
  const raw = Buffer.byteLength(text, 'utf8');
  text += ' '.repeat((8 - ((8 + raw) % 8)) % 8);
  const body = Buffer.from(text, 'utf8');
  const header = new Uint8Array(8 + body.length);
  new DataView(header.buffer).setBigUint64(0, BigInt(body.length), true);
  header.set(body, 8);
  return { header, items, dataSize: pos };
}

/** Encodes tensors one chunk at a time, handing each chunk to `sink`. */
function streamData(items: Planned[], sink: (bytes: Uint8Array) => void): void {
  const CHUNK = 4 << 20;
  const buf = new Uint8Array(CHUNK);
  for (const it of items) {
    const esz = DTYPE_BYTES[it.dtype];
    const per = Math.floor(CHUNK / esz);
    const d = it.rec.data;
    for (let i = 0; i < d.length; i += per) {
      const n = Math.min(per, d.length - i);
      const view = buf.subarray(0, n * esz);
      encodeInto(it.dtype, d, i, n, view);
      sink(view);
    }
  }
}

/** Writes a safetensors file atomically (temp file + rename), streaming the data. */
export function writeSafetensors(path: string, tensors: TensorInput, opts: SafetensorsWriteOptions = {}): void {
  const { header, items } = plan(path, tensors, opts);
  writeFileAtomic(path, (fd) => {
    writeAll(fd, header);
    streamData(items, (b) => writeAll(fd, b));
  });
}

/** Serialises tensors to one in-memory buffer (e.g. to send over the network). */
export function serializeSafetensors(tensors: TensorInput, opts: SafetensorsWriteOptions = {}): Buffer {
  const { header, items, dataSize } = plan('<buffer>', tensors, opts);
  const out = Buffer.allocUnsafe(header.length + dataSize);
  out.set(header, 0);
  let pos = header.length;
  streamData(items, (b) => {
    out.set(b, pos);
    pos += b.length;
  });
  return out;
}

/** Parses an in-memory safetensors buffer, decoding every tensor. */
export function deserializeSafetensors(
  buf: Uint8Array,
  label = '<buffer>',
): { tensors: Map<string, TensorRecord>; metadata: Record<string, string> } {
  const r = SafetensorsReader.fromBuffer(buf, label);
  return { tensors: r.loadAll(), metadata: r.metadata };
}

/** Size in bytes of the file `writeSafetensors` would produce (for shard planning). */
export function safetensorsDataBytes(shape: readonly number[], dtype: DType): number {
  return numel(shape) * DTYPE_BYTES[dtype];
}
