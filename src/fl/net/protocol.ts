// The wire protocol between `fedbiot server` and `fedbiot client`: HTTP/1.1 (HTTPS when the server
// has a certificate), JSON control messages validated with zod on both sides, and binary
// safetensors bodies for LoRA states. Every request carries `Authorization: Bearer <token>`.
//
//   POST /v1/join                       -> JoinInfo (who am I, what model to fetch, how to train)
//   GET  /v1/model/files/:name          -> one file of the compressed model (HTTP Range supported)
//   GET  /v1/round                      -> RoundStatus (wait / train / uploaded / done)
//   GET  /v1/round/:r/payload?emulatorVersion=N -> safetensors: adapter.* (+ emulator.*), metadata
//   POST /v1/round/:r/update            -> safetensors body: adapter.* tensors, metadata round/nonce/samples/metrics
//   GET  /v1/status                     -> StatusInfo (admin token: per-client detail and metrics)
//   GET  /v1/health                     -> { ok: true }
import { z } from 'zod';
import { serializeSafetensors, deserializeSafetensors } from '../../io/safetensors.js';
import type { TensorRecord } from '../../io/types.js';
import type { LoraState } from '../../fedbiot/lora-state.js';

export const PROTOCOL = 'fedbiot-net/1';

const optimizer = z.union([
  z.object({ kind: z.literal('sgd'), lr: z.number(), momentum: z.number().optional(), weightDecay: z.number().optional() }),
  z.object({ kind: z.literal('adamw'), lr: z.number(), beta1: z.number().optional(), beta2: z.number().optional(), eps: z.number().optional(), weightDecay: z.number().optional() }),
]);
const loraSpec = z.object({ r: z.number().int().positive(), alpha: z.number(), dropout: z.number(), targets: z.array(z.enum(['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'])) });

export const modelFileSchema = z.object({ name: z.string().regex(/^[A-Za-z0-9._-]+$/), size: z.number().int().nonnegative(), sha256: z.string().regex(/^[0-9a-f]{64}$/) });
export type ModelFile = z.infer<typeof modelFileSchema>;

export const artifactSchema = z.object({
  format: z.literal('fedbiot-compressed/1'),
  /** sha256 over the sorted "name sha256" lines: one id for the whole download. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  files: z.array(modelFileSchema).min(1),
});
export type Artifact = z.infer<typeof artifactSchema>;

export const joinInfoSchema = z.object({
  protocol: z.literal(PROTOCOL),
  client: z.string(),
  rounds: z.number().int().positive(),
  pollSeconds: z.number().positive(),
  model: artifactSchema,
  training: z.object({
    /** The batch order seed, clientDataSeed(seed, name); dropout seeds derive from it. */
    dataSeed: z.number().int(),
    batchSize: z.number().int().positive(),
    maxLength: z.number().int().positive(),
    template: z.string().nullable(),
    format: z.enum(['auto', 'alpaca', 'gsm8k', 'chat']),
    local: z.object({ steps: z.number().int().positive(), gradAccum: z.number().int().positive(), proximal: z.number(), maxGradNorm: z.number().optional(), optimizer }),
    adapterLora: loraSpec,
    emulatorLora: loraSpec,
  }),
});
export type JoinInfo = z.infer<typeof joinInfoSchema>;

export const roundStatusSchema = z.object({
  state: z.enum(['wait', 'train', 'uploaded', 'done']),
  round: z.number().int(),
  rounds: z.number().int(),
  nonce: z.string().optional(),
  deadline: z.number().optional(),
});
export type RoundStatus = z.infer<typeof roundStatusSchema>;

export const uploadMetricsSchema = z.object({ meanLoss: z.number(), tokens: z.number().int().nonnegative(), seconds: z.number().nonnegative() });
export type UploadMetrics = z.infer<typeof uploadMetricsSchema>;

export const errorSchema = z.object({ error: z.string(), reason: z.string() });

export const statusInfoSchema = z.object({
  protocol: z.literal(PROTOCOL),
  algorithm: z.string(),
  rounds: z.number(),
  completedRounds: z.number(),
  phase: z.string(),
  currentRound: z.number().nullable(),
  /** Present once the last round is done (the server answers status for lingerSeconds more). */
  finished: z.object({ at: z.number(), round: z.number(), closesAt: z.number(), results: z.string().optional() }).optional(),
  clients: z.array(z.object({ name: z.string(), role: z.string(), lastSeen: z.number().nullable(), uploads: z.number(), revokedAt: z.number().optional() })).optional(),
  roundsDetail: z.array(z.record(z.string(), z.unknown())).optional(),
});
export type StatusInfo = z.infer<typeof statusInfoSchema>;

/** The round payload as one safetensors body: "adapter.<name>" and "emulator.<name>" tensors. */
export function encodePayload(p: { round: number; nonce: string; adapter: LoraState; emulator: LoraState | null; emulatorVersion: number }): Buffer {
  const m = new Map<string, TensorRecord>();
  for (const [k, v] of p.adapter) m.set(`adapter.${k}`, { dtype: 'F32', shape: v.shape, data: v.data });
  if (p.emulator) for (const [k, v] of p.emulator) m.set(`emulator.${k}`, { dtype: 'F32', shape: v.shape, data: v.data });
  return serializeSafetensors(m, { metadata: { round: String(p.round), nonce: p.nonce, emulatorVersion: String(p.emulatorVersion), hasEmulator: p.emulator ? '1' : '0' } });
}

export function decodePayload(buf: Uint8Array): { round: number; nonce: string; adapter: LoraState; emulator: LoraState | null; emulatorVersion: number } {
  const { tensors, metadata } = deserializeSafetensors(buf, 'round payload');
  const adapter: LoraState = new Map();
  const emulator: LoraState = new Map();
  for (const [k, v] of tensors) {
    const arr = { shape: [...v.shape], data: Float32Array.from(v.data) };
    if (k.startsWith('adapter.')) adapter.set(k.slice(8), arr);
    else if (k.startsWith('emulator.')) emulator.set(k.slice(9), arr);
    else throw new Error(`round payload: unexpected tensor '${k}'`);
  }
  return { round: Number(metadata.round), nonce: metadata.nonce ?? '', adapter, emulator: metadata.hasEmulator === '1' ? emulator : null, emulatorVersion: Number(metadata.emulatorVersion) };
}

export function encodeUpdate(u: { round: number; nonce: string; samples: number; metrics: UploadMetrics; state: LoraState }): Buffer {
  const m = new Map<string, TensorRecord>();
  for (const [k, v] of u.state) m.set(k, { dtype: 'F32', shape: v.shape, data: v.data });
  return serializeSafetensors(m, { metadata: { round: String(u.round), nonce: u.nonce, samples: String(u.samples), metrics: JSON.stringify(u.metrics) } });
}

export function tokenHeader(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}
