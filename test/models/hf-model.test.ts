/**
 * Engine-level checks of the model formats: Hugging Face folders (single file, shards, BF16, tied
 * embeddings), KV-cache decoding against the full forward pass, greedy generation, and PEFT
 * adapters (export / re-import / merge).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadHfModel, saveAdapterAsPeft } from '../../src/models/hf-model.js';
import { attachPeftAdapter, mergeAllLora, unmergeAllLora, loadModelWithAdapter } from '../../src/models/adapter.js';
import { captureLora } from '../../src/fedbiot/lora-state.js';
import { quantize } from '../../src/io/dtype.js';
import { KVCache } from '../../src/nn/llama.js';
import { generate, argmax } from '../../src/nn/generate.js';
import { noGrad, tape } from '../../src/tensor/tensor.js';
import {
  logitsOf,
  maxAbs,
  maxAbsDiff,
  randomizeLoraB,
  saveFixtureFolder,
  tinyModel,
  tinyTokenizer,
  tmpDir,
} from './fixture.js';

const prompt = () => tinyTokenizer().tok.encode('We the people of the United States, in order to form');

test('HF folder round trip (F32, one file): identical weights and logits', () => {
  const m = tinyModel(1);
  const dir = saveFixtureFolder(m);
  assert.ok(fs.existsSync(path.join(dir, 'model.safetensors')));
  const back = loadHfModel(dir);
  assert.deepEqual({ ...back.config, padTokenId: null }, { ...m.config, padTokenId: null });
  for (const [name, t] of m.baseTensors())
    assert.equal(maxAbsDiff(back.baseTensors().get(name)!.data, t.data), 0, name);
  assert.equal(maxAbsDiff(logitsOf(back, prompt()), logitsOf(m, prompt())), 0);
});

test('HF folder round trip, sharded by maxShardBytes: index + shards, same logits', () => {
  const m = tinyModel(2);
  const dir = saveFixtureFolder(m, tmpDir(), { maxShardBytes: 20_000 });
  const shards = fs.readdirSync(dir).filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
  assert.ok(shards.length >= 3, `expected several shards, got ${shards.length}`);
  assert.ok(fs.existsSync(path.join(dir, 'model.safetensors.index.json')));
  assert.ok(!fs.existsSync(path.join(dir, 'model.safetensors')));
  assert.equal(maxAbsDiff(logitsOf(loadHfModel(dir), prompt()), logitsOf(m, prompt())), 0);
});

test('HF folder in BF16: logits equal those of the BF16-rounded weights', () => {
  const m = tinyModel(3);
  const dir = saveFixtureFolder(m, tmpDir(), { dtype: 'BF16' });
  assert.equal(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).torch_dtype, 'bfloat16');
  const back = loadHfModel(dir);
  const rounded = tinyModel(3);
  for (const t of rounded.baseTensors().values()) t.data.set(quantize('BF16', t.data));
  const full = logitsOf(m, prompt());
  // bit-exact: loading decodes exactly the rounded values, and the forward pass is deterministic
  assert.equal(maxAbsDiff(logitsOf(back, prompt()), logitsOf(rounded, prompt())), 0);
  // and rounding did change something (the check is not vacuous)
  assert.ok(maxAbsDiff(logitsOf(back, prompt()), full) > 0);
});

test('tied embeddings: no lm_head.weight written, head shares the embedding after loading', () => {
  const m = tinyModel(4, { tieWordEmbeddings: true });
  const dir = saveFixtureFolder(m);
  const idx = JSON.parse(
    fs
      .readFileSync(path.join(dir, 'model.safetensors'))
      .subarray(8, 8 + Number(fs.readFileSync(path.join(dir, 'model.safetensors')).readBigUInt64LE(0)))
      .toString('utf8'),
  );
  assert.ok(!('lm_head.weight' in idx));
  assert.equal(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).tie_word_embeddings, true);
  const back = loadHfModel(dir);
  assert.equal(back.lmHead, back.embedTokens);
  assert.equal(maxAbsDiff(logitsOf(back, prompt()), logitsOf(m, prompt())), 0);
});

test('KV-cache decoding equals the full forward pass at every position (tolerance 1e-5 abs)', () => {
  const m = tinyModel(5);
  const ids = prompt();
  const V = m.config.vocabSize;
  const full = logitsOf(m, ids);
  // first a 5-token chunk, then one token at a time (prefill + decode, as generate does)
  const cache = new KVCache(m.layers.length, ids.length, m.config.numKvHeads * m.config.headDim);
  const got = new Float32Array(full.length);
  noGrad(() => {
    const first = m.forward(Int32Array.from(ids.slice(0, 5)), { B: 1, T: 5, cache });
    got.set(first.data.subarray(0, 5 * V), 0);
    for (let i = 5; i < ids.length; i++) {
      const l = m.forward(Int32Array.from([ids[i]!]), { B: 1, T: 1, cache });
      got.set(l.data.subarray(0, V), i * V);
    }
  });
  tape.reset();
  const d = maxAbsDiff(got, full);
  assert.ok(d < 1e-5 * Math.max(1, maxAbs(full)), `max |dlogit| = ${d}`);
});

test('greedy generation is deterministic and equals argmax over full forward passes', () => {
  const m = tinyModel(6);
  const ids = prompt();
  const a = generate(m, ids, { maxNewTokens: 20, greedy: true, stopIds: [] });
  const b = generate(m, ids, { maxNewTokens: 20, greedy: true, stopIds: [] });
  assert.deepEqual(a, b);
  assert.equal(a.length, 20);
  const seq = [...ids];
  const V = m.config.vocabSize;
  for (let i = 0; i < 20; i++) {
    const l = logitsOf(m, seq);
    seq.push(argmax(l.subarray((seq.length - 1) * V)));
  }
  assert.deepEqual(a, seq.slice(ids.length));
  // sampling with a seed is reproducible too
  const s1 = generate(m, ids, { maxNewTokens: 12, temperature: 0.9, topP: 0.9, topK: 50, seed: 7, stopIds: [] });
  const s2 = generate(m, ids, { maxNewTokens: 12, temperature: 0.9, topP: 0.9, topK: 50, seed: 7, stopIds: [] });
  assert.deepEqual(s1, s2);
});

test('PEFT round trip: export, re-import onto a fresh copy gives the same logits; merge matches unmerged (1e-4 rel)', () => {
  const m = tinyModel(7);
  const modelDir = saveFixtureFolder(m);
  m.attachLora({ r: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'k_proj', 'v_proj', 'down_proj'] }, 11, [
    m.layers[1]!,
  ]);
  m.attachLora({ r: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'k_proj', 'v_proj', 'down_proj'] }, 12, [
    m.layers[0]!,
  ]);
  randomizeLoraB(m, 13);
  const ids = prompt();
  const withLora = logitsOf(m, ids);
  assert.ok(maxAbsDiff(withLora, logitsOf(loadHfModel(modelDir), ids)) > 1e-2, 'the adapter should change the logits');
  const adDir = tmpDir();
  saveAdapterAsPeft(captureLora(m.layers), adDir, { r: 4, alpha: 8, dropout: 0, baseModel: modelDir });
  const cfg = JSON.parse(fs.readFileSync(path.join(adDir, 'adapter_config.json'), 'utf8'));
  assert.deepEqual(cfg.target_modules, ['down_proj', 'k_proj', 'q_proj', 'v_proj']);
  assert.deepEqual(cfg.layers_to_transform, [0, 1]);

  const fresh = loadHfModel(modelDir);
  const a = attachPeftAdapter(fresh, adDir);
  assert.equal(a.r, 4);
  assert.equal(a.alpha, 8);
  assert.equal(maxAbsDiff(logitsOf(fresh, ids), withLora), 0);

  mergeAllLora(fresh);
  const merged = logitsOf(fresh, ids);
  const scale = maxAbs(withLora);
  const d = maxAbsDiff(merged, withLora);
  assert.ok(d < 1e-4 * scale, `merged vs unmerged: max |dlogit| ${d} (scale ${scale})`);
  unmergeAllLora(fresh);
  assert.ok(maxAbsDiff(logitsOf(fresh, ids), withLora) < 1e-4 * scale);
});

test('adapters that do not fit the model are refused with the file and module named', () => {
  const m = tinyModel(8);
  m.attachLora({ r: 2, alpha: 4, dropout: 0, targets: ['q_proj'] }, 1);
  const adDir = tmpDir();
  saveAdapterAsPeft(captureLora(m.layers), adDir, { r: 2, alpha: 4, dropout: 0, baseModel: null });
  const wider = saveFixtureFolder(tinyModel(9, { hiddenSize: 48, numHeads: 4, numKvHeads: 2 }));
  assert.throws(
    () => loadModelWithAdapter(wider, adDir),
    (e: Error) =>
      e.message.includes('--adapter') &&
      e.message.includes('adapter_model.safetensors') &&
      /q_proj/.test(e.message) &&
      /32 -> 32/.test(e.message),
  );
  const shallow = saveFixtureFolder(tinyModel(9, { numLayers: 1 }));
  assert.throws(() => loadModelWithAdapter(shallow, adDir), /layers\.1\.self_attn\.q_proj.*only 1 layers/);
  assert.throws(() => loadModelWithAdapter(path.join(adDir, 'nope')), /--model .*nope: folder does not exist/);
  assert.throws(() => loadModelWithAdapter(wider, path.join(adDir, 'nope')), /--adapter .*nope.*does not exist/);
  assert.throws(() => loadModelWithAdapter(wider, wider), /adapter_config\.json is missing/);
});
