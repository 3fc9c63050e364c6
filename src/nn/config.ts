// The LLaMA-family architecture hyper-parameters the engine needs (camelCase; src/io maps them to
// and from Hugging Face's config.json). The families differ only in a few switches: biases on the
// attention projections (Qwen2: q/k/v; LLaMA attention_bias: q/k/v/o), a per-head RMSNorm of
// queries and keys before RoPE (Qwen3), rope scaling, and Mistral's sliding window.
import type { RopeScaling } from './rope.js';

export type ModelFamily = 'llama' | 'mistral' | 'qwen2' | 'qwen3';
export const MODEL_FAMILIES: readonly ModelFamily[] = ['llama', 'mistral', 'qwen2', 'qwen3'];

export interface ModelConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  bosTokenId: number | null;
  eosTokenId: number | null;
  padTokenId?: number | null;
  /** Which Hugging Face model_type this is (default llama). */
  family?: ModelFamily;
  ropeScaling?: RopeScaling | null;
  /** q_proj, k_proj, v_proj carry a bias. */
  qkvBias?: boolean;
  /** o_proj carries a bias. */
  oBias?: boolean;
  /** RMSNorm over each query/key head (weights [headDim]) before RoPE. */
  qkNorm?: boolean;
  /** A query sees only the last slidingWindow keys (itself included); null or absent: all. */
  slidingWindow?: number | null;
}

/** Fills defaults (head dim, kv heads) and checks the numbers fit together. */
export function makeConfig(
  c: Partial<ModelConfig> &
    Pick<ModelConfig, 'vocabSize' | 'hiddenSize' | 'intermediateSize' | 'numLayers' | 'numHeads'>,
): ModelConfig {
  const cfg: ModelConfig = {
    numKvHeads: c.numHeads,
    headDim: c.hiddenSize / c.numHeads,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    maxPositionEmbeddings: 2048,
    tieWordEmbeddings: false,
    bosTokenId: null,
    eosTokenId: null,
    family: 'llama',
    ropeScaling: null,
    qkvBias: false,
    oBias: false,
    qkNorm: false,
    slidingWindow: null,
    ...c,
  };
  validateConfig(cfg);
  return cfg;
}

export function validateConfig(c: ModelConfig, where = 'model config'): void {
  const posInt = [
    'vocabSize',
    'hiddenSize',
    'intermediateSize',
    'numLayers',
    'numHeads',
    'numKvHeads',
    'headDim',
    'maxPositionEmbeddings',
  ] as const;
  for (const k of posInt) {
    const v = c[k];
    if (!Number.isInteger(v) || v <= 0) throw new Error(`${where}: ${k} must be a positive integer, got ${v}`);
  }
  if (c.numHeads % c.numKvHeads !== 0)
    throw new Error(`${where}: numHeads ${c.numHeads} must be a multiple of numKvHeads ${c.numKvHeads}`);
  if (c.headDim % 2 !== 0) throw new Error(`${where}: headDim ${c.headDim} must be even for rotary embeddings`);
  if (!(c.rmsNormEps > 0 && c.rmsNormEps < 1))
    throw new Error(`${where}: rmsNormEps must be in (0, 1), got ${c.rmsNormEps}`);
  if (!(c.ropeTheta > 0)) throw new Error(`${where}: ropeTheta must be positive, got ${c.ropeTheta}`);
  if (c.family !== undefined && !MODEL_FAMILIES.includes(c.family))
    throw new Error(`${where}: family must be one of ${MODEL_FAMILIES.join(', ')}, got ${c.family}`);
  if (c.slidingWindow != null && !(Number.isInteger(c.slidingWindow) && c.slidingWindow > 0))
    throw new Error(`${where}: slidingWindow must be a positive integer or null, got ${c.slidingWindow}`);
}

export function countParameters(c: ModelConfig): number {
  const d = c.hiddenSize;
  const attn = d * c.numHeads * c.headDim * 2 + d * c.numKvHeads * c.headDim * 2;
  const mlp = 3 * d * c.intermediateSize;
  const bias = (c.qkvBias ? (c.numHeads + 2 * c.numKvHeads) * c.headDim : 0) + (c.oBias ? d : 0);
  const layer = attn + mlp + 2 * d + bias + (c.qkNorm ? 2 * c.headDim : 0);
  return c.vocabSize * d * (c.tieWordEmbeddings ? 1 : 2) + c.numLayers * layer + d;
}
