// Compressed round traffic (config `compression: {codec: none|q8|q4, topk}`), built on src/codec:
//
//   down  one body per client: [u32 length][adapter stream payload][u32 length][emulator payload or none]
//         Each stream is a DeltaSender: Q(new - held) for clients one version behind (the same bytes
//         for all of them), the held state whole in f32 for clients further behind. Round to nearest.
//   up    Q(local - held adapter + residual), seeded stochastic rounding, optional top-k; the
//         residual (error feedback) stays with the client.
//
// CompressedServer is the server's half, CompressedClient one client's. A stream's version counts
// the states sent (0 = the all-zero state both sides start from). Resuming a run restarts the
// streams on both sides from version 0 (the first payload is then a whole state, quantized).
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
}

export class CompressedClient {
  private adapter: { version: number; state: NamedArrays } | null = null;
  private emulator: { version: number; state: NamedArrays } | null = null;
  private readonly feedback = new ErrorFeedback();

  constructor(
    readonly c: Compression,
    private readonly adapterLayout: Layout,
    private readonly emulatorLayout: Layout | null,
  ) {}

  get versions(): { adapter: number; emulator: number } {
    return { adapter: this.adapter?.version ?? 0, emulator: this.emulator?.version ?? 0 };
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
