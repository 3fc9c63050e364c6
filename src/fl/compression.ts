// Compressed round traffic (config `compression: {codec: none|q8|q4, topk}`), built on src/codec:
//
//   down  one body per client: [u32 length][adapter stream payload][u32 length][emulator payload or none]
//         Each stream is a DeltaSender: Q(new - held) for clients one version behind (the same bytes
//         for all of them), the held state whole in f32 for clients further behind. Round to nearest.
//   up    Q(local - held adapter + residual), seeded stochastic rounding, optional top-k; the
//         residual (error feedback) stays with the client.
//
// CompressedServer is the server's half, CompressedClient one client's. A stream's version counts
// the states sent (0 = the all-zero state both sides start from). Both halves are durable: the
// server's streams go into each checkpoint (a resumed server goes on with the same versions, so the
// clients' copies stay valid), a networked client saves what it holds and its error feedback with
// each trained update (a restarted client goes on with the same chain and residuals). A peer at a
// version the server no longer has a delta for receives the held state whole.
import {
  DeltaSender,
  ErrorFeedback,
  decodeUpload,
  encodeUpload,
  layoutOf,
  receiveState,
  CodecError,
  type Layout,
  type NamedArrays,
  type Compression,
} from '../codec/index.js';
import { mulberry32 } from '../util/rng.js';
import { deserializeSafetensors, serializeSafetensors } from '../io/safetensors.js';
import type { TensorRecord } from '../io/types.js';

/** A stream's durable part: the version and the state every client at that version holds. */
export interface StreamSnapshot {
  version: number;
  held: NamedArrays;
}

/** The server's streams, for checkpoints (`emulatorSource`: the emulator version the stream last took). */
export interface CompressedServerSnapshot {
  adapter: StreamSnapshot;
  emulator: (StreamSnapshot & { source: number }) | null;
}

function frame(parts: (Uint8Array | null)[]): Buffer {
  const out: Buffer[] = [];
  for (const p of parts) {
    const len = Buffer.alloc(4);
    len.writeUInt32LE(p ? p.length : 0);
    out.push(len);
    if (p) out.push(Buffer.from(p.buffer, p.byteOffset, p.length));
  }
  return Buffer.concat(out);
}

function unframe(buf: Uint8Array, n: number, what: string): (Uint8Array | null)[] {
  const out: (Uint8Array | null)[] = [];
  let pos = 0;
  for (let i = 0; i < n; i++) {
    if (pos + 4 > buf.length) throw new CodecError(what, `part ${i} length`, 'body ends early');
    const len = new DataView(buf.buffer, buf.byteOffset + pos, 4).getUint32(0, true);
    pos += 4;
    if (pos + len > buf.length)
      throw new CodecError(what, `part ${i}`, `${len} bytes announced, ${buf.length - pos} left`);
    out.push(len === 0 ? null : buf.subarray(pos, pos + len));
    pos += len;
  }
  if (pos !== buf.length) throw new CodecError(what, 'trailer', `${buf.length - pos} unexpected bytes`);
  return out;
}

export class CompressedServer {
  readonly adapterLayout: Layout;
  readonly emulatorLayout: Layout | null;
  private readonly adapter: DeltaSender;
  private readonly emulator: DeltaSender | null;
  private emulatorSource = -1;

  constructor(
    readonly c: Compression,
    adapter: NamedArrays,
    emulator: NamedArrays | null,
  ) {
    this.adapterLayout = layoutOf(adapter);
    this.emulatorLayout = emulator ? layoutOf(emulator) : null;
    this.adapter = new DeltaSender(this.adapterLayout, c.codec);
    this.emulator = this.emulatorLayout ? new DeltaSender(this.emulatorLayout, c.codec) : null;
  }

  /** Start of a round: the global adapter (and the emulator LoRA when its version moved) become the streams' next versions. */
  beginRound(adapter: NamedArrays, emulator: NamedArrays | null, emulatorVersion: number): void {
    this.adapter.advance(adapter);
    if (this.emulator && emulator && emulatorVersion !== this.emulatorSource) {
      this.emulator.advance(emulator);
      this.emulatorSource = emulatorVersion;
    }
  }

  /** The down body for a client holding these stream versions. */
  payloadFor(adapterVersion: number, emulatorVersion: number): Buffer {
    return frame([this.adapter.payloadFor(adapterVersion), this.emulator?.payloadFor(emulatorVersion) ?? null]);
  }

  /** A client's update as the state it stands for (the round's held adapter + the decoded delta). */
  readUpdate(body: Uint8Array, what: string): NamedArrays {
    return decodeUpload(this.adapterLayout, body, { version: this.adapter.version, state: this.adapter.held }, what);
  }

  snapshot(): CompressedServerSnapshot {
    return {
      adapter: this.adapter.snapshot(),
      emulator: this.emulator ? { ...this.emulator.snapshot(), source: this.emulatorSource } : null,
    };
  }

  restore(s: CompressedServerSnapshot): void {
    this.adapter.restore(s.adapter);
    if (this.emulator && s.emulator) {
      this.emulator.restore(s.emulator);
      this.emulatorSource = s.emulator.source;
    }
  }
}

/** The layout ids of an agreement, checked against this peer's own tensors. */
export function checkLayouts(agreed: Record<string, number>, own: Record<string, number>, peer: string): void {
  for (const k of new Set([...Object.keys(agreed), ...Object.keys(own)]))
    if (agreed[k] !== own[k])
      throw new CodecError(
        peer,
        `layout '${k}'`,
        `the server's tensors have layout ${agreed[k]?.toString(16) ?? 'none'}, this model's ${own[k]?.toString(16) ?? 'none'} (another model or LoRA shape)`,
      );
}

export class CompressedClient {
  private adapter: { version: number; state: NamedArrays } | null = null;
  private emulator: { version: number; state: NamedArrays } | null = null;
  private feedback = new ErrorFeedback();

  constructor(
    readonly c: Compression,
    private readonly adapterLayout: Layout,
    private readonly emulatorLayout: Layout | null,
  ) {}

  get versions(): { adapter: number; emulator: number } {
    return { adapter: this.adapter?.version ?? 0, emulator: this.emulator?.version ?? 0 };
  }

  /** The emulator LoRA this client holds (null before the first one arrived). */
  get heldEmulator(): NamedArrays | null {
    return this.emulator?.state ?? null;
  }

  /**
   * What this client holds and its error feedback as named arrays: `adapter.*`, `emulator.*`,
   * `feedback.*`, and `versions` [adapter, emulator] (-1: nothing held). The simulation keeps them in
   * its checkpoints; toBuffer writes them as a networked client's file.
   */
  toArrays(): NamedArrays {
    const m: NamedArrays = new Map();
    const put = (prefix: string, s: NamedArrays) => {
      for (const [k, v] of s) m.set(`${prefix}${k}`, { shape: [...v.shape], data: Float32Array.from(v.data) });
    };
    if (this.adapter) put('adapter.', this.adapter.state);
    if (this.emulator) put('emulator.', this.emulator.state);
    for (const [k, v] of this.feedback.state()) m.set(`feedback.${k}`, { shape: [v.length], data: v });
    m.set('versions', { shape: [2], data: Float32Array.of(this.adapter?.version ?? -1, this.emulator?.version ?? -1) });
    return m;
  }

  /** A client restored from toArrays' arrays; `what` names where they came from in errors. */
  static fromArrays(
    c: Compression,
    adapterLayout: Layout,
    emulatorLayout: Layout | null,
    arrays: NamedArrays,
    what: string,
  ): CompressedClient {
    const versions = arrays.get('versions')?.data;
    if (versions?.length !== 2) throw new CodecError(what, 'versions', 'missing or not [adapter, emulator]');
    const cc = new CompressedClient(c, adapterLayout, emulatorLayout);
    const part = (prefix: string, layout: Layout | null, v: number) => {
      if (!layout || !(Number.isInteger(v) && v >= 0)) return null;
      const state: NamedArrays = new Map();
      layout.names.forEach((n, i) => {
        const t = arrays.get(`${prefix}${n}`);
        if (!t || t.data.length !== layout.sizes[i])
          throw new CodecError(what, `${prefix}${n}`, 'missing or of another size than the agreed layout');
        state.set(n, { shape: [...layout.shapes[i]!], data: Float32Array.from(t.data) });
      });
      return { version: v, state };
    };
    cc.adapter = part('adapter.', adapterLayout, versions[0]!);
    cc.emulator = part('emulator.', emulatorLayout, versions[1]!);
    const residual = new Map<string, Float32Array>();
    for (const [k, t] of arrays)
      if (k.startsWith('feedback.')) residual.set(k.slice('feedback.'.length), Float32Array.from(t.data));
    cc.feedback = ErrorFeedback.fromState(residual);
    return cc;
  }

  /** What this client holds and its error feedback, as one safetensors body (saved with each trained update). */
  toBuffer(): Buffer {
    const arrays = this.toArrays();
    const [adapterVersion, emulatorVersion] = arrays.get('versions')!.data;
    arrays.delete('versions');
    const m = new Map<string, TensorRecord>();
    for (const [k, v] of arrays) m.set(k, { dtype: 'F32', shape: v.shape, data: v.data });
    return serializeSafetensors(m, {
      metadata: {
        format: 'fedbiot-codec-client/1',
        codec: this.c.codec,
        adapterVersion: String(adapterVersion),
        emulatorVersion: String(emulatorVersion),
      },
    });
  }

  /** A client restored from toBuffer's body; `what` names the file in errors. */
  static fromBuffer(
    c: Compression,
    adapterLayout: Layout,
    emulatorLayout: Layout | null,
    buf: Uint8Array,
    what: string,
  ): CompressedClient {
    const { tensors, metadata } = deserializeSafetensors(buf, what);
    if (metadata.format !== 'fedbiot-codec-client/1')
      throw new CodecError(what, 'format', `expected fedbiot-codec-client/1, got ${metadata.format}`);
    if (metadata.codec !== c.codec)
      throw new CodecError(what, 'codec', `saved for codec ${metadata.codec}, the server now uses ${c.codec}`);
    const arrays: NamedArrays = new Map();
    for (const [k, t] of tensors) arrays.set(k, { shape: [...t.shape], data: Float32Array.from(t.data) });
    // a version that is absent or not a number holds nothing (as written before any state arrived)
    const version = (v: string | undefined) =>
      v !== undefined && v.trim() !== '' && Number.isFinite(Number(v)) ? Number(v) : -1;
    arrays.set('versions', {
      shape: [2],
      data: Float32Array.of(version(metadata.adapterVersion), version(metadata.emulatorVersion)),
    });
    return CompressedClient.fromArrays(c, adapterLayout, emulatorLayout, arrays, what);
  }

  /** Applies a down body; returns the adapter to train from and the emulator LoRA when it changed. */
  receive(body: Uint8Array, what: string): { adapter: NamedArrays; emulator: NamedArrays | null } {
    const [a, e] = unframe(body, 2, what);
    if (a) this.adapter = receiveState(this.adapterLayout, this.adapter, a, `${what} (adapter)`);
    if (!this.adapter) throw new CodecError(what, 'adapter', 'no adapter state received yet');
    let emulator: NamedArrays | null = null;
    if (e) {
      if (!this.emulatorLayout) throw new CodecError(what, 'emulator', 'this model has no emulator');
      this.emulator = receiveState(this.emulatorLayout, this.emulator, e, `${what} (emulator)`);
      emulator = this.emulator.state;
    }
    return { adapter: this.adapter.state, emulator };
  }

  /** The up body for the locally trained adapter; `seed` drives the stochastic rounding. */
  upload(local: NamedArrays, seed: number): Buffer {
    if (!this.adapter) throw new Error('upload before any adapter was received');
    const bytes = encodeUpload(this.adapterLayout, local, this.adapter, {
      codec: this.c.codec,
      topk: this.c.topk,
      random: mulberry32(seed),
      feedback: this.feedback,
    });
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  }
}
