/**
 * config.json keys, one table: every key the reader knows is implemented (it changes the parsed
 * config), harmless (accepted, ignored, written back), or accepted only at its neutral value and
 * otherwise refused with an error naming it. Keys outside the table are reported as unknown. Also
 * the configs of the checkpoints people fine-tune (as published), and both rope layouts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  HARMLESS_KEYS,
  IMPLEMENTED_KEYS,
  NEUTRAL_ONLY_KEYS,
  llamaConfigToJson,
  parseLlamaConfig,
} from '../../src/io/hf-config.js';

const BASE = {
  model_type: 'llama',
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: 100,
};

// [key, a value that must be read (implemented) / accepted (harmless) / refused (neutral-only), neutral value]
const IMPLEMENTED: [string, unknown, (c: ReturnType<typeof parseLlamaConfig>) => unknown][] = [
  ['model_type', 'qwen2', (c) => c.modelType],
  ['hidden_size', 32, (c) => c.hiddenSize],
  ['intermediate_size', 96, (c) => c.intermediateSize],
  ['num_hidden_layers', 3, (c) => c.numHiddenLayers],
  ['num_attention_heads', 8, (c) => c.numAttentionHeads],
  ['num_key_value_heads', 1, (c) => c.numKeyValueHeads],
  ['head_dim', 32, (c) => c.headDim],
  ['rms_norm_eps', 1e-6, (c) => c.rmsNormEps],
  ['rope_theta', 500000, (c) => c.ropeTheta],
  ['rope_scaling', { rope_type: 'linear', factor: 2 }, (c) => c.ropeScaling],
  ['rope_parameters', { rope_type: 'default', rope_theta: 1e6 }, (c) => c.ropeTheta],
  ['vocab_size', 120, (c) => c.vocabSize],
  ['tie_word_embeddings', true, (c) => c.tieWordEmbeddings],
  ['max_position_embeddings', 4096, (c) => c.maxPositionEmbeddings],
  ['bos_token_id', 5, (c) => c.bosTokenId],
  ['eos_token_id', [6, 7], (c) => c.eosTokenId],
  ['pad_token_id', 8, (c) => c.padTokenId],
  ['torch_dtype', 'bfloat16', (c) => c.torchDtype],
  ['dtype', 'float16', (c) => c.torchDtype],
  ['hidden_act', 'silu', (c) => c.hiddenAct],
  ['attention_bias', true, (c) => c.attentionBias],
  ['mlp_bias', false, (c) => c.mlpBias],
  ['sliding_window', 4096, (c) => (c.modelType === 'mistral' ? c.slidingWindow : c.extra.sliding_window)],
];

const HARMLESS: [string, unknown][] = [
  ['architectures', ['LlamaForCausalLM']],
  ['_name_or_path', 'x'],
  ['transformers_version', '4.46.0'],
  ['initializer_range', 0.02],
  ['use_cache', true],
  ['pretraining_tp', 1],
  ['output_attentions', false],
  ['output_hidden_states', false],
  ['return_dict', true],
  ['torchscript', false],
  ['use_bfloat16', false],
  ['tf_legacy_loss', false],
  ['id2label', {}],
  ['label2id', {}],
  ['problem_type', null],
  ['finetuning_task', null],
  ['tokenizer_class', null],
  ['prefix', null],
  ['task_specific_params', null],
  ['sep_token_id', null],
  ['decoder_start_token_id', null],
  ['chunk_size_feed_forward', 0],
  ['is_encoder_decoder', false],
  ['is_decoder', false],
  ['max_length', 20],
  ['min_length', 0],
  ['do_sample', false],
  ['early_stopping', false],
  ['num_beams', 1],
  ['num_beam_groups', 1],
  ['diversity_penalty', 0],
  ['temperature', 1],
  ['top_k', 50],
  ['top_p', 1],
  ['typical_p', 1],
  ['repetition_penalty', 1],
  ['length_penalty', 1],
  ['no_repeat_ngram_size', 0],
  ['encoder_no_repeat_ngram_size', 0],
  ['bad_words_ids', null],
  ['num_return_sequences', 1],
  ['output_scores', false],
  ['return_dict_in_generate', false],
  ['forced_bos_token_id', null],
  ['forced_eos_token_id', null],
  ['remove_invalid_values', false],
  ['exponential_decay_length_penalty', null],
  ['suppress_tokens', null],
  ['begin_suppress_tokens', null],
  ['base_model_tp_plan', {}],
  ['base_model_pp_plan', {}],
  ['tp_plan', {}],
  ['pp_plan', {}],
  ['is_llama_config', true],
  ['max_window_layers', 21],
  ['auto_map', {}],
  ['model_name', 'x'],
  ['use_return_dict', true],
];

// [key, neutral value, a value that changes the model]
const NEUTRAL_ONLY: [string, unknown, unknown][] = [
  ['attention_dropout', 0, 0.1],
  ['use_sliding_window', false, true],
  ['rope_interleaved', false, true],
  ['partial_rotary_factor', 1, 0.5],
  ['use_mrope', false, true],
  ['layer_types', ['full_attention', 'full_attention'], ['full_attention', 'sliding_attention']],
  ['add_cross_attention', false, true],
  ['cross_attention_hidden_size', null, 64],
  ['pruned_heads', {}, { 0: [1] }],
  ['quantization_config', undefined, { quant_method: 'gptq' }],
  ['embedding_multiplier', 1, 12],
  ['logits_scaling', 1, 8],
  ['residual_multiplier', 1, 0.22],
  ['attention_multiplier', undefined, 0.015],
  ['final_logit_softcapping', null, 30],
  ['attn_logit_softcapping', null, 50],
];

test("the table covers exactly the reader's key lists", () => {
  assert.deepEqual(IMPLEMENTED.map(([k]) => k).sort(), [...IMPLEMENTED_KEYS].sort());
  assert.deepEqual(HARMLESS.map(([k]) => k).sort(), [...HARMLESS_KEYS].sort());
  assert.deepEqual(NEUTRAL_ONLY.map(([k]) => k).sort(), Object.keys(NEUTRAL_ONLY_KEYS).sort());
});

test('implemented keys are read', () => {
  for (const [k, v, get] of IMPLEMENTED) {
    const raw: Record<string, unknown> = { ...BASE, [k]: v };
    if (k === 'sliding_window') raw.model_type = 'mistral';
    if (k === 'num_attention_heads') raw.num_key_value_heads = 2;
    const c = parseLlamaConfig(raw, 'config.json');
    const want =
      k === 'rope_parameters'
        ? 1e6
        : k === 'rope_scaling'
          ? { type: 'linear', factor: 2 }
          : k === 'dtype'
            ? 'float16'
            : v;
    assert.deepEqual(get(c), want, k);
  }
});

test('harmless keys are accepted, not reported, and written back', () => {
  for (const [k, v] of HARMLESS) {
    const unknown: string[] = [];
    const c = parseLlamaConfig({ ...BASE, [k]: v }, 'config.json', unknown);
    assert.deepEqual(unknown, [], k);
    if (k !== 'architectures') assert.deepEqual(llamaConfigToJson(c)[k], v, k);
  }
});

test('math-changing keys: neutral value accepted, any other refused by name', () => {
  for (const [k, neutral, changing] of NEUTRAL_ONLY) {
    if (neutral !== undefined) parseLlamaConfig({ ...BASE, [k]: neutral }, 'config.json');
    assert.throws(
      () => parseLlamaConfig({ ...BASE, [k]: changing }, 'dir/config.json'),
      (e: Error) =>
        e.message.includes('dir/config.json') && e.message.includes(`"${k}"`) && /supported/.test(e.message),
      k,
    );
  }
});

test('refused values of implemented keys name the key and what is supported', () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ model_type: 'gemma3' }, 'model_type'],
    [{ hidden_act: 'gelu' }, 'hidden_act'],
    [{ mlp_bias: true }, 'mlp_bias'],
    [{ model_type: 'qwen2', attention_bias: true }, 'attention_bias'],
    [{ rope_scaling: { rope_type: 'longrope', factor: 2 } }, 'rope_scaling.rope_type'],
    [{ rope_scaling: { rope_type: 'linear' } }, 'rope_scaling.factor'],
    [{ rope_scaling: { rope_type: 'linear', factor: 2, mrope_section: [1] } }, 'rope_scaling.mrope_section'],
    [
      { rope_parameters: { rope_type: 'yarn', rope_theta: 1e4, factor: 2, partial_rotary_factor: 0.5 } },
      'rope_parameters.partial_rotary_factor',
    ],
    [{ rope_parameters: { full_attention: { rope_type: 'default', rope_theta: 1e4 } } }, 'rope_parameters'],
    [
      { rope_parameters: { rope_type: 'default', rope_theta: 1e4 }, rope_scaling: { rope_type: 'linear', factor: 2 } },
      'rope_scaling',
    ],
    [{ rope_theta: 10000, rope_parameters: { rope_type: 'default', rope_theta: 500000 } }, 'rope_theta'],
  ];
  for (const [extra, field] of cases) {
    assert.throws(
      () => parseLlamaConfig({ ...BASE, ...extra }, 'config.json'),
      (e: Error) => e.message.includes(`"${field}"`),
      JSON.stringify(extra),
    );
  }
});

test('unknown keys are reported and kept', () => {
  const unknown: string[] = [];
  const c = parseLlamaConfig({ ...BASE, some_new_switch: 3 }, 'config.json', unknown);
  assert.deepEqual(unknown, ['some_new_switch']);
  assert.equal(llamaConfigToJson(c).some_new_switch, 3);
});

test('both rope layouts: same theta and scaling, each written back as read', () => {
  const llama3 = {
    factor: 32,
    low_freq_factor: 1,
    high_freq_factor: 4,
    original_max_position_embeddings: 8192,
    rope_type: 'llama3',
  };
  const v4 = parseLlamaConfig({ ...BASE, rope_theta: 500000, rope_scaling: llama3 });
  const v5 = parseLlamaConfig({ ...BASE, rope_parameters: { ...llama3, rope_theta: 500000 } });
  assert.equal(v4.ropeTheta, 500000);
  assert.equal(v5.ropeTheta, 500000);
  assert.deepEqual(v4.ropeScaling, v5.ropeScaling);
  assert.deepEqual(v4.ropeScaling, {
    type: 'llama3',
    factor: 32,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositionEmbeddings: 8192,
  });
  const j4 = llamaConfigToJson(v4);
  const j5 = llamaConfigToJson(v5);
  assert.equal(j4.rope_theta, 500000);
  assert.deepEqual(j4.rope_scaling, llama3);
  assert.ok(!('rope_parameters' in j4));
  assert.deepEqual(j5.rope_parameters, { ...llama3, rope_theta: 500000 });
  assert.ok(!('rope_theta' in j5) && !('rope_scaling' in j5));
  // the older "type" spelling of rope_scaling
  assert.deepEqual(parseLlamaConfig({ ...BASE, rope_scaling: { type: 'dynamic', factor: 2 } }).ropeScaling, {
    type: 'dynamic',
    factor: 2,
  });
});

// Published configs (abridged to the keys they carry; sizes as released).
const PUBLISHED: Record<string, Record<string, unknown>> = {
  'Llama-3.2-1B (transformers 4)': {
    architectures: ['LlamaForCausalLM'],
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: 128000,
    eos_token_id: 128001,
    head_dim: 64,
    hidden_act: 'silu',
    hidden_size: 2048,
    initializer_range: 0.02,
    intermediate_size: 8192,
    max_position_embeddings: 131072,
    mlp_bias: false,
    model_type: 'llama',
    num_attention_heads: 32,
    num_hidden_layers: 16,
    num_key_value_heads: 8,
    pretraining_tp: 1,
    rms_norm_eps: 1e-5,
    rope_scaling: {
      factor: 32.0,
      high_freq_factor: 4.0,
      low_freq_factor: 1.0,
      original_max_position_embeddings: 8192,
      rope_type: 'llama3',
    },
    rope_theta: 500000.0,
    tie_word_embeddings: true,
    torch_dtype: 'bfloat16',
    transformers_version: '4.45.0.dev0',
    use_cache: true,
    vocab_size: 128256,
  },
  'Qwen2.5-0.5B': {
    architectures: ['Qwen2ForCausalLM'],
    attention_dropout: 0.0,
    bos_token_id: 151643,
    eos_token_id: 151643,
    hidden_act: 'silu',
    hidden_size: 896,
    initializer_range: 0.02,
    intermediate_size: 4864,
    max_position_embeddings: 32768,
    max_window_layers: 24,
    model_type: 'qwen2',
    num_attention_heads: 14,
    num_hidden_layers: 24,
    num_key_value_heads: 2,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000.0,
    sliding_window: 32768,
    tie_word_embeddings: true,
    torch_dtype: 'bfloat16',
    transformers_version: '4.40.1',
    use_cache: true,
    use_sliding_window: false,
    vocab_size: 151936,
  },
  'Qwen3-0.6B': {
    architectures: ['Qwen3ForCausalLM'],
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: 151643,
    eos_token_id: 151645,
    head_dim: 128,
    hidden_act: 'silu',
    hidden_size: 1024,
    initializer_range: 0.02,
    intermediate_size: 3072,
    max_position_embeddings: 40960,
    max_window_layers: 28,
    model_type: 'qwen3',
    num_attention_heads: 16,
    num_hidden_layers: 28,
    num_key_value_heads: 8,
    rms_norm_eps: 1e-6,
    rope_scaling: null,
    rope_theta: 1000000,
    sliding_window: null,
    tie_word_embeddings: true,
    torch_dtype: 'bfloat16',
    transformers_version: '4.51.0',
    use_cache: true,
    use_sliding_window: false,
    vocab_size: 151936,
  },
  'TinyLlama-1.1B': {
    architectures: ['LlamaForCausalLM'],
    bos_token_id: 1,
    eos_token_id: 2,
    hidden_act: 'silu',
    hidden_size: 2048,
    initializer_range: 0.02,
    intermediate_size: 5632,
    max_position_embeddings: 2048,
    model_type: 'llama',
    num_attention_heads: 32,
    num_hidden_layers: 22,
    num_key_value_heads: 4,
    pretraining_tp: 1,
    rms_norm_eps: 1e-5,
    rope_scaling: null,
    rope_theta: 10000.0,
    tie_word_embeddings: false,
    torch_dtype: 'bfloat16',
    transformers_version: '4.35.0',
    use_cache: true,
    vocab_size: 32000,
  },
  'SmolLM2-135M': {
    architectures: ['LlamaForCausalLM'],
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: 0,
    eos_token_id: 0,
    hidden_act: 'silu',
    hidden_size: 576,
    initializer_range: 0.041666666666666664,
    intermediate_size: 1536,
    is_llama_config: true,
    max_position_embeddings: 8192,
    model_type: 'llama',
    num_attention_heads: 9,
    num_hidden_layers: 30,
    num_key_value_heads: 3,
    pretraining_tp: 1,
    rms_norm_eps: 1e-5,
    rope_interleaved: false,
    rope_scaling: null,
    rope_theta: 100000,
    tie_word_embeddings: true,
    torch_dtype: 'bfloat16',
    transformers_version: '4.42.3',
    use_cache: true,
    vocab_size: 49152,
  },
  'Mistral-7B-v0.1': {
    architectures: ['MistralForCausalLM'],
    bos_token_id: 1,
    eos_token_id: 2,
    hidden_act: 'silu',
    hidden_size: 4096,
    initializer_range: 0.02,
    intermediate_size: 14336,
    max_position_embeddings: 32768,
    model_type: 'mistral',
    num_attention_heads: 32,
    num_hidden_layers: 32,
    num_key_value_heads: 8,
    rms_norm_eps: 1e-5,
    rope_theta: 10000.0,
    sliding_window: 4096,
    tie_word_embeddings: false,
    torch_dtype: 'bfloat16',
    transformers_version: '4.34.0.dev0',
    use_cache: true,
    vocab_size: 32000,
  },
  'Llama-3.2-1B (transformers 5)': {
    architectures: ['LlamaForCausalLM'],
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: 128000,
    dtype: 'bfloat16',
    eos_token_id: 128001,
    head_dim: 64,
    hidden_act: 'silu',
    hidden_size: 2048,
    initializer_range: 0.02,
    intermediate_size: 8192,
    max_position_embeddings: 131072,
    mlp_bias: false,
    model_type: 'llama',
    num_attention_heads: 32,
    num_hidden_layers: 16,
    num_key_value_heads: 8,
    pretraining_tp: 1,
    rms_norm_eps: 1e-5,
    rope_parameters: {
      factor: 32.0,
      high_freq_factor: 4.0,
      low_freq_factor: 1.0,
      original_max_position_embeddings: 8192,
      rope_theta: 500000.0,
      rope_type: 'llama3',
    },
    tie_word_embeddings: true,
    transformers_version: '5.0.0',
    use_cache: true,
    vocab_size: 128256,
  },
};

test('published configs parse with no unknown keys, and round-trip', () => {
  for (const [name, raw] of Object.entries(PUBLISHED)) {
    const unknown: string[] = [];
    const c = parseLlamaConfig(raw, name, unknown);
    assert.deepEqual(unknown, [], name);
    const back = llamaConfigToJson(c);
    for (const [k, v] of Object.entries(raw)) {
      if (v === null && !(k in back)) continue;
      assert.deepEqual(back[k], v, `${name}: ${k}`);
    }
  }
});
