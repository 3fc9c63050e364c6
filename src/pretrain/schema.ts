// The pretraining recipe (YAML), validated like the run config: unknown keys are errors.
import { z } from 'zod';

const posInt = z.number().int().positive();

export const pretrainSchema = z.strictObject({
  seed: z.number().int().nonnegative().default(0),
  tokenizer: z
    .strictObject({ vocabSize: posInt.default(4096), trainChars: posInt.default(6_000_000) })
    .default({ vocabSize: 4096, trainChars: 6_000_000 }),
  model: z
    .strictObject({
      hiddenSize: posInt.default(256),
      intermediateSize: posInt.default(688),
      numLayers: posInt.default(12),
      numHeads: posInt.default(4),
      numKvHeads: posInt.optional(),
      maxPositionEmbeddings: posInt.default(512),
      ropeTheta: z.number().positive().default(10000),
      tieWordEmbeddings: z.boolean().default(false),
    })
    .default({
      hiddenSize: 256,
      intermediateSize: 688,
      numLayers: 12,
      numHeads: 4,
      maxPositionEmbeddings: 512,
      ropeTheta: 10000,
      tieWordEmbeddings: false,
    }),
  data: z
    .strictObject({
      corpus: z.array(z.enum(['brown', 'moby-dick', 'sotu'])).default(['brown', 'moby-dick', 'sotu']),
      /** Generated task examples mixed into the text, so that the model learns the formats. */
      tasks: z
        .strictObject({
          math: z.number().int().nonnegative().default(3000),
          code: z.number().int().nonnegative().default(1500),
          qa: z.number().int().nonnegative().default(1500),
        })
        .default({ math: 3000, code: 1500, qa: 1500 }),
      /** Seed of the generated task text; keep it away from the fine-tuning tasks' seeds. */
      taskSeed: z.number().int().nonnegative().default(7919),
      validationFraction: z.number().gt(0).lt(0.5).default(0.01),
    })
    .default({
      corpus: ['brown', 'moby-dick', 'sotu'],
      tasks: { math: 3000, code: 1500, qa: 1500 },
      taskSeed: 7919,
      validationFraction: 0.01,
    }),
  train: z
    .strictObject({
      seqLen: posInt.default(256),
      batchSize: posInt.default(8),
      steps: posInt.default(3000),
      lr: z.number().positive().default(2e-3),
      minLr: z.number().nonnegative().default(2e-4),
      warmupSteps: z.number().int().nonnegative().default(100),
      weightDecay: z.number().min(0).default(0.1),
      maxGradNorm: z.number().min(0).default(1),
      evalEvery: posInt.default(200),
      evalBatches: posInt.default(8),
      checkpointEvery: posInt.default(200),
      /** Stop once this many steps are done (0 = run to `steps`), keeping `steps`'s schedule: a rerun
       * with a smaller `steps` then anneals from there (the default model's two-phase recipe). */
      stopAfter: z.number().int().nonnegative().default(0),
      /** Stop after this many minutes (0 = no limit), keeping the last checkpoint. */
      maxMinutes: z.number().min(0).default(0),
    })
    .default({
      seqLen: 256,
      batchSize: 8,
      steps: 3000,
      lr: 2e-3,
      minLr: 2e-4,
      warmupSteps: 100,
      weightDecay: 0.1,
      maxGradNorm: 1,
      evalEvery: 200,
      evalBatches: 8,
      checkpointEvery: 200,
      stopAfter: 0,
      maxMinutes: 0,
    }),
  /** The released folder: its weights must fit this size (checked before training starts). */
  release: z
    .strictObject({
      /** Largest size of the released weights in MB (10^6 bytes), F16; the repository ships models/base at <= 60. */
      maxMegabytes: z.number().positive().default(60),
    })
    .default({ maxMegabytes: 60 }),
});

export type PretrainConfig = z.infer<typeof pretrainSchema>;
