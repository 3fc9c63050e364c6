import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { quantize } from '../../src/io/dtype.js';
import { llamaConfigToJson, parseLlamaConfig, readLlamaConfig, writeLlamaConfig } from '../../src/io/hf-config.js';
import { INDEX_FILE, SINGLE_FILE, openHfModel, writeHfModel } from '../../src/io/hf-folder.js';
import { llamaTensorShapes } from '../../src/io/llama-names.js';
import { readPeftAdapter, writePeftAdapter, type LoraTensors } from '../../src/io/peft.js';
import { randTensor, randomLlama, rng, tinyConfig, tmpDir } from './helpers.js';

const baseRaw = {
  model_type: 'llama',
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 8,
  rms_norm_eps: 1e-5,
  vocab_size: 100,
  max_position_embeddings: 256,
  bos_token_id: 1,
  eos_token_id: 2,
  torch_dtype: 'bfloat16',
};

test('config.json: defaults, camelCase fields, round trip', () => {
  const c = parseLlamaConfig(baseRaw);
  assert.equal(c.numKeyValueHeads, 8);
  assert.equal(c.headDim, 8);
  assert.equal(c.ropeTheta, 10000);
  assert.equal(c.tieWordEmbeddings, false);
  assert.equal(c.torchDtype, 'bfloat16');
  const dir = tmpDir();
  const p = path.join(dir, 'config.json');
  writeLlamaConfig(p, { ...c, extra: { custom_field: [1, 2] } });
  const back = readLlamaConfig(p);
  assert.deepEqual(back, { ...c, extra: { custom_field: [1, 2], architectures: ['LlamaForCausalLM'] } });
  const mistral = parseLlamaConfig({
    ...baseRaw,
    model_type: 'mistral',
    num_key_value_heads: 2,
    sliding_window: 4096,
    rope_theta: 1e6,
    eos_token_id: [2, 3],
  });
  assert.equal(mistral.slidingWindow, 4096);
  assert.deepEqual(mistral.eosTokenId, [2, 3]);
  assert.equal(llamaConfigToJson(mistral).model_type, 'mistral');
});

test('config.json: range checks name the file and field', () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ model_type: 'gpt2' }, /field "model_type"/],
    [{ hidden_size: 0 }, /field "hidden_size": must be a positive integer/],
    [{ hidden_size: 64.5 }, /field "hidden_size"/],
    [{ num_attention_heads: 7 }, /field "num_attention_heads": 7 does not divide hidden_size 64/],
    [{ num_key_value_heads: 3 }, /field "num_key_value_heads": 3 does not divide num_attention_heads 8/],
    [{ rms_norm_eps: -1 }, /field "rms_norm_eps"/],
    [{ vocab_size: undefined }, /field "vocab_size": missing/],
    [{ bos_token_id: 100 }, /field "bos_token_id": 100 is outside the vocabulary/],
    [{ tie_word_embeddings: 'yes' }, /field "tie_word_embeddings"/],
    [{ head_dim: 7 }, /field "head_dim"/],
  ];
  for (const [over, re] of bad) {
    assert.throws(
      () => parseLlamaConfig({ ...baseRaw, ...over }, 'm/config.json'),
      (e: Error) => /^m\/config\.json: /.test(e.message) && re.test(e.message),
    );
  }
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 'config.json'), '{oops');
  assert.throws(() => readLlamaConfig(path.join(dir, 'config.json')), /config\.json: invalid JSON/);
});

test('HF folder: sharded BF16 and single-file F16 round trips, index validated', () => {
  const c = tinyConfig();
  const w = randomLlama(c, 5);
  for (const dtype of ['BF16', 'F16'] as const) {
    const dir = tmpDir();
    const shards = writeHfModel(dir, { config: c, tensors: w, dtype, maxShardBytes: 20_000 });
    assert.ok(shards.length > 2, `several shards (${shards.length})`);
    assert.ok(
      shards.every(
        (s, i) =>
          s === `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`,
      ),
    );
    const index = JSON.parse(fs.readFileSync(path.join(dir, INDEX_FILE), 'utf8'));
    assert.equal(Object.keys(index.weight_map).length, w.size);
    assert.equal(
      index.metadata.total_size,
      [...w.values()].reduce((a, t) => a + t.data.length * 2, 0),
    );
    const m = openHfModel(dir);
    try {
      assert.equal(m.config.torchDtype, dtype === 'BF16' ? 'bfloat16' : 'float16');
      assert.deepEqual(new Set(m.names()), new Set(w.keys()));
      for (const [n, t] of w) {
        const got = m.load(n);
        assert.equal(got.dtype, dtype);
        assert.deepEqual(got.data, quantize(dtype, t.data), n);
      }
      assert.deepEqual(m.metadata, { format: 'pt' });
    } finally {
      m.close();
    }
    // re-writing as one file removes the old shards and index
    writeHfModel(dir, { config: c, tensors: w, dtype: 'F32' });
    assert.deepEqual(fs.readdirSync(dir).sort(), ['config.json', SINGLE_FILE]);
    const m2 = openHfModel(dir);
    assert.deepEqual(m2.load('model.norm.weight').data, w.get('model.norm.weight')!.data);
    m2.close();
  }
});

test('HF folder: generation_config, missing tensors, bad shapes and hostile index are reported', () => {
  const c = tinyConfig({ tieWordEmbeddings: true });
  const w = randomLlama(c, 6);
  assert.equal(w.has('lm_head.weight'), false);
  const dir = tmpDir();
  writeHfModel(dir, { config: c, tensors: w, maxShardBytes: 30_000 });
  fs.writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify({ bos_token_id: 1, temperature: 0.7 }));
  const m = openHfModel(dir);
  assert.equal(m.generationConfig?.temperature, 0.7);
  assert.deepEqual(m.info('model.norm.weight').shape, [32]);
  m.close();

  const idxPath = path.join(dir, INDEX_FILE);
  const idx = JSON.parse(fs.readFileSync(idxPath, 'utf8'));
  // biome-ignore lint/suspicious/noExplicitAny: the test edits arbitrary fields of the JSON it read
  const edit = (f: (x: any) => void) => {
    const x = structuredClone(idx);
    f(x);
    fs.writeFileSync(idxPath, JSON.stringify(x));
  };
  edit((x) => {
    x.weight_map['model.norm.weight'] = '../../etc/passwd.safetensors';
  });
  assert.throws(() => openHfModel(dir), /not a plain file name/);
  edit((x) => {
    x.weight_map['model.norm.weight'] = 'model-00009-of-00009.safetensors';
  });
  assert.throws(() => openHfModel(dir), /shard "model-00009-of-00009.safetensors" listed in weight_map does not exist/);
  edit((x) => {
    x.weight_map['ghost.weight'] = x.weight_map['model.norm.weight'];
  });
  assert.throws(() => openHfModel(dir), /tensor "ghost.weight" is mapped to .* but that shard does not contain it/);
  edit((x) => {
    delete x.weight_map['model.norm.weight'];
  });
  assert.throws(() => openHfModel(dir), /tensor "model.norm.weight" in shard .* is not in the weight_map/);
  fs.writeFileSync(idxPath, JSON.stringify(idx));
  assert.doesNotThrow(() => openHfModel(dir).close());

  const w2 = new Map(w);
  w2.delete('model.layers.1.mlp.up_proj.weight');
  assert.throws(
    () => writeHfModel(tmpDir(), { config: c, tensors: w2 }),
    /"model.layers.1.mlp.up_proj.weight" required by the config is missing/,
  );
  const dir3 = tmpDir();
  writeHfModel(dir3, { config: c, tensors: w2, validateLlama: false });
  assert.throws(() => openHfModel(dir3), /"model.layers.1.mlp.up_proj.weight" required by config.json is missing/);
  const w3 = new Map(w);
  w3.set('model.norm.weight', randTensor([31], rng(1)));
  const dir4 = tmpDir();
  writeHfModel(dir4, { config: c, tensors: w3, validateLlama: false });
  assert.throws(() => openHfModel(dir4), /"model.norm.weight" has shape \[31\], config.json implies \[32\]/);
  assert.throws(() => openHfModel(tmpDir()), /config.json: cannot read/);
});

function loraFor(c = tinyConfig(), layers = [0, 1], mods = ['q_proj', 'v_proj', 'down_proj'], r = 4): LoraTensors {
  const g = rng(11);
  const shapes = llamaTensorShapes(c);
  const t: LoraTensors = new Map();
  for (const l of layers)
    for (const m of mods) {
      const mp = `layers.${l}.${m.endsWith('proj') && ['gate_proj', 'up_proj', 'down_proj'].includes(m) ? 'mlp' : 'self_attn'}.${m}`;
      const [out, inp] = shapes.get(`model.${mp}.weight`)!;
      t.set(mp, { A: randTensor([r, inp!], g), B: randTensor([out!, r], g) });
    }
  return t;
}

test('PEFT adapter: round trip, PEFT key names and config fields', () => {
  const c = tinyConfig();
  const dir = tmpDir();
  const tensors = loraFor(c, [1]);
  const config = {
    r: 4,
    loraAlpha: 16,
    loraDropout: 0.05,
    targetModules: ['q_proj', 'v_proj', 'down_proj'],
    baseModelNameOrPath: 'tiny',
    layersToTransform: [1],
  };
  writePeftAdapter(dir, { config, tensors });
  const cfgJson = JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8'));
  assert.equal(cfgJson.peft_type, 'LORA');
  assert.equal(cfgJson.task_type, 'CAUSAL_LM');
  assert.equal(cfgJson.bias, 'none');
  assert.equal(cfgJson.fan_in_fan_out, false);
  assert.deepEqual(cfgJson.layers_to_transform, [1]);
  const back = readPeftAdapter(dir, { baseConfig: c });
  assert.deepEqual(back.config, config);
  assert.deepEqual(
    [...back.tensors.keys()],
    ['layers.1.self_attn.q_proj', 'layers.1.self_attn.v_proj', 'layers.1.mlp.down_proj'],
  );
  for (const [k, v] of tensors) {
    assert.deepEqual(back.tensors.get(k)!.A.data, v.A.data);
    assert.deepEqual(back.tensors.get(k)!.B.shape, v.B.shape);
  }
  const st = fs.readFileSync(path.join(dir, 'adapter_model.safetensors'));
  const header = st.subarray(8, 8 + Number(st.readBigUInt64LE(0))).toString();
  assert.match(
    header,
    /"base_model\.model\.model\.layers\.1\.self_attn\.q_proj\.lora_A\.weight":\{"dtype":"F32","shape":\[4,32\]/,
  );
  assert.match(
    header,
    /"base_model\.model\.model\.layers\.1\.mlp\.down_proj\.lora_B\.weight":\{"dtype":"F32","shape":\[32,4\]/,
  );
});

test('PEFT adapter: validation errors', () => {
  const c = tinyConfig();
  const config = {
    r: 4,
    loraAlpha: 8,
    loraDropout: 0,
    targetModules: ['q_proj', 'v_proj', 'down_proj'],
    baseModelNameOrPath: null,
  };
  assert.throws(
    () => writePeftAdapter(tmpDir(), { config: { ...config, targetModules: ['q_proj'] }, tensors: loraFor(c) }),
    /"v_proj" is not in target_modules/,
  );
  assert.throws(
    () =>
      writePeftAdapter(tmpDir(), {
        config: { ...config, targetModules: [...config.targetModules, 'k_proj'] },
        tensors: loraFor(c),
      }),
    /target module "k_proj" has no LoRA weights/,
  );
  assert.throws(
    () => writePeftAdapter(tmpDir(), { config: { ...config, r: 8 }, tensors: loraFor(c) }),
    /lora_A has shape \[4, 32\], expected \[r=8, in\]/,
  );
  assert.throws(
    () => writePeftAdapter(tmpDir(), { config: { ...config, layersToTransform: [0] }, tensors: loraFor(c) }),
    /layer 1 is not in layers_to_transform/,
  );
  const t = loraFor(c);
  t.set('layers.0.mlp.q_proj', t.get('layers.0.self_attn.q_proj')!);
  assert.throws(() => writePeftAdapter(tmpDir(), { config, tensors: t }), /"q_proj" is not a LLaMA mlp linear layer/);
  const dir = tmpDir();
  writePeftAdapter(dir, { config, tensors: loraFor(c) });
  assert.throws(
    () => readPeftAdapter(dir, { baseConfig: tinyConfig({ hiddenSize: 64, numAttentionHeads: 4 }) }),
    /LoRA maps 32 -> 32 but the base layer maps 64 -> 64/,
  );
  assert.throws(
    () => readPeftAdapter(dir, { baseConfig: tinyConfig({ numHiddenLayers: 1 }) }),
    /the base model has only 1 layers/,
  );
  const cfgPath = path.join(dir, 'adapter_config.json');
  const raw = JSON.parse(fs.readFileSync(cfgPath, 'utf8'));
  for (const [over, re] of [
    [{ peft_type: 'IA3' }, /peft_type/],
    [{ use_dora: true }, /DoRA/],
    [{ target_modules: '.*proj' }, /regular-expression/],
    [{ bias: 'all' }, /bias/],
    [{ r: 0 }, /"r"/],
  ] as const) {
    fs.writeFileSync(cfgPath, JSON.stringify({ ...raw, ...over }));
    assert.throws(() => readPeftAdapter(dir), re);
  }
  fs.writeFileSync(cfgPath, JSON.stringify(raw));
  fs.unlinkSync(path.join(dir, 'adapter_model.safetensors'));
  assert.throws(() => readPeftAdapter(dir), /adapter_model\.safetensors: missing/);
});
