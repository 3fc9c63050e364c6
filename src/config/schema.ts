// The run configuration (YAML), validated by a schema: unknown keys and bad values are errors that
// name the key. Defaults follow the paper's settings scaled to a 2-core machine.
import { z } from 'zod';
import { EMULATOR_WEIGHTS } from '../fedbiot/compress.js';
import { CODECS } from '../codec/wire.js';
import { ALGORITHMS } from '../fedbiot/algorithms.js';
import { LINEAR_NAMES } from '../nn/llama.js';
import { ALIGN_OBJECTIVES, PROXIMAL_RULES } from '../fedbiot/objectives.js';
import { LAYER_DROP_RULES } from '../fedbiot/split.js';
import {
  aggregationSchema,
  privacyConfigProblems,
  privacySchema,
  secureAggregationSchema,
} from '../privacy/settings.js';

const posInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();

export const optimizerSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('sgd'),
    lr: z.number().positive(),
    momentum: z.number().min(0).max(1).default(0),
    weightDecay: z.number().min(0).default(0),
  }),
  z.strictObject({
    kind: z.literal('adamw'),
    lr: z.number().positive(),
    beta1: z.number().min(0).max(1).default(0.9),
    beta2: z.number().min(0).max(1).default(0.999),
    eps: z.number().positive().default(1e-8),
    weightDecay: z.number().min(0).default(0),
  }),
]);

export const loraSchema = z.strictObject({
  r: posInt.default(8),
  alpha: z.number().positive().default(16),
  dropout: z.number().min(0).max(0.9).default(0),
  targets: z.array(z.enum(LINEAR_NAMES)).min(1).default(['q_proj', 'v_proj']),
});

const randomModel = z.strictObject({
  vocabSize: posInt.optional(),
  hiddenSize: posInt.default(64),
  intermediateSize: posInt.default(172),
  numLayers: posInt.default(6),
  numHeads: posInt.default(4),
  numKvHeads: posInt.optional(),
  maxPositionEmbeddings: posInt.default(512),
  seed: nonNegInt.default(0),
});

/** A client's local training, as configured and as sent to networked clients at join. */
export const localSchema = z.strictObject({
  steps: posInt.default(30),
  batchSize: posInt.default(4),
  gradAccum: posInt.default(1),
  /**
   * Rows per forward/backward pass (micro-batches weighted by their loss tokens: the same gradient
   * as the whole batch, fewer activations held at once); default: the whole batch.
   */
  microBatch: posInt.optional(),
  /** Activation checkpointing: recompute the trained layers' activations in the backward. */
  recompute: z.boolean().default(false),
  /**
   * Proximal weight epsilon, or a named rule: `reference` (as the reference trains: no effective
   * term; fedbiot's default) or `paper` (the stated term at the reference's weight 0.1). The other
   * methods default to 0 (src/fedbiot/objectives.ts).
   */
  proximal: z.union([z.number().min(0), z.enum(PROXIMAL_RULES)]).optional(),
  optimizer: optimizerSchema.prefault({ kind: 'adamw', lr: 1e-3 }),
  maxGradNorm: z.number().min(0).default(1),
});

export const configSchema = z
  .strictObject({
    seed: nonNegInt.default(0),
    threads: posInt.optional(),
    rounds: posInt.default(5),
    model: z
      .strictObject({
        /** A Hugging Face folder (config.json, *.safetensors, tokenizer.json). */
        path: z.string().min(1).optional(),
        /** A small random model with a byte tokenizer (tests, smoke runs). */
        random: randomModel.optional(),
      })
      .refine((m) => (m.path ? 1 : 0) + (m.random ? 1 : 0) === 1, {
        message: 'give exactly one of model.path or model.random',
      }),
    data: z.strictObject({
      /** A generated task (math, code, qa) or null with train/test files. */
      task: z.enum(['math', 'code', 'qa']).optional(),
      train: z.string().optional(),
      /**
       * A test file (JSONL/JSON). With `train`, the test set (default: a seeded 10% held out); with
       * `task`, it replaces the generated test split. GSM8K records are scored as math: exact match
       * of the final number after '####'.
       */
      test: z.string().optional(),
      format: z.enum(['auto', 'alpaca', 'gsm8k', 'chat']).default('auto'),
      skipInvalid: z.boolean().default(false),
      trainSize: posInt.default(400),
      testSize: posInt.default(50),
      taskSeed: nonNegInt.default(0),
      maxLength: posInt.default(160),
      template: z.string().optional(),
      /**
       * Public data for alignment: the other generated tasks, plain text from packaged corpora, or a
       * file. Without `source`, the alignment objective's own (Offsite-Tuning: corpus; else tasks).
       */
      public: z
        .strictObject({
          source: z.enum(['tasks', 'corpus', 'file']).optional(),
          path: z.string().optional(),
          /** With source tasks: which generated families (default: every family but the clients' own). */
          tasks: z
            .array(z.enum(['math', 'code', 'qa']))
            .min(1)
            .optional(),
          size: posInt.default(300),
        })
        .prefault({}),
    }),
    clients: z
      .strictObject({
        count: posInt.default(4),
        split: z.enum(['iid', 'dirichlet', 'meta']).default('meta'),
        alpha: z.number().positive().default(0.5),
        /** Clients sampled per round: a count (>= 1) or a fraction (< 1); default all. */
        perRound: z.number().positive().optional(),
      })
      .prefault({}),
    algorithm: z.strictObject({
      name: z.enum(ALGORITHMS).default('fedbiot'),
      adapterLayers: posInt.default(2),
      offsiteLayers: z.strictObject({ first: nonNegInt.default(2), last: posInt.default(2) }).prefault({}),
      dropRate: z.number().min(0).lt(1).default(0.2),
      /** Which kept-layer indices uniform layer drop picks: the reference's Python arithmetic or the spec's (src/fedbiot/split.ts). */
      layerDrop: z.enum(LAYER_DROP_RULES).default('reference'),
      adapterLora: loraSchema.prefault({}),
      emulatorLora: loraSchema.prefault({}),
      /**
       * How every frozen tensor the clients receive is held where the compressed model runs (clients,
       * and the server's alignment, which aligns exactly that emulator): the emulator's linears, the
       * adapter layers' frozen weights, the embedding table and LM head (norms stay f32), downloaded
       * and held in that format. 'stored': as the checkpoint stores them; 'f32': uncompressed; f16;
       * or Q8_0 / Q4_0 blocks computed on directly. The server's full model keeps its own weights.
       */
      emulator: z.strictObject({ weights: z.enum(EMULATOR_WEIGHTS).default('stored') }).prefault({}),
      /**
       * QLoRA-style: the server's whole frozen model (embedding, every layer, head) held in this format;
       * LoRA trains on top of it and the clients download it so. 'stored': as the checkpoint stores it.
       */
      full: z.strictObject({ weights: z.enum(EMULATOR_WEIGHTS).default('stored') }).prefault({}),
      preAlignSteps: nonNegInt.default(100),
      /**
       * FedAvg weights: 'samples' weighs each client by its data size (the simulation knows it; a
       * server uses the size registered with the client, capping what the client reports at it, and
       * equal weights for a round in which a client has no registered size); 'equal' weighs all alike.
       */
      weighting: z.enum(['samples', 'equal']).default('samples'),
      alignStepsPerRound: nonNegInt.default(10),
      align: z
        .strictObject({
          /**
           * Whose alignment loss (src/fedbiot/objectives.ts). Default: each method its own (fedbiot:
           * nmse + 0.9 kl; fedot: 0.9 nmse + 0.1 lm; offsite: 30 nmse + lm on corpus text). Setting it
           * gives every method the same loss (ablations); hiddenWeight, lambda, mu override single weights.
           */
          objective: z.enum(ALIGN_OBJECTIVES).optional(),
          hiddenLoss: z.enum(['nmse', 'layerwise-nmse', 'cosine']).default('nmse'),
          /** Layer-wise NMSE: summed over the kept layers (the reference) or averaged. */
          layerwiseReduction: z.enum(['sum', 'mean']).default('sum'),
          hiddenWeight: z.number().min(0).optional(),
          lambda: z.number().min(0).optional(),
          mu: z.number().min(0).optional(),
          batchSize: posInt.default(4),
          optimizer: optimizerSchema.prefault({ kind: 'adamw', lr: 1e-3 }),
          maxGradNorm: z.number().min(0).default(1),
        })
        .prefault({}),
      local: localSchema.prefault({}),
    }),
    /**
     * Round traffic compression (src/fl/compression.ts): deltas against what the receiver holds, 8- or
     * 4-bit block quantization, and on uploads an optional top-k fraction with error feedback kept by
     * the client. The same in simulation and deployment: a deployed server agrees on the codec with
     * each client at join and refuses a malformed update. Methods whose clients keep their own
     * adapters (no shared adapter to send deltas against) send their traffic uncompressed. The codec
     * defaults to q8, or to none with secure aggregation (src/config/load.ts).
     */
    compression: z
      .strictObject({
        codec: z.enum(CODECS).default('q8'),
        topk: z.number().gt(0).max(1).nullable().default(null),
      })
      .prefault({}),
    eval: z
      .strictObject({
        /** Evaluate after every `every` rounds (and always after the last). 0 = only at the end. */
        every: nonNegInt.default(0),
        maxExamples: posInt.default(50),
        maxNewTokens: posInt.default(48),
        /** Greedy generation + task metric (slower); NLL is always computed. */
        generate: z.boolean().default(true),
        /** Also generate in the evaluations between rounds (by default they compute NLL only). */
        generateEachRound: z.boolean().default(false),
        /**
         * Measure the emulator-to-full gap (AdapEmu NLL - AdapFu NLL) after every round, not only in
         * the rounds `every` evaluates: metrics.jsonl `drift`, summary.json `drift`.
         */
        drift: z.boolean().default(false),
      })
      .prefault({}),
    /** Deployment (`fedbiot server`): where to listen and how rounds close. Ignored by `simulate`. */
    server: z
      .strictObject({
        host: z.string().min(1).default('127.0.0.1'),
        /** 0 picks a free port (written to STATE/server.json). */
        port: z.number().int().min(0).max(65535).default(8443),
        /** HTTPS when both are given (PEM files). */
        tls: z.strictObject({ cert: z.string().min(1), key: z.string().min(1) }).optional(),
        /** Uploads needed to close a round at its deadline (all sampled clients close it earlier). */
        minClients: posInt.default(1),
        /** Clients that must have joined before the first round opens (default: minClients). */
        startClients: posInt.optional(),
        roundDeadlineSeconds: z.number().positive().default(600),
        /** Deadline extensions (sampling more clients) before a round closes below minClients. */
        maxRoundExtensions: z.number().int().min(0).default(2),
        /** Reject uploads whose L2 norm of the adapter LoRA exceeds this. */
        normBound: z.number().positive().optional(),
        /** SQLite file (default STATE/server.db). */
        dbPath: z.string().min(1).optional(),
        /** A client counts as available for sampling if it was heard from within this many seconds. */
        activeSeconds: z.number().positive().default(60),
        /** How often clients poll for a round. */
        pollSeconds: z.number().positive().default(2),
        /** After the last round, keep answering (so clients learn the run is over) this long, then exit. */
        lingerSeconds: z.number().min(0).default(10),
        maxUploadBytes: posInt.default(512 * 1024 * 1024),
        /** Update bodies received at once; more get 503 "busy" (the client retries). */
        maxConcurrentUploads: posInt.default(4),
        /** Serve GET /metrics without the admin token (for a Prometheus on a trusted network). */
        metricsPublic: z.boolean().default(false),
      })
      .optional(),
    /** Client-level differential privacy on the adapter updates (see docs/privacy.md). */
    privacy: privacySchema.optional(),
    /** Masked uploads: the server learns only the sum of the round's updates. */
    secureAggregation: secureAggregationSchema,
    /** How the updates are combined: FedAvg, or a rule robust to poisoned updates. */
    aggregation: aggregationSchema,
  })
  .superRefine((cfg, ctx) => {
    for (const [key, message] of privacyConfigProblems(cfg))
      ctx.addIssue({ code: 'custom', path: key.split('.'), message });
  });

export type RunConfig = z.infer<typeof configSchema>;
export type ServerSettings = NonNullable<RunConfig['server']>;

/** The deployment settings of a config, defaults filled in when it has no server section. */
export function serverSettings(cfg: RunConfig): ServerSettings {
  return cfg.server ?? configSchema.shape.server.unwrap().parse({});
}
