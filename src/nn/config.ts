// The LLaMA-family architecture hyper-parameters the engine needs (camelCase; src/io maps them to
// and from Hugging Face's config.json).

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
}

/** Fills defaults (head dim, kv heads) and checks the numbers fit together. */
export function makeConfig(c: Partial<ModelConfig> & Pick<ModelConfig, 'vocabSize' | 'hiddenSize' | 'intermediateSize' | 'numLayers' | 'numHeads'>): ModelConfig {
  const cfg: ModelConfig = {
    numKvHeads: c.numHeads,
    headDim: c.hiddenSize / c.numHeads,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    maxPositionEmbeddings: 2048,
    tieWordEmbeddings: false,
    bosTokenId: null,
    eosTokenId: null,
    ...c,
  };
  validateConfig(cfg);
  return cfg;
}

export function validateConfig(c: ModelConfig, where = 'model config'): void {
  const posInt = ['vocabSize', 'hiddenSize', 'intermediateSize', 'numLayers', 'numHeads', 'numKvHeads', 'headDim', 'maxPositionEmbeddings'] as const;
  for (const k of posInt) {
    const v = c[k];
    if (!Number.isInteger(v) || v <= 0) throw new Error(`${where}: ${k} must be a positive integer, got ${v}`);
  }
  if (c.numHeads % c.numKvHeads !== 0) throw new Error(`${where}: numHeads ${c.numHeads} must be a multiple of numKvHeads ${c.numKvHeads}`);
  if (c.headDim % 2 !== 0) throw new Error(`${where}: headDim ${c.headDim} must be even for rotary embeddings`);
  if (!(c.rmsNormEps > 0 && c.rmsNormEps < 1)) throw new Error(`${where}: rmsNormEps must be in (0, 1), got ${c.rmsNormEps}`);
  if (!(c.ropeTheta > 0)) throw new Error(`${where}: ropeTheta must be positive, got ${c.ropeTheta}`);
}

export function countParameters(c: ModelConfig): number {
  const d = c.hiddenSize;
  const attn = d * c.numHeads * c.headDim * 2 + d * c.numKvHeads * c.headDim * 2;
  const mlp = 3 * d * c.intermediateSize;
  const layer = attn + mlp + 2 * d;
  return c.vocabSize * d * (c.tieWordEmbeddings ? 1 : 2) + c.numLayers * layer + d;
}
