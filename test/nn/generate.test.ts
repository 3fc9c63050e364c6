// Batched greedy decoding (left-padded rows, one KV cache) gives the same tokens as decoding each
// prompt alone, and the cache-free forward agrees with the cached one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LlamaModel } from '../../src/nn/llama.js';
import { makeConfig } from '../../src/nn/config.js';
import { generate, generateGreedyBatch, sampleLogits } from '../../src/nn/generate.js';
import { mulberry32 } from '../../src/util/rng.js';

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

/** sampleLogits as a plain definition: a stable comparator sort of every index by logit, descending. */
function sampleBySortingIndices(
  logits: ArrayLike<number>,
  o: { temperature: number; topK?: number; topP?: number },
  rand: () => number,
): number {
  const V = logits.length;
  const idx = Array.from({ length: V }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]!);
  const k = o.topK && o.topK > 0 ? Math.min(o.topK, V) : V;
  const top = idx.slice(0, k);
  const maxL = logits[top[0]!]!;
  let probs = top.map((i) => Math.exp((logits[i]! - maxL) / o.temperature));
  let s = probs.reduce((a, b) => a + b, 0);
  probs = probs.map((p) => p / s);
  let keep = top.length;
  if (o.topP !== undefined && o.topP < 1) {
    let c = 0;
    for (let i = 0; i < probs.length; i++) {
      c += probs[i]!;
      if (c >= o.topP) {
        keep = i + 1;
        break;
      }
    }
  }
  s = probs.slice(0, keep).reduce((a, b) => a + b, 0);
  let r = rand() * s;
  for (let i = 0; i < keep; i++) {
    r -= probs[i]!;
    if (r <= 0) return top[i]!;
  }
  return top[keep - 1]!;
}

test('sampleLogits draws exactly what sorting every index would (ties, top-k, top-p, temperature)', () => {
  const gen = mulberry32(21);
  for (const V of [1, 2, 7, 300, 5000])
    for (const o of [
      { temperature: 1 },
      { temperature: 0.7, topK: 5 },
      { temperature: 1.3, topP: 0.9 },
      { temperature: 0.5, topK: 40, topP: 0.5 },
      { temperature: 2, topK: V + 3, topP: 0.999 },
    ])
      for (const ties of [false, true]) {
        // with ties: values on a coarse grid, so many logits are equal (and -Infinity for some)
        const logits = Float32Array.from({ length: V }, () => {
          const x = (gen() - 0.5) * 8;
          return ties ? (gen() < 0.05 ? -Infinity : Math.round(x)) : x;
        });
        logits[0] = ties ? 4 : logits[0]!;
        const a = mulberry32(V * 7 + (ties ? 1 : 0)),
          b = mulberry32(V * 7 + (ties ? 1 : 0));
        for (let draw = 0; draw < 50; draw++)
          assert.equal(sampleLogits(logits, o, a), sampleBySortingIndices(logits, o, b), `V ${V} ${JSON.stringify(o)}`);
      }
});
