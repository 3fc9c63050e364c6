// FedBiOT's pieces: the layer maps, the alignment loss and its gradients, the proximal term, FedAvg.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planSplit, uniformDropIndices, makeManifest } from '../../src/fedbiot/split.js';
import { buildSplit, setTrainable } from '../../src/fedbiot/compress.js';
import { alignmentLoss } from '../../src/fedbiot/align.js';
import { localObjective, localTrain } from '../../src/fedbiot/local.js';
import { fedAvg } from '../../src/fedbiot/aggregate.js';
import { captureLora } from '../../src/fedbiot/lora-state.js';
import { ClientAlgorithm } from '../../src/fedbiot/algorithms.js';
import { useReference64 } from '../../src/tensor/engine.js';
import { tape, noGrad } from '../../src/tensor/tensor.js';
import { checkGradients } from '../helpers/finite-diff.js';
import { LlamaModel } from '../../src/nn/llama.js';
import { makeConfig } from '../../src/nn/config.js';
import { sliceRows, type TokenBatch } from '../../src/nn/lm.js';
import { mulberry32, fillNormal } from '../../src/util/rng.js';

test('layer maps for L = 32 follow the spec formula', () => {
  // a = 2, beta = 0.2: block of 30 layers keeps 24, first and last always kept.
  const p = planSplit(32, { kind: 'last', last: 2 }, 0.2);
  assert.deepEqual(p.adapterTop, [30, 31]);
  assert.deepEqual(p.adapterBottom, []);
  assert.equal(p.block.length, 30);
  assert.equal(p.emulator.length, 24);
  assert.deepEqual(
    p.emulator,
    Array.from({ length: 24 }, (_, i) => Math.floor((i * 29) / 23)),
  );
  assert.equal(p.emulator[0], 0);
  assert.equal(p.emulator[23], 29);
  // beta = 0.5: 15 of 30.
  const h = planSplit(32, { kind: 'last', last: 2 }, 0.5);
  assert.deepEqual(
    h.emulator,
    [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 29].map((_, i) => Math.floor((i * 29) / 14)),
  );
  assert.equal(h.emulator.length, 15);
  // Offsite-Tuning 2 + 2, beta 0.5: block 2..29 (28 layers) keeps 14.
  const o = planSplit(32, { kind: 'first-last', first: 2, last: 2 }, 0.5);
  assert.deepEqual(o.adapterBottom, [0, 1]);
  assert.deepEqual(o.adapterTop, [30, 31]);
  assert.deepEqual(
    o.emulator,
    Array.from({ length: 14 }, (_, i) => 2 + Math.floor((i * 27) / 13)),
  );
  assert.deepEqual(uniformDropIndices(5, 0), [0, 1, 2, 3, 4]);
  assert.throws(() => planSplit(4, { kind: 'last', last: 4 }, 0.2), /at least one/);
  const m = makeManifest(p, { kind: 'last', last: 2 }, 'abc');
  assert.equal(m.layers.length, 26);
  assert.deepEqual(m.layers[25], { index: 25, role: 'adapter', source: 31 });
});

function tinySplit(seed: number) {
  const cfg = makeConfig({
    vocabSize: 11,
    hiddenSize: 8,
    intermediateSize: 10,
    numLayers: 5,
    numHeads: 2,
    numKvHeads: 1,
  });
  const base = LlamaModel.random(cfg, seed, 0.4);
  const lora = {
    r: 2,
    alpha: 4,
    dropout: 0,
    targets: ['q_proj', 'v_proj', 'down_proj'] as ('q_proj' | 'v_proj' | 'down_proj')[],
  };
  const s = buildSplit(base, { kind: 'last', last: 1 }, 0.5, { adapter: lora, emulator: lora }, seed);
  const r = mulberry32(seed + 9);
  for (const l of [...s.emulator, ...s.adapterTop]) for (const p of l.loraParams()) fillNormal(r, p.data, 0.3);
  return s;
}

const batch: TokenBatch = {
  B: 2,
  T: 4,
  ids: Int32Array.from([1, 5, 3, 7, 2, 9, 4, 0]),
  labels: Int32Array.from([-100, 5, 3, 7, -100, 9, -100, -100]),
  attention: Uint8Array.from([1, 1, 1, 1, 1, 1, 0, 0]),
};

for (const hiddenLoss of ['nmse', 'layerwise-nmse', 'cosine'] as const) {
  test(`alignment loss (${hiddenLoss} + KL + CE) and its emulator-LoRA gradients match float64 finite differences`, () => {
    const restore = useReference64();
    try {
      const s = tinySplit(3);
      setTrainable(s, 'emulator');
      const params = s.emulator.flatMap((l) => l.loraParams());
      checkGradients(params, () => alignmentLoss(s, batch, { hiddenLoss, lambda: 0.9, mu: 0.3 }).tensor);
      // The adapter stays frozen during alignment.
      for (const p of s.adapterTop.flatMap((l) => l.loraParams())) assert.equal(p.grad, null);
    } finally {
      restore();
    }
  });
}

test('alignment loss equals an independent float64 computation (NMSE at the emulator output, KL on real tokens)', () => {
  const restore = useReference64();
  try {
    const s = tinySplit(4);
    const v = noGrad(() => alignmentLoss(s, batch, { hiddenLoss: 'nmse', lambda: 0.9, mu: 0 }).values);
    tape.reset();
    // Recompute from whole-model forwards: teacher = full model, student = compressed model.
    const ctx = { B: 2, T: 4, keyMask: Float32Array.from([0, 0, 0, 0, 0, 0, -Infinity, -Infinity]) };
    const { hT, hS, lT, lS } = noGrad(() => {
      const e = s.full.embed(batch.ids, 2, 4);
      const hT = Array.from(s.full.runLayers(e, ctx, s.block).data);
      const hS = Array.from(s.full.runLayers(e, ctx, s.emulator).data);
      const lT = Array.from(s.full.forward(batch.ids, ctx).data);
      const lS = Array.from(s.compressed.forward(batch.ids, ctx).data);
      return { hT, hS, lT, lS };
    });
    tape.reset();
    const D = 8,
      V = 11;
    let num = 0,
      den = 0;
    for (let i = 0; i < 8; i++) {
      if (!batch.attention[i]) continue;
      for (let d = 0; d < D; d++) {
        num += (hT[i * D + d]! - hS[i * D + d]!) ** 2;
        den += hT[i * D + d]! ** 2;
      }
    }
    let kl = 0,
      rowsKept = 0;
    const lsm = (x: number[], o: number) => {
      const m = Math.max(...x.slice(o, o + V));
      const z = Math.log(x.slice(o, o + V).reduce((a, b) => a + Math.exp(b - m), 0)) + m;
      return x.slice(o, o + V).map((y) => y - z);
    };
    for (let i = 0; i < 8; i++) {
      if (!batch.attention[i]) continue;
      const lt = lsm(lT, i * V),
        ls = lsm(lS, i * V);
      for (let j = 0; j < V; j++) kl += Math.exp(lt[j]!) * (lt[j]! - ls[j]!);
      rowsKept++;
    }
    kl /= rowsKept;
    assert.ok(Math.abs(v.hidden - num / den) < 1e-12, `nmse ${v.hidden} vs ${num / den}`);
    assert.ok(Math.abs(v.kl - kl) < 1e-12, `kl ${v.kl} vs ${kl}`);
    assert.ok(Math.abs(v.loss - (num / den + 0.9 * kl)) < 1e-12);
  } finally {
    restore();
  }
});

test('the proximal term carries the gradient 2 * epsilon * (A - A(t)) and changes the update', () => {
  const restore = useReference64();
  try {
    const s = tinySplit(5);
    setTrainable(s, 'adapter');
    const params = s.adapterTop.flatMap((l) => l.loraParams());
    const anchors = params.map((p) => Float64Array.from(p.data) as unknown as Float32Array);
    // Move away from the anchor so the term is active.
    params.forEach((p) => {
      for (let i = 0; i < p.size; i++) p.data[i]! += 0.05 * ((i % 3) - 1);
    });
    const grads = (eps: number) => {
      for (const p of params) p.zeroGrad();
      tape.backward(localObjective(s.compressed, params, anchors, batch, eps).loss);
      tape.reset();
      return params.map((p) => Array.from(p.grad!));
    };
    const g0 = grads(0);
    const g1 = grads(0.5);
    params.forEach((p, pi) => {
      for (let i = 0; i < p.size; i++) {
        const expected = 2 * 0.5 * (p.data[i]! - anchors[pi]![i]!);
        assert.ok(Math.abs(g1[pi]![i]! - g0[pi]![i]! - expected) < 1e-10);
      }
    });
    assert.ok(
      g1.some((g, pi) => g.some((x, i) => x !== g0[pi]![i])),
      'proximal gradient must be non-zero',
    );
    checkGradients(params, () => localObjective(s.compressed, params, anchors, batch, 0.5).loss);
  } finally {
    restore();
  }
});

test("micro-batches (and activation checkpointing) train to the whole batch's parameters (float64)", () => {
  const restore = useReference64();
  try {
    // Three rows of different lengths: micro-batches of 1 and 2 rows, weighted by their loss tokens.
    const b3: TokenBatch = {
      B: 3,
      T: 5,
      ids: Int32Array.from([1, 5, 3, 7, 2, 9, 4, 0, 0, 0, 6, 8, 1, 3, 0]),
      labels: Int32Array.from([-100, 5, 3, 7, 2, -100, 4, -100, -100, -100, -100, -100, 1, 3, -100]),
      attention: Uint8Array.from([1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 0]),
    };
    const part = sliceRows(b3, 1, 3);
    assert.equal(part.T, 4, 'the columns that are padding in every sliced row are dropped');
    assert.deepEqual(Array.from(part.ids), [9, 4, 0, 0, 6, 8, 1, 3]);
    const train = (microBatch: number | undefined, recompute: boolean, proximal: number) => {
      const s = tinySplit(11);
      setTrainable(s, 'adapter');
      const params = s.adapterTop.flatMap((l) => l.loraParams());
      const r = localTrain(s.compressed, params, () => b3, {
        steps: 2,
        optimizer: { kind: 'sgd', lr: 0.5 },
        gradAccum: 1,
        proximal,
        microBatch,
        recompute,
      });
      return { losses: r.losses, tokens: r.tokens, params: params.map((p) => Array.from(p.data)) };
    };
    for (const proximal of [0, 0.5]) {
      const whole = train(undefined, false, proximal);
      for (const [mb, rc] of [
        [1, false],
        [2, true],
        [1, true],
      ] as const) {
        const split = train(mb, rc, proximal);
        assert.equal(split.tokens, whole.tokens);
        split.losses.forEach((l, i) =>
          assert.ok(Math.abs(l - whole.losses[i]!) < 1e-12, `loss ${l} vs ${whole.losses[i]}`),
        );
        split.params.forEach((p, i) =>
          p.forEach((x, j) =>
            assert.ok(Math.abs(x - whole.params[i]![j]!) < 1e-12, `micro-batch ${mb} param ${i}[${j}]`),
          ),
        );
      }
      assert.ok(whole.losses[1]! < whole.losses[0]!, 'the steps train');
    }
  } finally {
    restore();
  }
});

test('FedAvg: exact weighted mean; clients without a report are excluded, not averaged as zeros', () => {
  const st = (v: number[]) => new Map([['x.lora_A.weight', { shape: [v.length], data: Float32Array.from(v) }]]);
  const avg = fedAvg([
    { client: 'a', samples: 1, state: st([1, 2]) },
    { client: 'b', samples: 3, state: st([5, 6]) },
    { client: 'c', samples: 0, state: st([100, 100]) },
  ]);
  assert.deepEqual(Array.from(avg.get('x.lora_A.weight')!.data), [4, 5]);
  assert.throws(() => fedAvg([]), /no client/);
  assert.throws(
    () =>
      fedAvg([
        { client: 'a', samples: 1, state: st([1]) },
        { client: 'b', samples: 1, state: st([1, 2]) },
      ]),
    /client 'b'/,
  );
});

test('the adapter is shared: what clients train on the compressed model is what the full model uses', () => {
  const s = tinySplit(6);
  const a = captureLora(s.adapterTop);
  assert.ok(a.size > 0);
  assert.equal(s.full.layers[s.full.layers.length - 1], s.compressed.layers[s.compressed.layers.length - 1]);
  // The emulator's kept layers share base weights but not LoRA with the originals.
  assert.equal(s.emulator[0]!.linears.q_proj.weight, s.block[0]!.linears.q_proj.weight);
  assert.equal(s.block[0]!.linears.q_proj.lora, null);
  assert.notEqual(s.emulator[0]!.linears.q_proj.lora, null);
});

test('LoRA dropout from the config is applied in local training, seeded, and off again for evaluation', () => {
  const cfg = makeConfig({
    vocabSize: 11,
    hiddenSize: 8,
    intermediateSize: 10,
    numLayers: 5,
    numHeads: 2,
    numKvHeads: 1,
  });
  const run = (dropout: number, seed: number) => {
    const base = LlamaModel.random(cfg, 4, 0.4);
    const lora = {
      r: 2,
      alpha: 4,
      dropout,
      targets: ['q_proj', 'v_proj', 'down_proj'] as ('q_proj' | 'v_proj' | 'down_proj')[],
    };
    const s = buildSplit(base, { kind: 'last', last: 1 }, 0.5, { adapter: lora, emulator: lora }, 4);
    const client = new ClientAlgorithm(s.compressed, s.adapterTop, s.emulator, {
      steps: 3,
      gradAccum: 1,
      proximal: 0,
      optimizer: { kind: 'sgd', lr: 0.5 },
    });
    const res = client.train(() => batch, undefined, seed);
    for (const l of s.adapterTop)
      for (const lin of Object.values(l.linears))
        assert.equal(lin.dropoutRandom, null, 'dropout must be off after training');
    return Array.from(res.state.values()).flatMap((t) => Array.from(t.data));
  };
  const plain = run(0, 1);
  assert.deepEqual(run(0, 2), plain, 'without dropout the seed plays no part');
  const d1 = run(0.5, 1);
  assert.notDeepEqual(d1, plain, 'dropout 0.5 must change the update');
  assert.deepEqual(run(0.5, 1), d1, 'the same seed gives the same masks');
  assert.notDeepEqual(run(0.5, 2), d1, 'another seed gives other masks');
});
