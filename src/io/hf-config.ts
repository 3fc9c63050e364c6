/**
 * Hugging Face LLaMA-family config.json (model_type llama, mistral, qwen2, qwen3) read, validated
 * and written as a typed camelCase LlamaConfig. Both layouts are read: transformers 4 keeps
 * `rope_theta` and `rope_scaling` at the top level; transformers 5 keeps both in `rope_parameters`.
 * A config is written back in the layout it was read in.
 *
 * Every key is in one of three lists below: read and implemented, harmless to ignore (metadata,
 * generation defaults, caching), or accepted only at the value that changes nothing and otherwise
 * refused by name. Keys in none of them are kept (written back) with a warning.
 */
import * as fs from 'node:fs';
import { writeTextAtomic } from './byte-source.js';
import { FormatError } from './types.js';
import type { RopeScaling } from '../nn/rope.js';

export type HfModelType = 'llama' | 'mistral' | 'qwen2' | 'qwen3';
export const HF_MODEL_TYPES: readonly HfModelType[] = ['llama', 'mistral', 'qwen2', 'qwen3'];

/** Where rope settings live: transformers 4 (`rope_theta` + `rope_scaling`) or 5 (`rope_parameters`). */
export type RopeLayout = 'rope_scaling' | 'rope_parameters';

export interface LlamaConfig {
  modelType: HfModelType;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  /** hidden_size / heads unless the file says otherwise. */
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  /** Parsed rope scaling; null for the default rope. */
  ropeScaling: RopeScaling | null;
  ropeLayout: RopeLayout;
  vocabSize: number;
  tieWordEmbeddings: boolean;
  maxPositionEmbeddings: number;
  bosTokenId?: number;
  /** Some models list several eos ids. */
  eosTokenId?: number | number[];
  padTokenId?: number;
  torchDtype?: string;
  /** The key the dtype was read from: `torch_dtype` (transformers 4) or `dtype` (newer). */
  dtypeKey?: 'torch_dtype' | 'dtype';
  hiddenAct: string;
  /** llama / qwen3 `attention_bias`: q, k, v and o projections carry a bias (Qwen2 always has q/k/v bias). */
  attentionBias: boolean;
  mlpBias: boolean;
  /** Mistral's attention window (null: none). Qwen's window is refused unless use_sliding_window is false. */
  slidingWindow?: number | null;
  /** Fields we do not model, kept so a written config round-trips. */
  extra: Record<string, unknown>;
}

/** Read into LlamaConfig (some only for some model types). */
export const IMPLEMENTED_KEYS: readonly string[] = [
  'model_type',
  'hidden_size',
  'intermediate_size',
  'num_hidden_layers',
  'num_attention_heads',
  'num_key_value_heads',
  'head_dim',
  'rms_norm_eps',
  'rope_theta',
  'rope_scaling',
  'rope_parameters',
  'vocab_size',
  'tie_word_embeddings',
  'max_position_embeddings',
  'bos_token_id',
  'eos_token_id',
  'pad_token_id',
  'torch_dtype',
  'dtype',
  'hidden_act',
  'attention_bias',
  'mlp_bias',
  'sliding_window',
];

/** Do not change the model's math: metadata, generation defaults, caching, tensor-parallel hints. */
export const HARMLESS_KEYS: readonly string[] = [
  'architectures',
  '_name_or_path',
  'transformers_version',
  'initializer_range',
  'use_cache',
  'pretraining_tp',
  'output_attentions',
  'output_hidden_states',
  'return_dict',
  'torchscript',
  'use_bfloat16',
  'tf_legacy_loss',
  'id2label',
  'label2id',
  'problem_type',
  'finetuning_task',
  'tokenizer_class',
  'prefix',
  'task_specific_params',
  'sep_token_id',
  'decoder_start_token_id',
  'chunk_size_feed_forward',
  'is_encoder_decoder',
  'is_decoder',
  'max_length',
  'min_length',
  'do_sample',
  'early_stopping',
  'num_beams',
  'num_beam_groups',
  'diversity_penalty',
  'temperature',
  'top_k',
  'top_p',
  'typical_p',
  'repetition_penalty',
  'length_penalty',
  'no_repeat_ngram_size',
  'encoder_no_repeat_ngram_size',
  'bad_words_ids',
  'num_return_sequences',
  'output_scores',
  'return_dict_in_generate',
  'forced_bos_token_id',
  'forced_eos_token_id',
  'remove_invalid_values',
  'exponential_decay_length_penalty',
  'suppress_tokens',
  'begin_suppress_tokens',
  'base_model_tp_plan',
  'base_model_pp_plan',
  'tp_plan',
  'pp_plan',
  'is_llama_config',
  'max_window_layers',
  'auto_map',
  'model_name',
  'use_return_dict',
];

/** Change the math unless at the value given here; any other value is refused by name. */
export const NEUTRAL_ONLY_KEYS: Readonly<Record<string, { ok: (v: unknown) => boolean; neutral: string }>> = {
  attention_dropout: { ok: (v) => v === 0 || v === 0.0, neutral: '0' },
  use_sliding_window: {
    ok: (v) => v === false,
    neutral: 'false (sliding-window attention is implemented for mistral only)',
  },
  rope_interleaved: { ok: (v) => v === false, neutral: 'false (rotate-half rope)' },
  partial_rotary_factor: { ok: (v) => v === 1 || v === 1.0, neutral: '1' },
  use_mrope: { ok: (v) => v === false, neutral: 'false' },
  layer_types: {
    ok: (v) => Array.isArray(v) && v.every((t) => t === 'full_attention'),
    neutral: 'every entry "full_attention"',
  },
  add_cross_attention: { ok: (v) => v === false, neutral: 'false' },
  cross_attention_hidden_size: { ok: (v) => v === null, neutral: 'null' },
  pruned_heads: { ok: (v) => v !== null && typeof v === 'object' && Object.keys(v).length === 0, neutral: '{}' },
  quantization_config: { ok: () => false, neutral: '(absent: quantized checkpoints are not supported)' },
  embedding_multiplier: { ok: (v) => v === 1, neutral: '1' },
  logits_scaling: { ok: (v) => v === 1, neutral: '1' },
  residual_multiplier: { ok: (v) => v === 1, neutral: '1' },
  attention_multiplier: { ok: () => false, neutral: '(absent)' },
  final_logit_softcapping: { ok: (v) => v === null, neutral: 'null' },
  attn_logit_softcapping: { ok: (v) => v === null, neutral: 'null' },
};

const ROPE_TYPES = ['default', 'linear', 'dynamic', 'yarn', 'llama3'] as const;
const ROPE_SUBKEYS = new Set([
  'rope_type',
  'type',
  'rope_theta',
  'factor',
  'original_max_position_embeddings',
  'attention_factor',
  'beta_fast',
  'beta_slow',
  'mscale',
  'mscale_all_dim',
  'truncate',
  'low_freq_factor',
  'high_freq_factor',
  'partial_rotary_factor',
]);

type Raw = Record<string, unknown>;

/** Parses a rope_scaling / rope_parameters object; `field` names it in errors. */
function parseRope(o: Raw, field: string, bad: (field: string, msg: string) => never): RopeScaling | null {
  for (const k of Object.keys(o)) {
    if (!ROPE_SUBKEYS.has(k)) {
      if (o[k] !== null && typeof o[k] === 'object' && !Array.isArray(o[k]))
        bad(field, `per-layer-type rope settings ("${k}") are not supported`);
      bad(`${field}.${k}`, `not supported (known: ${[...ROPE_SUBKEYS].join(', ')})`);
    }
  }
  const t = o.rope_type ?? o.type ?? 'default';
  if (typeof t !== 'string' || !(ROPE_TYPES as readonly string[]).includes(t))
    bad(`${field}.rope_type`, `${JSON.stringify(t)} is not supported; supported: ${ROPE_TYPES.join(', ')}`);
  if (o.partial_rotary_factor !== undefined && o.partial_rotary_factor !== 1)
    bad(`${field}.partial_rotary_factor`, `only 1 is supported, got ${JSON.stringify(o.partial_rotary_factor)}`);
  const num = (k: string, dflt?: number, opt = false): number | undefined => {
    const v = o[k] ?? dflt;
    if (v === undefined) {
      if (opt) return undefined;
      return bad(`${field}.${k}`, `missing (needed by rope_type "${t}")`);
    }
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
      return bad(`${field}.${k}`, `must be a positive number, got ${JSON.stringify(v)}`);
    return v;
  };
  switch (t) {
    case 'default':
      return null;
    case 'linear':
      return { type: 'linear', factor: num('factor')! };
    case 'dynamic':
      return { type: 'dynamic', factor: num('factor')! };
    case 'llama3':
      return {
        type: 'llama3',
        factor: num('factor')!,
        lowFreqFactor: num('low_freq_factor')!,
        highFreqFactor: num('high_freq_factor')!,
        originalMaxPositionEmbeddings: num('original_max_position_embeddings')!,
      };
    default: {
      if (o.truncate !== undefined && typeof o.truncate !== 'boolean')
        bad(`${field}.truncate`, 'must be true or false');
      const opt = (k: string) => num(k, undefined, true);
      const y: RopeScaling = { type: 'yarn', factor: num('factor')! };
      const bf = opt('beta_fast');
      const bs = opt('beta_slow');
      if (bf !== undefined) y.betaFast = bf;
      if (bs !== undefined) y.betaSlow = bs;
      if (o.truncate !== undefined) y.truncate = o.truncate as boolean;
      const om = opt('original_max_position_embeddings');
      const af = opt('attention_factor');
      const ms = opt('mscale');
      const msa = opt('mscale_all_dim');
      if (om !== undefined) y.originalMaxPositionEmbeddings = om;
      if (af !== undefined) y.attentionFactor = af;
      if (ms !== undefined) y.mscale = ms;
      if (msa !== undefined) y.mscaleAllDim = msa;
      return y;
    }
  }
}

/** The snake_case rope object (without rope_theta), as transformers writes it. */
function ropeToJson(r: RopeScaling | null): Raw {
  if (!r) return { rope_type: 'default' };
  switch (r.type) {
    case 'linear':
    case 'dynamic':
      return { rope_type: r.type, factor: r.factor };
    case 'llama3':
      return {
        rope_type: 'llama3',
        factor: r.factor,
        low_freq_factor: r.lowFreqFactor,
        high_freq_factor: r.highFreqFactor,
        original_max_position_embeddings: r.originalMaxPositionEmbeddings,
      };
    case 'yarn': {
      const o: Raw = { rope_type: 'yarn', factor: r.factor };
      if (r.betaFast !== undefined) o.beta_fast = r.betaFast;
      if (r.betaSlow !== undefined) o.beta_slow = r.betaSlow;
      if (r.truncate !== undefined) o.truncate = r.truncate;
      if (r.originalMaxPositionEmbeddings !== undefined)
        o.original_max_position_embeddings = r.originalMaxPositionEmbeddings;
      if (r.attentionFactor !== undefined) o.attention_factor = r.attentionFactor;
      if (r.mscale !== undefined) o.mscale = r.mscale;
      if (r.mscaleAllDim !== undefined) o.mscale_all_dim = r.mscaleAllDim;
      return o;
    }
  }
}

/** Validates a parsed config.json object; `file` is used in error messages. Unknown keys are listed in `unknown`. */
export function parseLlamaConfig(raw: unknown, file = 'config.json', unknown: string[] = []): LlamaConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new FormatError(file, 'config is not a JSON object');
  const r = raw as Raw;
  const bad = (field: string, msg: string): never => {
    throw new FormatError(file, `field "${field}": ${msg}`);
  };
  const posInt = (field: string, dflt?: number): number => {
    const v = r[field] ?? dflt;
    if (v === undefined) return bad(field, 'missing');
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0)
      return bad(field, `must be a positive integer, got ${JSON.stringify(v)}`);
    return v;
  };
  const posNum = (field: string, dflt: number): number => {
    const v = r[field] ?? dflt;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
      return bad(field, `must be a positive number, got ${JSON.stringify(v)}`);
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
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
      return bad(field, `must be a non-negative integer, got ${JSON.stringify(v)}`);
    return v;
  };

  const modelType = r.model_type;
  if (!(HF_MODEL_TYPES as readonly unknown[]).includes(modelType))
    bad('model_type', `${JSON.stringify(modelType)} is not supported; supported: ${HF_MODEL_TYPES.join(', ')}`);
  for (const [k, rule] of Object.entries(NEUTRAL_ONLY_KEYS)) {
    if (r[k] !== undefined && !rule.ok(r[k]))
      bad(k, `${JSON.stringify(r[k])} changes the model and is not supported; supported: ${rule.neutral}`);
  }
  const hiddenSize = posInt('hidden_size');
  const intermediateSize = posInt('intermediate_size');
  const numHiddenLayers = posInt('num_hidden_layers');
  const numAttentionHeads = posInt('num_attention_heads');
  const numKeyValueHeads = posInt('num_key_value_heads', numAttentionHeads);
  const headDimRaw = r.head_dim;
  let headDim: number;
  if (headDimRaw === undefined || headDimRaw === null) {
    if (hiddenSize % numAttentionHeads !== 0)
      bad('num_attention_heads', `${numAttentionHeads} does not divide hidden_size ${hiddenSize}`);
    headDim = hiddenSize / numAttentionHeads;
  } else {
    headDim = posInt('head_dim');
  }
  if (numAttentionHeads % numKeyValueHeads !== 0)
    bad('num_key_value_heads', `${numKeyValueHeads} does not divide num_attention_heads ${numAttentionHeads}`);
  if (headDim % 2 !== 0) bad('head_dim', `rotary embeddings need an even head dimension, got ${headDim}`);
  const rmsNormEps = posNum('rms_norm_eps', 1e-6);
  if (rmsNormEps >= 1) bad('rms_norm_eps', `implausibly large: ${rmsNormEps}`);

  // rope: transformers 5 keeps theta and scaling together in rope_parameters
  let ropeTheta: number;
  let ropeScaling: RopeScaling | null = null;
  let ropeLayout: RopeLayout = 'rope_scaling';
  const rp = r.rope_parameters;
  if (rp !== undefined && rp !== null) {
    if (typeof rp !== 'object' || Array.isArray(rp)) bad('rope_parameters', 'must be an object');
    if (r.rope_scaling !== undefined && r.rope_scaling !== null)
      bad('rope_scaling', 'given together with rope_parameters; a config holds one of them');
    ropeLayout = 'rope_parameters';
    const o = rp as Raw;
    ropeScaling = parseRope(o, 'rope_parameters', bad);
    const th = o.rope_theta ?? r.rope_theta;
    if (typeof th !== 'number' || !Number.isFinite(th) || th <= 0)
      bad('rope_parameters.rope_theta', `must be a positive number, got ${JSON.stringify(th)}`);
    if (r.rope_theta !== undefined && o.rope_theta !== undefined && r.rope_theta !== o.rope_theta)
      bad(
        'rope_theta',
        `${JSON.stringify(r.rope_theta)} disagrees with rope_parameters.rope_theta ${JSON.stringify(o.rope_theta)}`,
      );
    ropeTheta = th as number;
  } else {
    ropeTheta = posNum('rope_theta', 10000);
    const rs = r.rope_scaling;
    if (rs !== undefined && rs !== null) {
      if (typeof rs !== 'object' || Array.isArray(rs)) bad('rope_scaling', 'must be an object or null');
      if ((rs as Raw).rope_theta !== undefined)
        bad('rope_scaling.rope_theta', 'belongs at the top level (or in rope_parameters)');
      ropeScaling = parseRope(rs as Raw, 'rope_scaling', bad);
    }
  }
  const vocabSize = posInt('vocab_size');
  const tieWordEmbeddings = bool('tie_word_embeddings', false);
  const maxPositionEmbeddings = posInt('max_position_embeddings', 2048);
  const bosTokenId = optId('bos_token_id');
  let eosTokenId: number | number[] | undefined;
  if (Array.isArray(r.eos_token_id)) {
    eosTokenId = r.eos_token_id.map((v, i) => {
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
        bad(`eos_token_id[${i}]`, `must be a non-negative integer, got ${JSON.stringify(v)}`);
      return v as number;
    });
  } else eosTokenId = optId('eos_token_id');
  const padTokenId = optId('pad_token_id');
  for (const [f, v] of [
    ['bos_token_id', bosTokenId],
    ['pad_token_id', padTokenId],
  ] as const) {
    if (v !== undefined && v >= vocabSize) bad(f, `${v} is outside the vocabulary (vocab_size ${vocabSize})`);
  }
  for (const v of Array.isArray(eosTokenId) ? eosTokenId : eosTokenId === undefined ? [] : [eosTokenId]) {
    if (v >= vocabSize) bad('eos_token_id', `${v} is outside the vocabulary (vocab_size ${vocabSize})`);
  }
  if (r.torch_dtype != null && r.dtype != null && r.torch_dtype !== r.dtype)
    bad('dtype', `${JSON.stringify(r.dtype)} disagrees with torch_dtype ${JSON.stringify(r.torch_dtype)}`);
  const dtypeKey = r.torch_dtype != null ? 'torch_dtype' : r.dtype != null ? 'dtype' : undefined;
  const torchDtype = dtypeKey ? r[dtypeKey] : undefined;
  if (torchDtype !== undefined && typeof torchDtype !== 'string') bad(dtypeKey!, 'must be a string');
  const hiddenAct = r.hidden_act ?? 'silu';
  if (hiddenAct !== 'silu') bad('hidden_act', `${JSON.stringify(hiddenAct)} is not supported; supported: "silu"`);
  const attentionBias = bool('attention_bias', false);
  if (attentionBias && (modelType === 'mistral' || modelType === 'qwen2'))
    bad('attention_bias', `is not a ${modelType as string} option`);
  const mlpBias = bool('mlp_bias', false);
  if (mlpBias) bad('mlp_bias', 'true is not supported; supported: false');
  const sw = r.sliding_window;
  if (sw !== undefined && sw !== null && (typeof sw !== 'number' || !Number.isSafeInteger(sw) || sw <= 0))
    bad('sliding_window', 'must be a positive integer or null');

  const implemented = new Set(IMPLEMENTED_KEYS);
  const harmless = new Set(HARMLESS_KEYS);
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r)) {
    if (implemented.has(k) && !(k === 'sliding_window' && modelType !== 'mistral')) continue;
    if (!harmless.has(k) && !(k in NEUTRAL_ONLY_KEYS) && k !== 'sliding_window') unknown.push(k);
    extra[k] = v;
  }
  return {
    modelType: modelType as HfModelType,
    hiddenSize,
    intermediateSize,
    numHiddenLayers,
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    rmsNormEps,
    ropeTheta,
    ropeScaling,
    ropeLayout,
    vocabSize,
    tieWordEmbeddings,
    maxPositionEmbeddings,
    ...(bosTokenId !== undefined ? { bosTokenId } : {}),
    ...(eosTokenId !== undefined ? { eosTokenId } : {}),
    ...(padTokenId !== undefined ? { padTokenId } : {}),
    ...(typeof torchDtype === 'string' ? { torchDtype, dtypeKey } : {}),
    hiddenAct: 'silu',
    attentionBias,
    mlpBias,
    ...(modelType === 'mistral' && sw !== undefined ? { slidingWindow: sw as number | null } : {}),
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
  const unknown: string[] = [];
  const c = parseLlamaConfig(raw, path, unknown);
  if (unknown.length > 0) {
    process.emitWarning(
      `${path}: fields ${unknown.map((k) => `"${k}"`).join(', ')} are not known to this reader and are ignored (kept when the config is written back); if they change the model, results will differ from transformers`,
    );
  }
  return c;
}

const ARCHITECTURE: Record<HfModelType, string> = {
  llama: 'LlamaForCausalLM',
  mistral: 'MistralForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  qwen3: 'Qwen3ForCausalLM',
};

/** The snake_case object Hugging Face expects, in the layout the config was read in. Validates first so we never write a bad file. */
export function llamaConfigToJson(c: LlamaConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {
    architectures: [ARCHITECTURE[c.modelType]],
    ...c.extra,
    model_type: c.modelType,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numHiddenLayers,
    num_attention_heads: c.numAttentionHeads,
    num_key_value_heads: c.numKeyValueHeads,
    head_dim: c.headDim,
    rms_norm_eps: c.rmsNormEps,
    vocab_size: c.vocabSize,
    tie_word_embeddings: c.tieWordEmbeddings,
    max_position_embeddings: c.maxPositionEmbeddings,
    hidden_act: c.hiddenAct,
  };
  if (c.modelType === 'llama' || c.modelType === 'qwen3') out.attention_bias = c.attentionBias;
  if (c.modelType === 'llama') out.mlp_bias = c.mlpBias;
  if (c.ropeLayout === 'rope_parameters')
    out.rope_parameters = { rope_theta: c.ropeTheta, ...ropeToJson(c.ropeScaling) };
  else {
    out.rope_theta = c.ropeTheta;
    if (c.ropeScaling) out.rope_scaling = ropeToJson(c.ropeScaling);
    else if (c.modelType === 'llama') out.rope_scaling = null;
  }
  if (c.bosTokenId !== undefined) out.bos_token_id = c.bosTokenId;
  if (c.eosTokenId !== undefined) out.eos_token_id = c.eosTokenId;
  if (c.padTokenId !== undefined) out.pad_token_id = c.padTokenId;
  if (c.torchDtype !== undefined)
    out[c.dtypeKey ?? (c.ropeLayout === 'rope_parameters' ? 'dtype' : 'torch_dtype')] = c.torchDtype;
  if (c.slidingWindow !== undefined) out.sliding_window = c.slidingWindow;
  parseLlamaConfig(out, '<config being written>');
  return out;
}

export function writeLlamaConfig(path: string, c: LlamaConfig): void {
  writeTextAtomic(path, JSON.stringify(llamaConfigToJson(c), null, 2) + '\n');
}

/** A config with defaults filled in, for building small models in code and tests. */
export function makeLlamaConfig(
  p: Partial<LlamaConfig> &
    Pick<LlamaConfig, 'hiddenSize' | 'intermediateSize' | 'numHiddenLayers' | 'numAttentionHeads' | 'vocabSize'>,
): LlamaConfig {
  const c: LlamaConfig = {
    modelType: 'llama',
    ropeScaling: null,
    ropeLayout: 'rope_scaling',
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
