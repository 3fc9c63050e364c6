// The autodiff layer and the LLaMA model, checked in float64 against central finite differences.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useReference64, liveTensorBytes, peakTensorBytes, resetPeakTensorBytes } from '../../src/tensor/engine.js';
import { tape, Tensor } from '../../src/tensor/tensor.js';
import { checkGradients } from '../helpers/finite-diff.js';
import {
  matmul,
  linear,
  loraLinear,
  weightedSum,
  squaredDistance,
  cosineLoss,
  nmse,
  klDivergence,
} from '../../src/tensor/ops.js';
import { LlamaModel } from '../../src/nn/llama.js';
import { makeConfig } from '../../src/nn/config.js';
import { lmLoss, type TokenBatch } from '../../src/nn/lm.js';
import { mulberry32, fillNormal } from '../../src/util/rng.js';

function tinyModel(seed: number) {
  const cfg = makeConfig({
    vocabSize: 13,
    hiddenSize: 8,
    intermediateSize: 12,
    numLayers: 2,
    numHeads: 2,
    numKvHeads: 1,
  });
  const m = LlamaModel.random(cfg, seed, 0.3);
  m.attachLora(
    {
      r: 2,
      alpha: 4,
      dropout: 0,
      targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
    },
    seed + 1,
  );
  // Non-zero B so that every LoRA factor has a gradient.
  const r = mulberry32(seed + 2);
  for (const p of m.loraParams()) fillNormal(r, p.data, 0.3);
  return m;
}

function batch(): TokenBatch {
  const B = 2,
    T = 5;
  const ids = Int32Array.from([1, 4, 7, 2, 9, 3, 3, 8, 0, 0]);
  const labels = Int32Array.from([-100, -100, 7, 2, 9, -100, 3, 8, -100, -100]);
  const attention = Uint8Array.from([1, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
  return { B, T, ids, labels, attention };
}

test('LLaMA + LoRA: gradients of the LM loss equal finite differences (float64, GQA, padding, response-only labels)', () => {
  const restore = useReference64();
  try {
    const m = tinyModel(7);
    const params = m.loraParams();
    for (const p of params) p.requiresGrad = true;
    const b = batch();
    checkGradients(params, () => lmLoss(m, b));
    // The frozen base weights keep no gradient.
    assert.equal((m.layers[0]!.linears.q_proj.weight as Tensor).grad, null);
  } finally {
    restore();
  }
});

test('full-parameter gradients (norms, embedding, head) equal finite differences', () => {
  const restore = useReference64();
  try {
    const cfg = makeConfig({
      vocabSize: 11,
      hiddenSize: 4,
      intermediateSize: 6,
      numLayers: 1,
      numHeads: 2,
      numKvHeads: 2,
    });
    const m = LlamaModel.random(cfg, 3, 0.4);
    const params = [...m.baseTensors().values()];
    for (const p of params) p.requiresGrad = true;
    const r = mulberry32(5);
    for (const l of m.layers) {
      fillNormal(r, l.attnNorm.data, 1);
      fillNormal(r, l.mlpNorm.data, 1);
    }
    checkGradients(params, () => lmLoss(m, batch()), 2e-6);
  } finally {
    restore();
  }
});

test('composite losses (matmul transposes, KL, NMSE, cosine, proximal) have correct gradients', () => {
  const restore = useReference64();
  try {
    const r = mulberry32(11);
    const mk = (shape: number[], name: string) => {
      const t = Tensor.param(
        fillNormal(r, new Float64Array(shape.reduce((a, b) => a * b, 1)) as unknown as Float32Array, 1),
        shape,
        name,
      );
      return t;
    };
    const a = mk([2, 3, 4], 'a');
    const b = mk([2, 5, 4], 'b');
    const w = mk([6, 5], 'w');
    const teacher = fillNormal(r, new Float64Array(2 * 3 * 6) as unknown as Float32Array, 1);
    const anchor = fillNormal(r, new Float64Array(24) as unknown as Float32Array, 1);
    const rowW = Float64Array.from([1, 0, 1, 1, 0.5, 1]) as unknown as Float32Array;
    checkGradients([a, b, w], () => {
      const s = matmul(a, b, { transB: true }); // [2,3,5]
      const y = linear(s, w); // [2,3,6]
      const y2 = matmul(y, y, { transA: true }); // [2,6,6]
      return weightedSum([
        [klDivergence(teacher, y, { rowWeight: rowW }), 0.9],
        [nmse(y, teacher), 1],
        [cosineLoss(y, teacher), 0.5],
        [squaredDistance(a, anchor), 0.01],
        [nmse(y2, fillNormal(mulberry32(1), new Float64Array(72) as unknown as Float32Array, 1)), 0.3],
      ]);
    });
  } finally {
    restore();
  }
});

test('fused LoRA linear (with a dropout mask, trainable W, A, B and input) matches finite differences', () => {
  const restore = useReference64();
  try {
    const r = mulberry32(21);
    const mk = (shape: number[], name: string) =>
      Tensor.param(
        fillNormal(r, new Float64Array(shape.reduce((a, b) => a * b, 1)) as unknown as Float32Array, 1),
        shape,
        name,
      );
    const x = mk([2, 3, 5], 'x');
    const w = mk([4, 5], 'w');
    const a = mk([2, 5], 'A');
    const b = mk([4, 2], 'B');
    const mask = Float64Array.from({ length: 30 }, (_, i) => (i % 4 === 0 ? 0 : 1.25)) as unknown as Float32Array;
    const target = fillNormal(r, new Float64Array(24) as unknown as Float32Array, 1);
    checkGradients([x, w, a, b], () => nmse(loraLinear(x, w, a, b, 1.5, mask), target));
    checkGradients([x, a, b], () => nmse(loraLinear(x, w, a, b, 0.5, null), target));
  } finally {
    restore();
  }
});

test('bad calls name the op and the shapes; released intermediates cannot be used', () => {
  const x = Tensor.param(new Float32Array(6), [2, 3], 'x');
  const w = Tensor.param(new Float32Array(8), [2, 4], 'w');
  assert.throws(() => linear(x, w), /linear: input 'x' \[2, 3\] does not match weight 'w' \[2, 4\]/);
  const y = matmul(x, x, { transB: true });
  tape.reset();
  assert.throws(() => y.data, /used after it was released/);
  assert.throws(() => x.view([4, 2]).view([5]), /cannot view/);
});

test('a frozen prefix of layers frees its activations at once and gradients stay exact (float64)', () => {
  const restore = useReference64();
  try {
    const cfg = makeConfig({
      vocabSize: 13,
      hiddenSize: 8,
      intermediateSize: 12,
      numLayers: 4,
      numHeads: 2,
      numKvHeads: 1,
    });
    const m = LlamaModel.random(cfg, 21, 0.3);
    m.attachLora({ r: 2, alpha: 4, dropout: 0, targets: ['q_proj', 'v_proj', 'down_proj'] }, 22);
    const r = mulberry32(23);
    for (const p of m.loraParams()) fillNormal(r, p.data, 0.3);
    const b = batch();
    // FedBiOT: only the top layer trains, the three below run transiently.
    for (const p of m.loraParams()) p.requiresGrad = false;
    const top = m.loraParams([m.layers[3]!]);
    for (const p of top) p.requiresGrad = true;
    checkGradients(top, () => lmLoss(m, b));
    // FedOT: first and last train, the frozen middle still sits between trainable layers.
    const ends = m.loraParams([m.layers[0]!, m.layers[3]!]);
    for (const p of ends) p.requiresGrad = true;
    checkGradients(ends, () => lmLoss(m, b));
  } finally {
    restore();
  }
});

/** An 8-layer model and a full batch for the working-memory tests. */
function memoryModel(targets: ('q_proj' | 'v_proj' | 'down_proj')[]): { m: LlamaModel; b: TokenBatch } {
  const cfg = makeConfig({
    vocabSize: 64,
    hiddenSize: 32,
    intermediateSize: 64,
    numLayers: 8,
    numHeads: 4,
    numKvHeads: 2,
  });
  const m = LlamaModel.random(cfg, 5);
  m.attachLora({ r: 4, alpha: 8, dropout: 0, targets }, 6);
  const B = 2,
    T = 32;
  const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 7) % 64);
  return { m, b: { B, T, ids, labels: ids, attention: new Uint8Array(B * T).fill(1) } };
}

/** Peak pooled bytes of one training step (loss, backward), and its loss. */
function stepPeak(m: LlamaModel, b: TokenBatch, recompute = false): { peak: number; loss: number } {
  const live0 = liveTensorBytes();
  resetPeakTensorBytes();
  const loss = lmLoss(m, b, { recompute });
  tape.backward(loss);
  const out = { peak: peakTensorBytes() - live0, loss: loss.item() };
  tape.reset();
  for (const p of m.loraParams()) p.dropGrad();
  return out;
}

test('working memory: training only the top layer holds far fewer activations than training all', () => {
  const { m, b } = memoryModel(['q_proj', 'v_proj']);
  const measure = (trainable: number[]) => {
    for (const [i, l] of m.layers.entries()) for (const p of l.loraParams()) p.requiresGrad = trainable.includes(i);
    return stepPeak(m, b);
  };
  const all = measure([0, 1, 2, 3, 4, 5, 6, 7]);
  const top = measure([7]);
  assert.equal(top.loss, all.loss, 'freeing activations must not change the forward');
  assert.ok(top.peak < 0.45 * all.peak, `top-only ${top.peak} B vs all ${all.peak} B`);
  assert.equal(liveTensorBytes(), 0, 'every pooled array went back after tape.reset()');
});

test('activation checkpointing: gradients equal finite differences (float64) and the unrecomputed ones bit for bit, LoRA dropout replayed', () => {
  const restore = useReference64();
  try {
    const m = tinyModel(31);
    const params = m.loraParams();
    for (const p of params) p.requiresGrad = true;
    const b = batch();
    checkGradients(params, () => lmLoss(m, b, { recompute: true }));
    // Only the top layer trains (FedBiOT's client): the frozen layer below runs transiently.
    for (const p of m.loraParams([m.layers[0]!])) p.requiresGrad = false;
    checkGradients(m.loraParams([m.layers[1]!]), () => lmLoss(m, b, { recompute: true }));
  } finally {
    restore();
  }
  // float32, LoRA dropout on: the same masks in both runs (one seeding draw each, replayed).
  const m = tinyModel(32);
  for (const l of m.layers) for (const n of ['q_proj', 'v_proj', 'down_proj'] as const) l.linears[n].loraDropout = 0.3;
  const params = m.loraParams();
  for (const p of params) p.requiresGrad = true;
  const b = batch();
  const grads = (recompute: boolean): { loss: number; g: Float32Array[] } => {
    for (const l of m.layers) l.setLoraDropout(mulberry32(99));
    const loss = lmLoss(m, b, { recompute });
    tape.backward(loss);
    const out = { loss: loss.item(), g: params.map((p) => Float32Array.from(p.grad!)) };
    tape.reset();
    for (const p of params) p.dropGrad();
    return out;
  };
  const plain = grads(false);
  const again = grads(true);
  assert.equal(again.loss, plain.loss);
  params.forEach((p, i) => assert.deepEqual(again.g[i], plain.g[i], `${p.name}: recomputed gradient differs`));
  assert.equal(liveTensorBytes(), 0, 'every pooled array went back after tape.reset()');
});

test('working memory: activation checkpointing holds one trained layer at a time', () => {
  const { m, b } = memoryModel(['q_proj', 'v_proj', 'down_proj']);
  for (const p of m.loraParams()) p.requiresGrad = true;
  const plain = stepPeak(m, b).peak;
  const recomputed = stepPeak(m, b, true).peak;
  assert.ok(recomputed < 0.4 * plain, `recomputed ${recomputed} B vs ${plain} B`);
});
