/**
 * Hugging Face LLaMA-family config.json (model_type "llama" or "mistral") read,
 * validated and written as a typed camelCase LlamaConfig.
 */
import * as fs from 'node:fs';
import { writeTextAtomic } from './byte-source.js';
import { FormatError } from './types.js';

export interface LlamaConfig {
  modelType: 'llama' | 'mistral';
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  /** hidden_size / heads unless the file says otherwise. */
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  vocabSize: number;
  tieWordEmbeddings: boolean;
  maxPositionEmbeddings: number;
  bosTokenId?: number;
  /** Some models list several eos ids. */
  eosTokenId?: number | number[];
  padTokenId?: number;
  torchDtype?: string;
  hiddenAct: string;
  attentionBias: boolean;
  mlpBias: boolean;
  /** rope_scaling is kept verbatim; the engine decides what it supports. */
  ropeScaling?: Record<string, unknown> | null;
  slidingWindow?: number | null;
  /** Fields we do not model, kept so a written config round-trips. */
  extra: Record<string, unknown>;
}

const KNOWN = new Set([
  'model_type', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads',
  'head_dim', 'rms_norm_eps', 'rope_theta', 'vocab_size', 'tie_word_embeddings', 'max_position_embeddings',
  'bos_token_id', 'eos_token_id', 'pad_token_id', 'torch_dtype', 'hidden_act', 'attention_bias', 'mlp_bias',
  'rope_scaling', 'sliding_window', 'architectures',
]);

type Raw = Record<string, unknown>;

/** Validates a parsed config.json object; `file` is used in error messages. */
export function parseLlamaConfig(raw: unknown, file = 'config.json'): LlamaConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new FormatError(file, 'config is not a JSON object');
  const r = raw as Raw;
  const bad = (field: string, msg: string): never => {
    throw new FormatError(file, `field "${field}": ${msg}`);
  };
  const posInt = (field: string, dflt?: number): number => {
    const v = r[field] ?? dflt;
    if (v === undefined) return bad(field, 'missing');
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) return bad(field, `must be a positive integer, got ${JSON.stringify(v)}`);
    return v;
  };
  const posNum = (field: string, dflt: number): number => {
    const v = r[field] ?? dflt;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) return bad(field, `must be a positive number, got ${JSON.stringify(v)}`);
    return v;
  };
  const bool = (field: string, dflt: boolean): boolean => {
    const v = r[field] ?? dflt;
    if (typeof v !== 'boolean') return bad(field, `must be true or false, got ${JSON.stringify(v)}`);
    return v;
  };
  const optId = (field: string): number | undefined => {
    const v = r[field];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) return bad(field, `must be a non-negative integer, got ${JSON.stringify(v)}`);
    return v;
  };

  const modelType = r.model_type;
  if (modelType !== 'llama' && modelType !== 'mistral') bad('model_type', `expected "llama" or "mistral", got ${JSON.stringify(modelType)}`);
  const hiddenSize = posInt('hidden_size');
  const intermediateSize = posInt('intermediate_size');
  const numHiddenLayers = posInt('num_hidden_layers');
  const numAttentionHeads = posInt('num_attention_heads');
  const numKeyValueHeads = posInt('num_key_value_heads', numAttentionHeads);
  const headDimRaw = r.head_dim;
  let headDim: number;
  if (headDimRaw === undefined || headDimRaw === null) {
    if (hiddenSize % numAttentionHeads !== 0) bad('num_attention_heads', `${numAttentionHeads} does not divide hidden_size ${hiddenSize}`);
    headDim = hiddenSize / numAttentionHeads;
  } else {
    headDim = posInt('head_dim');
  }
  if (numAttentionHeads % numKeyValueHeads !== 0) bad('num_key_value_heads', `${numKeyValueHeads} does not divide num_attention_heads ${numAttentionHeads}`);
  if (headDim % 2 !== 0) bad('head_dim', `rotary embeddings need an even head dimension, got ${headDim}`);
  const rmsNormEps = posNum('rms_norm_eps', 1e-6);
  if (rmsNormEps >= 1) bad('rms_norm_eps', `implausibly large: ${rmsNormEps}`);
  const ropeTheta = posNum('rope_theta', 10000);
  const vocabSize = posInt('vocab_size');
  const tieWordEmbeddings = bool('tie_word_embeddings', false);
  const maxPositionEmbeddings = posInt('max_position_embeddings', 2048);
  const bosTokenId = optId('bos_token_id');
  let eosTokenId: number | number[] | undefined;
  if (Array.isArray(r.eos_token_id)) {
    eosTokenId = r.eos_token_id.map((v, i) => {
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) bad(`eos_token_id[${i}]`, `must be a non-negative integer, got ${JSON.stringify(v)}`);
      return v as number;
    });
  } else eosTokenId = optId('eos_token_id');
  const padTokenId = optId('pad_token_id');
  for (const [f, v] of [['bos_token_id', bosTokenId], ['pad_token_id', padTokenId]] as const) {
    if (v !== undefined && v >= vocabSize) bad(f, `${v} is outside the vocabulary (vocab_size ${vocabSize})`);
  }
  for (const v of Array.isArray(eosTokenId) ? eosTokenId : eosTokenId === undefined ? [] : [eosTokenId]) {
    if (v >= vocabSize) bad('eos_token_id', `${v} is outside the vocabulary (vocab_size ${vocabSize})`);
  }
  const torchDtype = r.torch_dtype;
  if (torchDtype !== undefined && torchDtype !== null && typeof torchDtype !== 'string') bad('torch_dtype', 'must be a string');
  const hiddenAct = r.hidden_act ?? 'silu';
  if (typeof hiddenAct !== 'string') bad('hidden_act', 'must be a string');
  const ropeScaling = r.rope_scaling;
  if (ropeScaling !== undefined && ropeScaling !== null && (typeof ropeScaling !== 'object' || Array.isArray(ropeScaling))) bad('rope_scaling', 'must be an object or null');
  const sw = r.sliding_window;
  if (sw !== undefined && sw !== null && (typeof sw !== 'number' || !Number.isSafeInteger(sw) || sw <= 0)) bad('sliding_window', 'must be a positive integer or null');

  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r)) if (!KNOWN.has(k)) extra[k] = v;
  if (r.architectures !== undefined) extra.architectures = r.architectures;
  return {
    modelType: modelType as 'llama' | 'mistral',
    hiddenSize, intermediateSize, numHiddenLayers, numAttentionHeads, numKeyValueHeads, headDim,
    rmsNormEps, ropeTheta, vocabSize, tieWordEmbeddings, maxPositionEmbeddings,
    ...(bosTokenId !== undefined ? { bosTokenId } : {}),
    ...(eosTokenId !== undefined ? { eosTokenId } : {}),
    ...(padTokenId !== undefined ? { padTokenId } : {}),
    ...(typeof torchDtype === 'string' ? { torchDtype } : {}),
    hiddenAct: hiddenAct as string,
    attentionBias: bool('attention_bias', false),
    mlpBias: bool('mlp_bias', false),
    ...(ropeScaling !== undefined ? { ropeScaling: ropeScaling as Record<string, unknown> | null } : {}),
    ...(sw !== undefined ? { slidingWindow: sw as number | null } : {}),
    extra,
  };
}

export function readLlamaConfig(path: string): LlamaConfig {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    throw new FormatError(path, `cannot read: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new FormatError(path, `invalid JSON: ${(e as Error).message}`);
  }
  return parseLlamaConfig(raw, path);
}

/** The snake_case object Hugging Face expects. Validates first so we never write a bad file. */
export function llamaConfigToJson(c: LlamaConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {
    architectures: c.modelType === 'mistral' ? ['MistralForCausalLM'] : ['LlamaForCausalLM'],
    ...c.extra,
    model_type: c.modelType,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numHiddenLayers,
    num_attention_heads: c.numAttentionHeads,
    num_key_value_heads: c.numKeyValueHeads,
    head_dim: c.headDim,
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    vocab_size: c.vocabSize,
    tie_word_embeddings: c.tieWordEmbeddings,
    max_position_embeddings: c.maxPositionEmbeddings,
    hidden_act: c.hiddenAct,
    attention_bias: c.attentionBias,
    mlp_bias: c.mlpBias,
  };
  if (c.bosTokenId !== undefined) out.bos_token_id = c.bosTokenId;
  if (c.eosTokenId !== undefined) out.eos_token_id = c.eosTokenId;
  if (c.padTokenId !== undefined) out.pad_token_id = c.padTokenId;
  if (c.torchDtype !== undefined) out.torch_dtype = c.torchDtype;
  if (c.ropeScaling !== undefined) out.rope_scaling = c.ropeScaling;
  if (c.slidingWindow !== undefined) out.sliding_window = c.slidingWindow;
  parseLlamaConfig(out, '<config being written>');
  return out;
}

export function writeLlamaConfig(path: string, c: LlamaConfig): void {
  writeTextAtomic(path, JSON.stringify(llamaConfigToJson(c), null, 2) + '\n');
}

/** A config with defaults filled in, for building small models in code and tests. */
export function makeLlamaConfig(p: Partial<LlamaConfig> & Pick<LlamaConfig, 'hiddenSize' | 'intermediateSize' | 'numHiddenLayers' | 'numAttentionHeads' | 'vocabSize'>): LlamaConfig {
  const c: LlamaConfig = {
    modelType: 'llama',
    numKeyValueHeads: p.numAttentionHeads,
    headDim: p.hiddenSize / p.numAttentionHeads,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    tieWordEmbeddings: false,
    maxPositionEmbeddings: 2048,
    hiddenAct: 'silu',
    attentionBias: false,
    mlpBias: false,
    extra: {},
    ...p,
  };
  return parseLlamaConfig(llamaConfigToJson(c), '<makeLlamaConfig>');
}
