// What crosses the wire in a round, encoded once for both transports: the simulation encodes and
// decodes the very bodies a networked server and client exchange, so its byte counts are the
// network's (HTTP headers aside) and anything done to a body (a compression codec) acts on both.
//
//   round payload (server -> client): safetensors, tensors "adapter.<name>" (+ "emulator.<name>"),
//                                     metadata round, nonce, emulatorVersion, hasEmulator, codec
//   update (client -> server):        safetensors, the adapter tensors, metadata round, nonce,
//                                     samples, codec; the client's training metrics travel beside
//                                     it (HTTP header x-fedbiot-metrics), so the body's size does
//                                     not depend on timings
//
// Extension point: a PayloadCodec turns a LoRA state into tensor records and back (f32 by
// default). A compressing codec (8-bit, 4-bit, top-k) implements it and is registered in CODECS;
// the codec name travels in the metadata, and decoding refuses a body whose codec is unknown.
import { serializeSafetensors, deserializeSafetensors } from '../io/safetensors.js';
import type { TensorRecord } from '../io/types.js';
import type { LoraState } from '../fedbiot/lora-state.js';

export interface PayloadCodec {
  readonly name: string;
  /** Tensor records for `state`; names may carry suffixes of the codec's own (scales, indices). */
  encode(state: LoraState, prefix: string): Map<string, TensorRecord>;
  /** The state back from the records under `prefix` (prefix already stripped from the keys). */
  decode(records: Map<string, TensorRecord>, label: string): LoraState;
}

/** Plain f32 tensors: lossless, the default. */
export const f32Codec: PayloadCodec = {
  name: 'f32',
  encode(state, prefix) {
    const m = new Map<string, TensorRecord>();
    for (const [k, v] of state) m.set(`${prefix}${k}`, { dtype: 'F32', shape: v.shape, data: v.data });
    return m;
  },
  decode(records, label) {
    const s: LoraState = new Map();
    for (const [k, v] of records) {
      if (v.dtype !== 'F32') throw new Error(`${label}: tensor '${k}' has dtype ${v.dtype}, expected F32`);
      s.set(k, { shape: [...v.shape], data: Float32Array.from(v.data) });
    }
    return s;
  },
};

export const CODECS: Record<string, PayloadCodec> = { f32: f32Codec };

function codecNamed(name: string | undefined, label: string): PayloadCodec {
  const c = CODECS[name ?? 'f32'];
  if (!c) throw new Error(`${label}: unknown codec '${name}' (known: ${Object.keys(CODECS).join(', ')})`);
  return c;
}

function split(
  records: Map<string, TensorRecord>,
  prefixes: readonly string[],
  label: string,
): Map<string, Map<string, TensorRecord>> {
  const out = new Map(prefixes.map((p) => [p, new Map<string, TensorRecord>()]));
  for (const [k, v] of records) {
    const p = prefixes.find((x) => k.startsWith(x));
    if (p === undefined) throw new Error(`${label}: unexpected tensor '${k}'`);
    out.get(p)!.set(k.slice(p.length), v);
  }
  return out;
}

export interface RoundPayloadBody {
  round: number;
  nonce: string;
  adapter: LoraState;
  /** The emulator LoRA when the client's copy is older; null otherwise. */
  emulator: LoraState | null;
  emulatorVersion: number;
}

export function encodePayload(p: RoundPayloadBody, codec: PayloadCodec = f32Codec): Buffer {
  const m = codec.encode(p.adapter, 'adapter.');
  if (p.emulator) for (const [k, v] of codec.encode(p.emulator, 'emulator.')) m.set(k, v);
  return serializeSafetensors(m, {
    metadata: {
      round: String(p.round),
      nonce: p.nonce,
      emulatorVersion: String(p.emulatorVersion),
      hasEmulator: p.emulator ? '1' : '0',
      codec: codec.name,
    },
  });
}

export function decodePayload(buf: Uint8Array): RoundPayloadBody {
  const label = 'round payload';
  const { tensors, metadata } = deserializeSafetensors(buf, label);
  const codec = codecNamed(metadata.codec, label);
  const parts = split(tensors, ['adapter.', 'emulator.'], label);
  return {
    round: Number(metadata.round),
    nonce: metadata.nonce ?? '',
    adapter: codec.decode(parts.get('adapter.')!, label),
    emulator: metadata.hasEmulator === '1' ? codec.decode(parts.get('emulator.')!, label) : null,
    emulatorVersion: Number(metadata.emulatorVersion),
  };
}

export interface UpdateBody {
  round: number;
  nonce: string;
  /** The client's local data size as it reports it (the server does not take it on trust). */
  samples: number;
  state: LoraState;
}

export function encodeUpdate(u: UpdateBody, codec: PayloadCodec = f32Codec): Buffer {
  return serializeSafetensors(codec.encode(u.state, ''), {
    metadata: { round: String(u.round), nonce: u.nonce, samples: String(u.samples), codec: codec.name },
  });
}

/** Parses an update body; throws with a reason naming what is wrong (the caller turns it into a refusal). */
export function decodeUpdate(buf: Uint8Array): {
  round: string | undefined;
  nonce: string | undefined;
  samples: string | undefined;
  state: Map<string, TensorRecord>;
  codec: PayloadCodec;
} {
  const { tensors, metadata } = deserializeSafetensors(buf, 'upload');
  return {
    round: metadata.round,
    nonce: metadata.nonce,
    samples: metadata.samples,
    state: tensors,
    codec: codecNamed(metadata.codec, 'upload'),
  };
}
