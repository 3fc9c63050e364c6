// Each method as its authors defined it: the reference's layer-drop index rule, every method's own
// alignment loss (values and gradients), the proximal defaults, and the paper preset checked value by
// value against the table in docs/algorithm.md.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { planSplit, uniformDropIndices, roundHalfEven } from '../../src/fedbiot/split.js';
import { buildSplit, setTrainable } from '../../src/fedbiot/compress.js';
import { alignmentLoss } from '../../src/fedbiot/align.js';
import { describeAlignLoss, OBJECTIVES } from '../../src/fedbiot/objectives.js';
import { loadConfig } from '../../src/config/load.js';
import { methodAsRun, settingsFromConfig } from '../../src/fl/simulation.js';
import { useReference64 } from '../../src/tensor/engine.js';
import { tape, noGrad } from '../../src/tensor/tensor.js';
import { checkGradients } from '../helpers/finite-diff.js';
import { LlamaModel } from '../../src/nn/llama.js';
import { makeConfig } from '../../src/nn/config.js';
import type { TokenBatch } from '../../src/nn/lm.js';
import { mulberry32, fillNormal } from '../../src/util/rng.js';
import { TINY_RUN } from '../helpers/tiny-run.js';

const root = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));

test('layer drop, reference rule: n = 9 at beta 0.5 keeps [0, 2, 5, 8]; the spec rule keeps [0, 2, 4, 6, 8]', () => {
  assert.deepEqual(uniformDropIndices(9, 0.5), [0, 2, 5, 8]);
  assert.deepEqual(uniformDropIndices(9, 0.5, 'reference'), [0, 2, 5, 8]);
  assert.deepEqual(uniformDropIndices(9, 0.5, 'spec'), [0, 2, 4, 6, 8]);
  // The plan uses the reference rule unless told otherwise, inside the block (here layers 0..8).
  assert.deepEqual(planSplit(10, { kind: 'last', last: 1 }, 0.5).emulator, [0, 2, 5, 8]);
  assert.deepEqual(planSplit(10, { kind: 'last', last: 1 }, 0.5, 'spec').emulator, [0, 2, 4, 6, 8]);
  assert.deepEqual(planSplit(13, { kind: 'first-last', first: 2, last: 2 }, 0.5).emulator, [2, 4, 7, 10]);
  // Python's round: halves to the even neighbour.
  assert.deepEqual([0.5, 1.5, 2.5, 3.5, 4.5, 2.4999, 2.5001].map(roundHalfEven), [0, 2, 2, 4, 4, 2, 3]);
  assert.throws(() => uniformDropIndices(9, 0.5, 'python' as 'spec'), /rule must be one of spec, reference/);
});

test('layer drop, reference rule: equal to the reference formula computed in Python for all 790 (n, beta) cases', () => {
  const fixture = JSON.parse(fs.readFileSync(root('test/fixtures/layer-drop/reference.json'), 'utf8')) as {
    cases: { n: number; beta: number; kept: number[] | null }[];
  };
  assert.equal(fixture.cases.length, 790);
  let differFromSpec = 0;
  let notRunnable = 0;
  for (const c of fixture.cases) {
    const got = uniformDropIndices(c.n, c.beta, 'reference');
    // Where the reference cannot run (k <= 1) we keep the block's first layer.
    assert.deepEqual(got, c.kept ?? [0], `n=${c.n} beta=${c.beta}`);
    if (c.kept === null) notRunnable++;
    else if (JSON.stringify(uniformDropIndices(c.n, c.beta, 'spec')) !== JSON.stringify(c.kept)) differFromSpec++;
  }
  // The counts docs/algorithm.md quotes.
  assert.equal(notRunnable, 38);
  assert.equal(differFromSpec, 36);
  // The paper's LLaMA-7B grid: both rules agree.
  for (const n of [28, 30])
    for (const beta of [0.1, 0.2, 0.3, 0.5])
      assert.deepEqual(uniformDropIndices(n, beta, 'reference'), uniformDropIndices(n, beta, 'spec'));
});

test('each method runs as its authors defined it; a config can force one alignment loss for all', () => {
  const settings = (name: string, ...extra: string[]) => {
    const cfg = loadConfig(null, [
      ...TINY_RUN.filter((o) => !o.startsWith('algorithm.local') && !o.startsWith('data.public')),
      `algorithm.name=${name}`,
      ...extra,
    ]);
    return { cfg, s: settingsFromConfig(cfg) };
  };
  const fedbiot = settings('fedbiot');
  assert.equal(fedbiot.s.alignObjective, 'fedbiot');
  assert.deepEqual([fedbiot.s.align.hiddenWeight, fedbiot.s.align.lambda, fedbiot.s.align.mu], [1, 0.9, 0]);
  assert.equal(fedbiot.s.local.proximal, 0, 'FedBiOT: as the reference trains, its gradient-free term has no effect');
  assert.equal(fedbiot.s.layerDrop, 'reference');
  assert.equal(fedbiot.s.align.layerwiseReduction, 'sum');
  assert.deepEqual(methodAsRun(fedbiot.cfg, fedbiot.s), {
    align_objective: 'fedbiot',
    align_loss: 'nmse + 0.9 kl',
    public_data: 'tasks',
    proximal: 0,
    proximal_rule: '0 (reference)',
    layer_drop: 'reference',
    realign_steps: 1,
  });

  const fedot = settings('fedot');
  assert.deepEqual(
    [fedot.s.align.hiddenWeight, fedot.s.align.lambda, fedot.s.align.mu],
    [0.9, 0, 0.1],
    'FedOT: NMSE + LM, no KL',
  );
  assert.equal(fedot.s.local.proximal, 0, 'FedOT clients: plain FedAvg');
  assert.equal(methodAsRun(fedot.cfg, fedot.s).align_loss, '0.9 nmse + 0.1 lm');

  const offsite = settings('offsite');
  assert.deepEqual([offsite.s.align.hiddenWeight, offsite.s.align.lambda, offsite.s.align.mu], [30, 0, 1]);
  assert.equal(methodAsRun(offsite.cfg, offsite.s).public_data, 'corpus', 'Offsite-Tuning distils on corpus text');
  assert.equal(offsite.s.local.proximal, 0);

  const full = settings('fedavg-full');
  assert.equal(full.s.local.proximal, 0, 'plain FedAvg has no proximal term');
  assert.deepEqual(methodAsRun(full.cfg, full.s), {
    align_objective: null,
    align_loss: 'none',
    public_data: '-',
    proximal: 0,
    proximal_rule: '0',
    layer_drop: '-',
    realign_steps: 0,
  });
  assert.equal(settings('local').s.local.proximal, 0);
  // The term as the algorithm states it, with its gradient, by name or by weight.
  const paper = settings('fedbiot', 'algorithm.local.proximal=paper');
  assert.equal(paper.s.local.proximal, 0.1, 'paper: the stated term at the reference weight');
  assert.equal(methodAsRun(paper.cfg, paper.s).proximal_rule, '0.1 (paper)');
  const weighted = settings('fedbiot', 'algorithm.local.proximal=0.01');
  assert.equal(weighted.s.local.proximal, 0.01);
  assert.equal(methodAsRun(weighted.cfg, weighted.s).proximal_rule, '0.01');
  assert.throws(() => settings('fedbiot', 'algorithm.local.proximal=none'), /algorithm\.local\.proximal/);
  assert.throws(() => settings('fedbiot', 'algorithm.local.proximal=-1'), /algorithm\.local\.proximal/);

  // Ablation: one loss for every method; single weights and the proximal term can still be set.
  const forced = settings('fedot', 'algorithm.align.objective=fedbiot', 'algorithm.local.proximal=0.01');
  assert.equal(forced.s.alignObjective, 'fedbiot');
  assert.deepEqual([forced.s.align.hiddenWeight, forced.s.align.lambda, forced.s.align.mu], [1, 0.9, 0]);
  assert.equal(forced.s.local.proximal, 0.01);
  assert.equal(methodAsRun(forced.cfg, forced.s).align_loss, 'nmse + 0.9 kl');
  const corpusForced = settings('fedbiot', 'algorithm.align.objective=offsite-tuning', 'algorithm.align.lambda=0.5');
  assert.deepEqual(
    [corpusForced.s.align.hiddenWeight, corpusForced.s.align.lambda, corpusForced.s.align.mu],
    [30, 0.5, 1],
  );
  assert.equal(methodAsRun(corpusForced.cfg, corpusForced.s).public_data, 'corpus');
  assert.equal(
    methodAsRun(settings('offsite', 'data.public.source=tasks').cfg, offsite.s).public_data,
    'tasks',
    'an explicit public source wins',
  );
  assert.throws(() => settings('fedbiot', 'algorithm.align.objective=kl-only'), /algorithm\.align\.objective/);
  assert.throws(() => settings('fedbiot', 'algorithm.layerDrop=round'), /algorithm\.layerDrop/);
  assert.equal(describeAlignLoss('layerwise-nmse', OBJECTIVES.fedbiot, 'mean'), 'layerwise-nmse(mean) + 0.9 kl');
});

function tinySplit(seed: number) {
  const cfg = makeConfig({
    vocabSize: 11,
    hiddenSize: 8,
    intermediateSize: 10,
    numLayers: 6,
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
  // Block of 5 at beta 0.4: 3 kept layers (0, 2, 4), so layer-wise terms have more than one layer.
  const s = buildSplit(base, { kind: 'last', last: 1 }, 0.4, { adapter: lora, emulator: lora }, seed);
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

const losses = [
  { what: 'FedOT (0.9 nmse + 0.1 lm)', o: { hiddenLoss: 'nmse' as const, ...OBJECTIVES.fedot } },
  { what: 'Offsite-Tuning (30 nmse + lm)', o: { hiddenLoss: 'nmse' as const, ...OBJECTIVES['offsite-tuning'] } },
  {
    what: 'layer-wise NMSE summed + KL',
    o: {
      hiddenLoss: 'layerwise-nmse' as const,
      layerwiseReduction: 'sum' as const,
      hiddenWeight: 1,
      lambda: 0.9,
      mu: 0,
    },
  },
  { what: 'NMSE alone', o: { hiddenLoss: 'nmse' as const, hiddenWeight: 1, lambda: 0, mu: 0 } },
];
for (const { what, o } of losses) {
  test(`alignment loss ${what}: emulator-LoRA gradients match float64 finite differences`, () => {
    const restore = useReference64();
    try {
      const s = tinySplit(5);
      assert.equal(s.emulator.length, 3);
      setTrainable(s, 'emulator');
      checkGradients(
        s.emulator.flatMap((l) => l.loraParams()),
        () => alignmentLoss(s, batch, o).tensor,
      );
    } finally {
      restore();
    }
  });
}

test('alignment loss values: weights scale their terms, layer-wise NMSE sums (or averages) the kept layers, unused terms are not computed', () => {
  const restore = useReference64();
  try {
    const s = tinySplit(6);
    const v = (o: Parameters<typeof alignmentLoss>[2]) => {
      const r = noGrad(() => alignmentLoss(s, batch, o).values);
      tape.reset();
      return r;
    };
    const fedbiot = v({ hiddenLoss: 'nmse', lambda: 0.9, mu: 0 });
    const lm = v({ hiddenLoss: 'nmse', hiddenWeight: 0, lambda: 0, mu: 1 });
    assert.ok(fedbiot.kl > 0 && lm.ce > 0);
    const offsite = v({ hiddenLoss: 'nmse', ...OBJECTIVES['offsite-tuning'] });
    assert.equal(offsite.kl, 0, 'no KL in the Offsite-Tuning loss');
    assert.ok(Math.abs(offsite.loss - (30 * fedbiot.hidden + lm.ce)) < 1e-12);
    const fedot = v({ hiddenLoss: 'nmse', ...OBJECTIVES.fedot });
    assert.ok(Math.abs(fedot.loss - (0.9 * fedbiot.hidden + 0.1 * lm.ce)) < 1e-12);
    const alone = v({ hiddenLoss: 'nmse', lambda: 0, mu: 0 });
    assert.deepEqual([alone.kl, alone.ce], [0, 0]);
    assert.ok(Math.abs(alone.loss - fedbiot.hidden) < 1e-12);

    // Layer-wise: each kept layer's NMSE, computed alone by running the block and the emulator.
    const perLayer = noGrad(() => {
      const ctx = { B: 2, T: 4, keyMask: Float32Array.from([0, 0, 0, 0, 0, 0, -Infinity, -Infinity]) };
      const m = s.full;
      let hT = m.embed(batch.ids, 2, 4);
      let hS = hT;
      const teacher = new Map<number, number[]>();
      s.block.forEach((layer, i) => {
        hT = m.layerForward(layer, hT, ctx, i);
        teacher.set(layer.sourceIndex, Array.from(hT.data));
      });
      return s.emulator.map((layer, i) => {
        hS = m.layerForward(layer, hS, ctx, i);
        const t = teacher.get(s.plan.emulator[i]!)!;
        let num = 0,
          den = 0;
        for (let r = 0; r < 8; r++) {
          if (!batch.attention[r]) continue;
          for (let d = 0; d < 8; d++) {
            num += (t[r * 8 + d]! - hS.data[r * 8 + d]!) ** 2;
            den += t[r * 8 + d]! ** 2;
          }
        }
        return num / den;
      });
    });
    tape.reset();
    const total = perLayer.reduce((a, b) => a + b, 0);
    const sum = v({ hiddenLoss: 'layerwise-nmse', lambda: 0, mu: 0 });
    const mean = v({ hiddenLoss: 'layerwise-nmse', layerwiseReduction: 'mean', lambda: 0, mu: 0 });
    assert.ok(Math.abs(sum.hidden - total) < 1e-12, `sum ${sum.hidden} vs ${total}`);
    assert.ok(Math.abs(sum.loss - total) < 1e-12);
    assert.ok(Math.abs(mean.loss - total / 3) < 1e-12);
  } finally {
    restore();
  }
});

test('the paper preset carries the reference hyper-parameters tabled in docs/algorithm.md, value by value', () => {
  const doc = fs.readFileSync(root('docs/algorithm.md'), 'utf8');
  const m = /<!-- preset: (\S+) -->\n([\s\S]*?)<!-- \/preset -->/.exec(doc);
  assert.ok(m, 'docs/algorithm.md has the preset table');
  const file = m[1]!;
  const rows = m[2]!.split('\n').filter((l) => l.startsWith('| `'));
  assert.ok(rows.length >= 30, `${rows.length} rows`);
  const cfg = loadConfig(root(file), []) as unknown as Record<string, unknown>;
  const at = (obj: unknown, key: string) =>
    key.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], obj);
  const tabled = new Set<string>();
  for (const row of rows) {
    const cells = row.split('|').map((c) => c.trim());
    const key = cells[1]!.replace(/`/g, '');
    const expected = parseYaml(cells[2]!.replace(/`/g, '')) as unknown;
    assert.ok(cells[4]!.length > 0, `${key}: the table names a source`);
    assert.deepEqual(at(cfg, key), expected, `${file} ${key}`);
    tabled.add(key);
  }
  // Nothing the preset sets escapes the table, except the model, the task standing in for GSM8K and
  // the evaluation.
  const exempt = ['seed', 'model', 'data.task', 'data.trainSize', 'data.testSize', 'data.public.size', 'eval'];
  const raw = parseYaml(fs.readFileSync(root(file), 'utf8')) as Record<string, unknown>;
  const leaves = (o: unknown, prefix: string): string[] =>
    o !== null && typeof o === 'object' && !Array.isArray(o)
      ? Object.entries(o).flatMap(([k, v]) => leaves(v, prefix ? `${prefix}.${k}` : k))
      : [prefix];
  for (const key of leaves(raw, '')) {
    if (exempt.some((e) => key === e || key.startsWith(`${e}.`))) continue;
    assert.ok(tabled.has(key), `${file} sets ${key}, which docs/algorithm.md does not table`);
  }
  // And the settings the run uses are those values.
  const s = settingsFromConfig(cfg as never);
  assert.equal(s.local.proximal, 0, "the reference's term carries no gradient");
  assert.deepEqual([s.align.hiddenWeight, s.align.lambda, s.align.mu], [1, 0, 0]);
  assert.equal(s.preAlignSteps, 500);
});
