/**
 * Independent check with llama.cpp (node-llama-cpp, optional): an exported GGUF of a
 * tiny random LLaMA with our own trained tokenizer loads, tokenizes like our
 * tokenizer, and gives the next-token distribution of a naive reference forward pass
 * over the HF-layout weights (which proves the q/k rotary permutation), also with a
 * LoRA adapter GGUF applied. Skips when node-llama-cpp is absent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { trainBpe, writeTrainedTokenizer } from '../../src/io/bpe-trainer.js';
import { writeLlamaGguf, writeLoraGguf } from '../../src/io/gguf-llama.js';
import { loadNodeLlamaCpp, openLlamaCpp } from '../../src/io/llama-cpp.js';
import { randTensor, randomLlama, rng, sotuTexts, tinyConfig, tmpDir } from './helpers.js';
import { mergeLora, refNextTokenProbs } from './ref-llama.js';
import { TOKENIZER_TEXTS } from './tokenizer-texts.js';

const mod = await loadNodeLlamaCpp();
const skip = mod
  ? false
  : 'node-llama-cpp is not installed (npm run setup:llama-cpp, or set FEDBIOT_NODE_LLAMA_CPP to its folder)';

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

test('llama.cpp loads our GGUF, tokenizes like us, and matches a reference forward pass (with and without LoRA)', {
  skip,
  timeout: 120_000,
}, async () => {
  const dir = tmpDir();
  const tok = writeTrainedTokenizer(path.join(dir, 'tok'), trainBpe(sotuTexts(300_000), { vocabSize: 600 }));
  const config = tinyConfig({
    vocabSize: tok.vocabSize,
    hiddenSize: 64,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    intermediateSize: 96,
    ropeTheta: 100,
  });
  const weights = randomLlama(config, 3);
  // larger q/k weights make attention (and so the rotary layout) matter
  for (const [n, t] of weights) if (/q_proj|k_proj/.test(n)) t.data.forEach((v, i) => (t.data[i] = v * 8));
  for (const [n, t] of weights) if (/lm_head/.test(n)) t.data.forEach((v, i) => (t.data[i] = v * 10));
  const gguf = path.join(dir, 'model.gguf');
  writeLlamaGguf(gguf, { config, tensors: weights, vocab: tok.toGgufVocab(), type: 'F32' });
  const prompt = tok.encode('The Congress of the United States shall have power');
  const s = await openLlamaCpp(gguf);
  assert.ok(s);
  try {
    for (const text of TOKENIZER_TEXTS) {
      if (!text) continue;
      assert.deepEqual(s.tokenize(text), tok.encode(text, { addSpecial: false }), `tokenize ${JSON.stringify(text)}`);
    }
    const probs = await s.nextTokenProbs(prompt);
    const ref = refNextTokenProbs(config, weights, prompt);
    const wrong = refNextTokenProbs(config, weights, prompt, true);
    // llama.cpp keeps its KV cache in f16, hence a tolerance near 1e-2 on probabilities
    const d = maxDiff(probs, ref);
    assert.ok(d < 1.5e-2, `llama.cpp vs reference: max |dp| = ${d}`);
    assert.ok(maxDiff(probs, wrong) > 10 * d, 'the wrong rotary layout should disagree clearly (negative control)');
  } finally {
    await s.dispose();
  }

  const r = rng(9);
  const lora = new Map([
    ['layers.0.self_attn.q_proj', { A: randTensor([4, 64], r, 0.5), B: randTensor([64, 4], r, 0.5) }],
    ['layers.1.self_attn.k_proj', { A: randTensor([4, 64], r, 0.5), B: randTensor([32, 4], r, 0.5) }],
    ['layers.1.mlp.down_proj', { A: randTensor([4, 96], r, 0.5), B: randTensor([64, 4], r, 0.5) }],
  ]);
  const loraPath = path.join(dir, 'lora.gguf');
  const loraCfg = {
    r: 4,
    loraAlpha: 8,
    loraDropout: 0,
    targetModules: ['q_proj', 'k_proj', 'down_proj'],
    baseModelNameOrPath: null,
  };
  writeLoraGguf(loraPath, { baseConfig: config, lora: loraCfg, tensors: lora });
  const s2 = await openLlamaCpp(gguf, { loraPath });
  assert.ok(s2);
  try {
    const p = await s2.nextTokenProbs(prompt);
    const ref = refNextTokenProbs(config, mergeLora(weights, lora, 8), prompt);
    const d = maxDiff(p, ref);
    assert.ok(d < 1.5e-2, `llama.cpp + LoRA vs reference: max |dp| = ${d}`);
    assert.ok(maxDiff(p, refNextTokenProbs(config, weights, prompt)) > 10 * d, 'the adapter should change the output');
  } finally {
    await s2.dispose();
  }
});
