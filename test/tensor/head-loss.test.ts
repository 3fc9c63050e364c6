// The chunked LM head + losses against the unchunked path (linear, then crossEntropy / klDivergence
// on the whole logits): values and the hidden states' gradient, in float64 and in float32 with f32
// and BF16 heads, for chunk sizes that do and do not divide the row count; and its peak memory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { alloc, peakTensorBytes, resetPeakTensorBytes, useReference64 } from '../../src/tensor/engine.js';
import { noGrad, tape, Tensor } from '../../src/tensor/tensor.js';
import { crossEntropy, klDivergence, linear, weightedSum, type Weight } from '../../src/tensor/ops.js';
import { FrozenWeight } from '../../src/tensor/frozen.js';
import { headLosses } from '../../src/tensor/head-loss.js';
import { LlamaModel } from '../../src/nn/llama.js';
import { makeConfig } from '../../src/nn/config.js';
import { fillNormal, mulberry32 } from '../../src/util/rng.js';

interface Case {
  N: number;
  D: number;
  V: number;
  seed: number;
}

function inputs(c: Case) {
  const r = mulberry32(c.seed);
  const hv = fillNormal(r, new Float32Array(c.N * c.D), 1);
  const wv = fillNormal(r, new Float32Array(c.V * c.D), 0.5);
  const tv = fillNormal(r, new Float32Array(c.N * c.D), 1);
  const targets = new Int32Array(c.N);
  for (let i = 0; i < c.N; i++) targets[i] = i % 4 === 1 ? -100 : Math.floor(r() * c.V);
  const rowWeight = new Float32Array(c.N).fill(1);
  for (let i = 0; i < c.N; i += 5) rowWeight[i] = 0;
  return { hv, wv, tv, targets, rowWeight };
}

/** Loss values and dh of lambda * KL + mu * CE, chunked or through the whole logits. */
function run(c: Case, chunkRows: number | null, headOf: (w: Tensor) => Weight = (w) => w) {
  const x = inputs(c);
  // engine arrays (Float64Array under useReference64)
  const A = (v: Float32Array) => {
    const a = alloc(v.length);
    a.set(v);
    return a;
  };
  const h = Tensor.param(A(x.hv), [c.N, c.D], 'h');
  const w = headOf(Tensor.param(A(x.wv), [c.V, c.D], 'lm_head.weight', false));
  const teacher = A(x.tv);
  const rowWeight = A(x.rowWeight);
  let ce: Tensor;
  let kl: Tensor;
  if (chunkRows === null) {
    const logits = linear(h, w);
    const tl = noGrad(() => linear(new Tensor(teacher, [c.N, c.D]), w).data);
    ce = crossEntropy(logits, x.targets);
    kl = klDivergence(tl, logits, { rowWeight });
  } else {
    const l = headLosses(h, w, {
      ce: { targets: x.targets },
      kl: { teacherHidden: teacher, rowWeight },
      chunkRows,
    });
    ce = l.ce!;
    kl = l.kl!;
  }
  tape.backward(
    weightedSum([
      [kl, 0.9],
      [ce, 0.3],
    ]),
  );
  const out = { ce: ce.item(), kl: kl.item(), dh: Float64Array.from(h.grad!) };
  tape.reset();
  return out;
}

function assertClose(got: ReturnType<typeof run>, want: ReturnType<typeof run>, rel: number, what: string) {
  assert.ok(Math.abs(got.ce - want.ce) <= rel * Math.abs(want.ce), `${what} ce ${got.ce} vs ${want.ce}`);
  assert.ok(Math.abs(got.kl - want.kl) <= rel * Math.abs(want.kl), `${what} kl ${got.kl} vs ${want.kl}`);
  let scale = 0;
  for (const v of want.dh) scale = Math.max(scale, Math.abs(v));
  assert.ok(scale > 0, 'dh is not all zero');
  for (let i = 0; i < want.dh.length; i++)
    assert.ok(Math.abs(got.dh[i]! - want.dh[i]!) <= rel * scale, `${what} dh[${i}] ${got.dh[i]} vs ${want.dh[i]}`);
}

test('chunked head losses equal the whole-logits path in float64 (chunks of 1, 3, 7 and all 23 rows)', () => {
  const restore = useReference64();
  try {
    const c = { N: 23, D: 6, V: 17, seed: 3 };
    const want = run(c, null);
    for (const rows of [1, 3, 7, 23, 100]) assertClose(run(c, rows), want, 1e-12, `chunk ${rows}`);
  } finally {
    restore();
  }
});

test('chunked head losses equal the whole-logits path in float32 (native kernels), f32 and BF16 heads', () => {
  const c = { N: 150, D: 48, V: 1000, seed: 5 };
  assertClose(run(c, 64), run(c, null), 1e-5, 'f32 head');
  const bf16 = (w: Tensor) => FrozenWeight.encode('bf16', w.data, [c.V, c.D], w.name);
  assertClose(run(c, 64, bf16), run(c, null, bf16), 1e-5, 'bf16 head');
});

test('chunked head losses: without a gradient wanted, only the values (no tape)', () => {
  const c = { N: 20, D: 8, V: 30, seed: 9 };
  const x = inputs(c);
  const h = new Tensor(Float32Array.from(x.hv), [c.N, c.D], { name: 'h' });
  const w = new Tensor(Float32Array.from(x.wv), [c.V, c.D], { name: 'w' });
  const l = noGrad(() => headLosses(h, w, { ce: { targets: x.targets }, chunkRows: 6 }));
  const want = noGrad(() => crossEntropy(linear(h, w), x.targets).item());
  assert.ok(Math.abs(l.ce!.item() - want) < 1e-6 * want);
  assert.equal(l.ce!.requiresGrad, false);
  assert.equal(l.kl, null);
  assert.equal(l.ce!.count, x.targets.filter((t) => t !== -100).length);
  tape.reset();
});

test('chunked head losses refuse bad input by name', () => {
  const h = Tensor.param(new Float32Array(12), [3, 4], 'h');
  const w = new Tensor(new Float32Array(20), [5, 4], { name: 'lm_head.weight' });
  assert.throws(() => headLosses(h, w, { ce: { targets: Int32Array.from([0, 1]) } }), /2 targets for 3 rows of 'h'/);
  assert.throws(() => headLosses(h, w, { ce: { targets: Int32Array.from([0, 5, 1]) } }), /target 5 at row 1/);
  assert.throws(
    () => headLosses(h, new Tensor(new Float32Array(15), [5, 3], { name: 'x' }), {}),
    /head 'x' \[5, 3\] does not fit/,
  );
  assert.throws(() => headLosses(h, w, { kl: { teacherHidden: new Float32Array(5) } }), /teacher hidden states have 5/);
  tape.reset();
});

test('chunked head losses: peak working memory is a few chunks, not the [N, V] logits', () => {
  const c = { N: 256, D: 32, V: 8000, seed: 11 };
  const logitsBytes = c.N * c.V * 4;
  resetPeakTensorBytes();
  run(c, 16);
  const chunked = peakTensorBytes();
  resetPeakTensorBytes();
  run(c, null);
  const whole = peakTensorBytes();
  assert.ok(whole >= 2 * logitsBytes, `whole-logits peak ${whole} B`);
  assert.ok(chunked < logitsBytes / 4, `chunked peak ${chunked} B against ${logitsBytes} B of logits`);
});

test('LlamaModel.headLosses: a trainable head takes the unchunked path and gets its gradient; values agree', () => {
  const cfg = makeConfig({
    vocabSize: 40,
    hiddenSize: 8,
    intermediateSize: 12,
    numLayers: 1,
    numHeads: 2,
    numKvHeads: 1,
  });
  const m = LlamaModel.random(cfg, 4, 0.3);
  const ids = Int32Array.from({ length: 10 }, (_, i) => (i * 7) % 40);
  const targets = Int32Array.from({ length: 10 }, (_, i) => (i < 9 ? ids[i + 1]! : -100));
  const teacher = noGrad(() => Float32Array.from(m.normed(m.runLayers(m.embed(ids, 1, 10), { B: 1, T: 10 })).data));
  const lossOf = () => {
    const h = m.runLayers(m.embed(ids, 1, 10), { B: 1, T: 10 });
    const l = m.headLosses(h, { ce: { targets }, kl: { teacherHidden: teacher } });
    return [l.ce!, l.kl!] as const;
  };
  const [ceFrozen, klFrozen] = lossOf();
  const frozen = [ceFrozen.item(), klFrozen.item()];
  tape.reset();
  const head = m.lmHead as Tensor;
  head.requiresGrad = true;
  try {
    const [ce, kl] = lossOf();
    assert.ok(Math.abs(ce.item() - frozen[0]!) < 1e-6 * frozen[0]!);
    assert.ok(Math.abs(kl.item() - frozen[1]!) < 1e-6);
    tape.backward(ce);
    assert.ok(
      head.grad?.some((v) => v !== 0),
      'the head has a gradient',
    );
  } finally {
    head.requiresGrad = false;
    head.dropGrad();
    tape.reset();
  }
});
