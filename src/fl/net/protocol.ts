// The wire protocol between `fedbiot server` and `fedbiot client`: HTTP/1.1 (HTTPS when the server
// has a certificate), JSON control messages validated with zod on both sides, and binary
// safetensors bodies for LoRA states. Every request carries `Authorization: Bearer <token>`.
//
//   POST /v1/join                       JoinRequest (the codecs the client decodes) -> JoinInfo (who am
//                                          I, what model to fetch, how to train, the agreed codec)
//   GET  /v1/model/files/:name          -> one file of the compressed model (HTTP Range supported)
//   GET  /v1/round                      -> RoundStatus (wait / train / uploaded / done)
//   GET  /v1/round/:r/payload?emulatorVersion=N -> the round payload (src/fl/payload.ts)
//        (compressed: ?adapterVersion=A&emulatorVersion=E, the stream versions the client holds;
//         the body is src/fl/compression.ts's down body)
//   POST /v1/round/:r/update            -> the update body (src/fl/payload.ts); training metrics in
//                                          the x-fedbiot-metrics header (JSON, UploadMetrics)
//        (compressed: the body is src/codec's delta against the round's adapter; round, nonce and
//         samples travel in the x-fedbiot-update header, UpdateMeta)
//   GET  /v1/status                     -> StatusInfo (admin token: per-client detail and metrics)
//   GET  /v1/health                     -> Health { ok: true, phase }
//   GET  /v1/openapi.json               -> this protocol as OpenAPI 3.1 (openapi.ts, from the schemas below)
import { z } from 'zod';
import { localSchema, loraSchema } from '../../config/schema.js';
import { codecAgreementSchema, codecOfferSchema } from '../../codec/negotiate.js';

export const PROTOCOL = 'fedbiot-net/1';

export const modelFileSchema = z.object({
  name: z.string().regex(/^[A-Za-z0-9._-]+$/),
  size: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});
export type ModelFile = z.infer<typeof modelFileSchema>;

export const artifactSchema = z.object({
  format: z.literal('fedbiot-compressed/1'),
  /** sha256 over the sorted "name sha256" lines: one id for the whole download. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  files: z.array(modelFileSchema).min(1),
});
export type Artifact = z.infer<typeof artifactSchema>;

/** POST /v1/join's body: what the client decodes (absent: an older client, plain f32 only). */
export const joinRequestSchema = z.object({ codecs: codecOfferSchema.optional() });
export type JoinRequest = z.infer<typeof joinRequestSchema>;

/** What a client needs to take part (the join answer's training.secureAggregation). */
export const secureJoinSchema = z.object({
  /** Each coordinate of a weighted update is clamped to [-range, range] before fixed-point encoding. */
  range: z.number().positive(),
  /** Shares needed, as a fraction of the roster (the server fixes the count in the roster). */
  threshold: z.number(),
  /** Clients weigh alike (differential privacy); otherwise by the roster's samples. */
  uniform: z.boolean(),
});
export type SecureJoin = z.infer<typeof secureJoinSchema>;

export const joinInfoSchema = z.object({
  protocol: z.literal(PROTOCOL),
  /** The round traffic's codec (config `compression`), agreed from the client's offer; absent: plain f32 bodies. */
  compression: codecAgreementSchema.optional(),
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
    // The config's own schemas: one definition of the settings from YAML to the wire.
    // The wire carries the resolved settings: the proximal weight is always given.
    local: localSchema.extend({ proximal: z.number().min(0) }),
    adapterLora: loraSchema,
    emulatorLora: loraSchema,
    /**
     * What the client does to its update before upload (src/privacy/aggregator.ts, UploadTransform):
     * clip the difference from the round's adapter to L2 norm `clip` and add N(0, noiseStd^2), with
     * noise from a key the server does not know; null: upload the trained adapter as it is.
     */
    privacy: z.object({ clip: z.number().positive(), noiseStd: z.number().min(0) }).nullable(),
    /** Secure aggregation (src/fl/net/secagg.ts), or null: plain uploads. */
    secureAggregation: secureJoinSchema.nullable(),
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

export const uploadMetricsSchema = z.object({
  meanLoss: z.number(),
  tokens: z.number().int().nonnegative(),
  seconds: z.number().nonnegative(),
});
/** The request header that carries an update's UploadMetrics (JSON). */
export const METRICS_HEADER = 'x-fedbiot-metrics';
export type UploadMetrics = z.infer<typeof uploadMetricsSchema>;

/** A compressed update's round, nonce and reported data size (the body carries the tensors only). */
export const updateMetaSchema = z.strictObject({
  round: z.number().int().nonnegative(),
  nonce: z.string().min(1),
  samples: z.number().int().positive(),
});
export type UpdateMeta = z.infer<typeof updateMetaSchema>;
/** The request header that carries a compressed update's UpdateMeta (JSON). */
export const UPDATE_HEADER = 'x-fedbiot-update';

export const errorSchema = z.object({ error: z.string(), reason: z.string() });

/** GET /v1/health. */
export const healthSchema = z.object({ ok: z.literal(true), phase: z.string() });

/** POST /v1/round/:r/update, when accepted. */
export const uploadReplySchema = z.object({ accepted: z.literal(true), round: z.number().int().nonnegative() });

export const statusInfoSchema = z.object({
  protocol: z.literal(PROTOCOL),
  algorithm: z.string(),
  rounds: z.number(),
  completedRounds: z.number(),
  phase: z.string(),
  currentRound: z.number().nullable(),
  /** Present once the last round is done (the server answers status for lingerSeconds more). */
  finished: z
    .object({ at: z.number(), round: z.number(), closesAt: z.number(), results: z.string().optional() })
    .optional(),
  clients: z
    .array(
      z.object({
        name: z.string(),
        role: z.string(),
        lastSeen: z.number().nullable(),
        uploads: z.number(),
        revokedAt: z.number().optional(),
      }),
    )
    .optional(),
  roundsDetail: z.array(z.record(z.string(), z.unknown())).optional(),
});
export type StatusInfo = z.infer<typeof statusInfoSchema>;
