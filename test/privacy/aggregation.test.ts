// The aggregation step: differential privacy (clipping, seeded noise, adaptive clip, local mode),
// robust rules against a poisoned update, and the settings that are refused by name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RoundAggregator } from '../../src/privacy/aggregator.js';
import { epsilonFor } from '../../src/privacy/accountant.js';
import { aggregationPlan, type PrivacyInputs } from '../../src/privacy/settings.js';
import { stateAddScaled, stateDiff, stateNorm, type LoraState } from '../../src/fedbiot/lora-state.js';
import { coordinateMedian, trimmedMean, fedAvg } from '../../src/fedbiot/aggregate.js';
import { Prg } from '../../src/util/prg.js';
import { fillNormal, mulberry32 } from '../../src/util/rng.js';

function state(seed: number, std: number, n = 512): LoraState {
  return new Map([['l.lora_A.weight', { shape: [n], data: fillNormal(mulberry32(seed), new Float32Array(n), std) }]]);
}

const inputs = (over: Partial<PrivacyInputs>): PrivacyInputs => ({
  rounds: 10,
  algorithm: { name: 'fedbiot' },
  clients: { count: 8 },
  secureAggregation: false,
  aggregation: { rule: 'fedavg' },
  ...over,
});

const start = state(1, 0.1);
const updates = (k: number, std = 0.01) =>
  Array.from({ length: k }, (_, i) => ({
    client: String(i),
    samples: 10,
    state: stateAddScaled(start, state(50 + i, std)),
  }));

test('seeded DP noise is reproducible and has the std it claims', () => {
  const a = new Prg(new Uint8Array(32).fill(7));
  const b = new Prg(new Uint8Array(32).fill(7));
  const xs = Array.from({ length: 20000 }, () => a.normal());
  assert.deepEqual(
    Array.from({ length: 20000 }, () => b.normal()),
    xs,
  );
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  const sd = Math.sqrt(xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length);
  assert.ok(Math.abs(mean) < 0.03 && Math.abs(sd - 1) < 0.03, `mean ${mean}, sd ${sd}`);

  const plan = aggregationPlan(
    inputs({ privacy: { mode: 'central', noiseMultiplier: 1, clip: 0.05, adaptiveClip: false, delta: 1e-5 } }),
  );
  const ups = updates(8);
  const r1 = new RoundAggregator(plan, 3).aggregate({ round: 0, start, population: 8 }, ups);
  const r2 = new RoundAggregator(plan, 3).aggregate({ round: 0, start, population: 8 }, ups);
  const r3 = new RoundAggregator(plan, 4).aggregate({ round: 0, start, population: 8 }, ups);
  assert.deepEqual(r1.adapter, r2.adapter);
  assert.notDeepEqual(r1.adapter, r3.adapter);
  // The mean update is (sum of clipped + N(0, (zC)^2)) / m; its noise part has std zC/m.
  const d = stateDiff(r1.adapter, start).get('l.lora_A.weight')!.data;
  const honest = new Float64Array(d.length);
  for (const u of ups) {
    const du = stateDiff(u.state, start);
    const f = Math.min(1, 0.05 / stateNorm(du));
    du.get('l.lora_A.weight')!.data.forEach((x, i) => (honest[i]! += (x * f) / 8));
  }
  const resid = [...d].map((x, i) => x - honest[i]!);
  const sdNoise = Math.sqrt(resid.reduce((s, x) => s + x * x, 0) / resid.length);
  assert.ok(Math.abs(sdNoise / (0.05 / 8) - 1) < 0.1, `noise std ${sdNoise}, expected ${0.05 / 8}`);
  assert.equal(r1.privacy!.clipped, 8); // every update (norm ~0.23) exceeds the clip 0.05
  assert.ok(r1.privacy!.epsilon! > 0);
});

test('adaptive clipping moves the clip norm toward the target quantile of update norms', () => {
  const plan = aggregationPlan(
    inputs({
      clients: { count: 40 },
      privacy: {
        mode: 'central',
        noiseMultiplier: 0.5,
        clip: 5,
        adaptiveClip: { targetQuantile: 0.5, learningRate: 0.2 },
        delta: 1e-5,
      },
    }),
  );
  const agg = new RoundAggregator(plan, 0);
  const ups = updates(40); // norms ~ 0.01 * sqrt(512) = 0.226
  for (let r = 0; r < 40; r++) agg.aggregate({ round: r, start, population: 40 }, ups);
  assert.ok(
    agg.currentClip > 0.15 && agg.currentClip < 0.35,
    `clip ${agg.currentClip} after 40 rounds, norms are ~0.226`,
  );
  const saved = new RoundAggregator(plan, 0, agg.state());
  assert.equal(saved.currentClip, agg.currentClip);
  assert.equal(saved.epsilon(), agg.epsilon());
});

test('local DP: the client clips and noises its own upload; the server charges q = 1', () => {
  const plan = aggregationPlan(
    inputs({ privacy: { mode: 'local', noiseMultiplier: 1, clip: 0.1, adaptiveClip: false, delta: 1e-5 } }),
  );
  const agg = new RoundAggregator(plan, 0);
  const u = updates(1)[0]!;
  const up = agg.prepareUpload(start, u.state, agg.simulatedClientNoise('0', 0));
  const again = agg.prepareUpload(start, u.state, agg.simulatedClientNoise('0', 0));
  assert.deepEqual(up, again);
  const noiseSd = Math.sqrt(stateNorm(stateDiff(up, start)) ** 2 / 512);
  assert.ok(Math.abs(noiseSd / 0.1 - 1) < 0.15, `local noise std ${noiseSd}`);
  const r = agg.aggregate({ round: 0, start, population: 8 }, [{ ...u, state: up }]);
  assert.equal(plan.privacy!.samplingRate, 1);
  assert.deepEqual(r.adapter, up); // the server averages what it got; it adds nothing
  assert.ok(Math.abs(r.privacy!.epsilon! - epsilonFor(1, 1, 1, 1e-5).epsilon) < 1e-12);
});

test('one malicious client (update scaled by -100): FedAvg degrades, median and trimmed mean hold', () => {
  const honest = updates(5);
  const target = fedAvg(honest);
  const evil = { ...honest[4]!, state: stateAddScaled(start, stateDiff(honest[4]!.state, start), -100) };
  const poisoned = [...honest.slice(0, 4), evil];
  const honestSpread = stateNorm(stateDiff(honest[0]!.state, start));
  const eFed = stateNorm(stateDiff(fedAvg(poisoned), target));
  const eMed = stateNorm(stateDiff(coordinateMedian(poisoned), target));
  const eTrim = stateNorm(stateDiff(trimmedMean(poisoned, 0.2), target));
  assert.ok(eFed > 10 * honestSpread, `FedAvg error ${eFed} vs one honest update's size ${honestSpread}`);
  assert.ok(
    eMed < honestSpread && eTrim < honestSpread,
    `median ${eMed}, trimmed ${eTrim}, honest size ${honestSpread}`,
  );
  // Through the aggregator, with norm clipping in front of FedAvg the damage is bounded too.
  const clipped = new RoundAggregator(
    aggregationPlan(inputs({ aggregation: { rule: 'fedavg', clipNorm: 0.3 } })),
    0,
  ).aggregate({ round: 0, start, population: 5 }, poisoned);
  assert.ok(stateNorm(stateDiff(clipped.adapter, target)) < 0.3, 'norm clipping bounds one client to clipNorm / m');
  const med = new RoundAggregator(aggregationPlan(inputs({ aggregation: { rule: 'median' } })), 0).aggregate(
    { round: 0, start, population: 5 },
    poisoned,
  );
  assert.deepEqual(med.adapter, coordinateMedian(poisoned));
});

test('settings that make no sense are refused by name', () => {
  const dp = (o: Record<string, unknown>) => ({
    mode: 'central' as const,
    clip: 1,
    adaptiveClip: false,
    delta: 1e-5,
    ...o,
  });
  const bad = (over: Partial<PrivacyInputs>, re: RegExp) => assert.throws(() => aggregationPlan(inputs(over)), re);
  bad(
    { clients: { count: 4 }, secureAggregation: true, aggregation: { rule: 'median' } },
    /secureAggregation: secure aggregation reveals only the sum .*rule median .* impossible/,
  );
  bad(
    { secureAggregation: true, aggregation: { rule: 'fedavg', clipNorm: 1 } },
    /aggregation.clipNorm: the server cannot clip updates it cannot see/,
  );
  bad({ privacy: dp({}) }, /privacy: give privacy.noiseMultiplier or privacy.targetEpsilon/);
  bad({ privacy: dp({ noiseMultiplier: 1, targetEpsilon: 2 }) }, /privacy.targetEpsilon: .*not both/);
  bad(
    { privacy: dp({ noiseMultiplier: 1 }), aggregation: { rule: 'trimmed-mean' } },
    /aggregation.rule: differential privacy/,
  );
  bad(
    { privacy: dp({ mode: 'local', noiseMultiplier: 1, adaptiveClip: true }) },
    /privacy.adaptiveClip: .*mode central only/,
  );
  bad(
    { privacy: dp({ noiseMultiplier: 1, adaptiveClip: true }), secureAggregation: true },
    /privacy.adaptiveClip: .*secure aggregation hides/,
  );
  bad(
    { clients: { count: 4 }, privacy: dp({ noiseMultiplier: 1, delta: 0.5 }) },
    /privacy.delta: delta 0.5 is not below 1\/4/,
  );
  bad({ aggregation: { rule: 'fedavg', trim: 0.2 } }, /aggregation.trim: trim applies to rule trimmed-mean only/);
  bad(
    { aggregation: { rule: 'trimmed-mean', trim: 0.1 }, clients: { count: 4 } },
    /aggregation.trim: trim 0.1 of 4 clients per round drops none/,
  );
  bad(
    { secureAggregation: true, clients: { count: 4, perRound: 1 } },
    /secure aggregation needs at least 2 clients per round/,
  );
  bad(
    { algorithm: { name: 'local' }, aggregation: { rule: 'median' } },
    /algorithm.name: algorithm local has no aggregation/,
  );
  const plan = aggregationPlan(inputs({ privacy: dp({ targetEpsilon: 8 }), secureAggregation: true }));
  assert.ok(plan.privacy!.noiseMultiplier > 0 && plan.secure !== null);
  assert.ok(epsilonFor(plan.privacy!.samplingRate, plan.privacy!.noiseMultiplier, 10, 1e-5).epsilon <= 8);
});
