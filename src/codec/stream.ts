// A state that travels as compressed deltas against what the receiver holds.
//
// Downlink (server -> clients): the server keeps `held`, the exact state a client holds after
// applying every payload so far (version v). Version v+1 is sent as Q(target - held); held becomes
// held + dequantized, bit for bit what each client computes, so quantization error never piles up:
// the next delta carries it. Every client at version v receives the same bytes. A client that is
// further behind (it missed rounds, or joined late) gets the held state whole, in f32, so it lands
// on the same chain. Version 0 is the all-zero state both sides know without a transfer.
//
// Uplink (client -> server): the client sends Q(local - held + residual) with stochastic rounding
// and error feedback; the server adds the decoded delta to the same held state.
import { addStates, subtractStates } from './delta.js';
import type { Layout, NamedArrays } from './layout.js';
import { decodeTensors, encodeTensors, CodecError, type CodecName, type EncodeOptions } from './wire.js';

export function zeroState(layout: Layout): NamedArrays {
  return new Map(
    layout.names.map((n, i) => [n, { shape: [...layout.shapes[i]!], data: new Float32Array(layout.sizes[i]!) }]),
  );
}

export function cloneArrays(s: NamedArrays): NamedArrays {
  return new Map([...s].map(([k, v]) => [k, { shape: [...v.shape], data: Float32Array.from(v.data) }]));
}

/** The sending side of a downlink stream. */
export class DeltaSender {
  private heldState: NamedArrays;
  private heldVersion = 0;
  /** The last delta payload (from version heldVersion - 1), shared by every client one behind. */
  private lastDelta: Uint8Array | null = null;

  constructor(
    readonly layout: Layout,
    private readonly codec: CodecName,
    private readonly blockSize?: number,
  ) {
    this.heldState = zeroState(layout);
  }

  get version(): number {
    return this.heldVersion;
  }

  /** What a client at the current version holds. */
  get held(): NamedArrays {
    return this.heldState;
  }

  /** Moves the stream to `target` as the next version (round-to-nearest: every client gets the same bytes). */
  advance(target: NamedArrays): void {
    const delta = subtractStates(target, this.heldState, 'downlink delta');
    const enc = encodeTensors(this.layout, delta, 'delta', this.heldVersion, {
      codec: this.codec,
      ...(this.blockSize ? { blockSize: this.blockSize } : {}),
    });
    this.heldState = addStates(this.heldState, enc.received, 'downlink delta');
    this.lastDelta = enc.bytes;
    this.heldVersion++;
  }

  /** The payload that brings a client from `peerVersion` to the current version; null when it is current. */
  payloadFor(peerVersion: number): Uint8Array | null {
    if (peerVersion === this.heldVersion) return null;
    if (peerVersion === this.heldVersion - 1 && this.lastDelta) return this.lastDelta;
    return fullPayload(this.layout, this.heldState, this.heldVersion);
  }

  /** For checkpoints: the held state and its version (the last delta is re-derived as a full payload if needed). */
  snapshot(): { version: number; held: NamedArrays } {
    return { version: this.heldVersion, held: cloneArrays(this.heldState) };
  }

  restore(s: { version: number; held: NamedArrays }): void {
    this.heldState = cloneArrays(s.held);
    this.heldVersion = s.version;
    this.lastDelta = null;
  }
}

/** The receiving side: applies a payload to what it holds and returns the new state and version. */
export function receiveState(
  layout: Layout,
  held: { version: number; state: NamedArrays } | null,
  bytes: Uint8Array,
  what: string,
): { version: number; state: NamedArrays } {
  const d = decodeTensors(bytes, layout, what);
  if (d.kind === 'full') return { version: d.base, state: d.tensors };
  const base = held ?? { version: 0, state: zeroState(layout) };
  if (d.base !== base.version)
    throw new CodecError(what, 'base', `a delta from version ${d.base}, but version ${base.version} is held`);
  return { version: d.base + 1, state: addStates(base.state, d.tensors, what) };
}

/** Encodes a full lossless state at a version (the catch-up payload carries its version as the base). */
export function fullPayload(layout: Layout, state: NamedArrays, version: number): Uint8Array {
  return encodeTensors(layout, state, 'full', version, { codec: 'none' }).bytes;
}

/** A client's upload: the change from the held state, compressed (seeded stochastic rounding, error feedback). */
export function encodeUpload(
  layout: Layout,
  local: NamedArrays,
  held: { version: number; state: NamedArrays },
  o: EncodeOptions,
): Uint8Array {
  return encodeTensors(layout, subtractStates(local, held.state, 'upload'), 'delta', held.version, o).bytes;
}

/** The server's reading of an upload: held + decoded delta, refused when it was made against another version. */
export function decodeUpload(
  layout: Layout,
  bytes: Uint8Array,
  held: { version: number; state: NamedArrays },
  what: string,
): NamedArrays {
  const d = decodeTensors(bytes, layout, what);
  if (d.kind !== 'delta') throw new CodecError(what, 'kind', "an upload must be a delta against the round's adapter");
  if (d.base !== held.version)
    throw new CodecError(
      what,
      'base',
      `made against version ${d.base}, the round's adapter is version ${held.version}`,
    );
  return addStates(held.state, d.tensors, what);
}
