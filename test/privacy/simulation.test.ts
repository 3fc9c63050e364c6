// Privacy and robustness in the simulated federation: secure aggregation gives FedAvg's adapter
// within the quantization error (also when a client drops after the share phase), central DP
// writes epsilon per round and in the summary, and a poisoned client is held off by the median.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfig, validateConfig } from '../../src/config/load.js';
import { buildExperiment } from '../../src/fl/experiment.js';
import { runSimulation } from '../../src/fl/simulation.js';
import { loadCheckpoint } from '../../src/fl/checkpoint.js';
import { writeRunReport } from '../../src/report/html.js';
import { TINY_RUN } from '../helpers/tiny-run.js';

const TINY = ['rounds=2', ...TINY_RUN, 'eval={maxExamples: 2, maxNewTokens: 2, generate: false}', 'clients.count=4'];

async function run(sets: string[], o: { dropAfterShares?: string[]; poison?: { client: string; scale: number } } = {}) {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'fedbiot-privacy-'));
  const s = await runSimulation(await buildExperiment(loadConfig(null, [...TINY, ...sets])), { outDir: out, ...o });
  const metrics = fs
    .readFileSync(path.join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  return {
    out,
    s: s!,
    metrics: metrics.filter((m) => typeof m.round === 'number' && (m.round as number) >= 0 && !m.phase),
    adapter: loadCheckpoint(path.join(out, 'checkpoints'))!.adapter,
  };
}

function maxDiff(a: Map<string, { data: Float32Array }>, b: Map<string, { data: Float32Array }>): number {
  let m = 0;
  for (const [k, v] of a) v.data.forEach((x, i) => (m = Math.max(m, Math.abs(x - b.get(k)!.data[i]!))));
  return m;
}

test('simulation: secure aggregation equals FedAvg within quantization error; a dropped client is recovered', async () => {
  // FedAvg on f32 updates: the codec secure aggregation runs with (q8 would add its own rounding)
  const plain = await run(['compression={codec: none}']);
  const secure = await run(['secureAggregation=true']);
  // range 1 over 4 clients: each value rounds to 1/scale with scale = floor(2^29 / 4).
  assert.ok(
    maxDiff(plain.adapter, secure.adapter) < 1e-5,
    `secure vs plain: ${maxDiff(plain.adapter, secure.adapter)}`,
  );
  const sa = secure.metrics[0]!.secure_aggregation as { survivors: number; dropped: string[] };
  assert.equal(sa.survivors, 4);
  const dropped = await run(['secureAggregation=true'], { dropAfterShares: ['2'] });
  const d = dropped.metrics[0]!.secure_aggregation as { survivors: number; dropped: string[] };
  assert.deepEqual([d.survivors, d.dropped], [3, ['2']]);
  assert.ok(Number.isFinite(dropped.s.adapfu.nll));
});

test('simulation: central DP writes epsilon after each round and in summary.json; targetEpsilon is met', async () => {
  const r = await run(['privacy={mode: central, targetEpsilon: 8, clip: 0.05}']);
  const eps = r.metrics.map((m) => (m.privacy as { epsilon: number }).epsilon);
  assert.equal(eps.length, 2);
  assert.ok(eps[0]! > 0 && eps[0]! < eps[1]! && eps[1]! <= 8 + 1e-9, JSON.stringify(eps));
  assert.deepEqual(r.s.privacy, { epsilon: eps[1], delta: 1e-5 });
  const html = fs.readFileSync(writeRunReport(r.out), 'utf8');
  assert.match(html, new RegExp(`class="privacy-epsilon">${eps[1]!.toFixed(3)}<`));
  // With secure aggregation the clients clip and the server noises the unmasked sum.
  const rs = await run(['privacy={mode: central, noiseMultiplier: 1, clip: 0.05}', 'secureAggregation=true']);
  assert.ok((rs.metrics[1]!.privacy as { epsilon: number }).epsilon > 0);
  assert.ok(Number.isFinite(rs.s.adapfu.nll));
});

test('simulation: a poisoned client (update x -100) wrecks FedAvg, the median holds', async () => {
  const clean = await run([]);
  const fed = await run([], { poison: { client: '0', scale: -100 } });
  const med = await run(['aggregation={rule: median}'], { poison: { client: '0', scale: -100 } });
  const hurt = (x: number) => Math.abs(x - clean.s.adapfu.nll);
  assert.ok(hurt(fed.s.adapfu.nll) > 0.05, `FedAvg ${fed.s.adapfu.nll} vs clean ${clean.s.adapfu.nll}`);
  assert.ok(
    hurt(med.s.adapfu.nll) < hurt(fed.s.adapfu.nll) / 5,
    `median ${med.s.adapfu.nll}, FedAvg ${fed.s.adapfu.nll}, clean ${clean.s.adapfu.nll}`,
  );
});

test('config: privacy settings are validated with the run config, by key', () => {
  const base = { model: { random: {} }, data: { task: 'math' }, algorithm: {} };
  assert.throws(
    () => validateConfig({ ...base, secureAggregation: true, aggregation: { rule: 'median' } }, 'x.yaml'),
    /x.yaml:\n {2}secureAggregation: secure aggregation reveals only the sum/,
  );
  assert.throws(
    () => validateConfig({ ...base, privacy: { mode: 'sideways', clip: 1, noiseMultiplier: 1 } }, 'x.yaml'),
    /privacy.mode/,
  );
});
