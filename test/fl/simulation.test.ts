// End-to-end simulation on a tiny random model: every algorithm runs 2 rounds, runs are
// deterministic for a seed, and an interrupted run resumes from its last completed round.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfig, validateConfig } from '../../src/config/load.js';
import { buildExperiment } from '../../src/fl/experiment.js';
import { runSimulation } from '../../src/fl/simulation.js';
import { ALGORITHMS } from '../../src/fedbiot/algorithms.js';
import { readPeftAdapter } from '../../src/io/peft.js';
import { TINY_RUN } from '../helpers/tiny-run.js';

const TINY = ['rounds=2', ...TINY_RUN, 'eval={maxExamples: 3, maxNewTokens: 4}'];

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'fedbiot-sim-'));
}

for (const name of ALGORITHMS) {
  test(`simulation: ${name} runs 2 rounds and writes metrics, checkpoints, adapter and summary`, async () => {
    const out = tmp();
    const cfg = loadConfig(null, [...TINY, `algorithm.name=${name}`]);
    const s = await runSimulation(await buildExperiment(cfg), { outDir: out });
    assert.ok(s);
    assert.equal(s.algorithm, name);
    for (const view of [s.adapemu, s.adapfu, s.base]) assert.ok(Number.isFinite(view.nll), JSON.stringify(view));
    const lines = fs
      .readFileSync(path.join(out, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const rounds = lines.filter((l) => typeof l.round === 'number' && l.round >= 0 && !l.phase);
    assert.equal(rounds.length, 2);
    for (const r of rounds) {
      // Local clients never talk to the server after joining.
      if (name === 'local') assert.deepEqual([r.bytes_down, r.bytes_up], [0, 0]);
      else assert.ok(r.bytes_down > 0 && r.bytes_up > 0);
      assert.equal(Object.keys(r.train_loss).length, name === 'offsite' ? 1 : 3);
    }
    if (name === 'fedbiot') assert.ok(rounds[1].align_loss && rounds[1].align_loss.kl >= 0);
    const adapter = readPeftAdapter(path.join(out, 'adapter'));
    assert.ok(adapter.tensors.size > 0);
    assert.ok(fs.existsSync(path.join(out, 'checkpoints', 'latest.json')));
    const summary = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8'));
    assert.equal(summary.bytes_total, s.bytes_total);
    if (name === 'fedavg-full') assert.ok(s.client.model_params > 0);
    else {
      const manifest = JSON.parse(fs.readFileSync(path.join(out, 'split.json'), 'utf8'));
      assert.match(manifest.modelHash, /^[0-9a-f]{64}$/);
      assert.equal(
        manifest.layers.filter((l: { role: string }) => l.role === 'adapter').length,
        name === 'fedbiot' || name === 'local' ? 2 : 4,
      );
    }
  });
}

// The default codec (q8: what each client holds is checkpointed) and q4 with top-k (its error feedback too).
for (const compression of [[], ['compression={codec: q4, topk: 0.5}']])
  test(`simulation: the same config twice gives the same summary; --resume continues after a stop${compression.length ? ' (q4, top-k)' : ''}`, async () => {
    const cfg = loadConfig(null, [...TINY, 'rounds=3', 'eval.generate=false', ...compression]);
    const a = await runSimulation(await buildExperiment(cfg), { outDir: tmp() });
    const b = await runSimulation(await buildExperiment(cfg), { outDir: tmp() });
    const strip = (s: typeof a) => ({ ...s, seconds: 0, client: { ...s!.client, mean_step_seconds: 0 } });
    assert.deepEqual(strip(b), strip(a));
    // Stop during round 2 (after round 1 completed), then resume.
    const out = tmp();
    let clientsTrained = 0;
    const stopped = await runSimulation(await buildExperiment(cfg), {
      outDir: out,
      shouldStop: () => ++clientsTrained > 4,
    });
    assert.equal(stopped, null);
    const latest = JSON.parse(fs.readFileSync(path.join(out, 'checkpoints', 'latest.json'), 'utf8'));
    assert.equal(latest.completedRounds, 1);
    const resumed = await runSimulation(await buildExperiment(cfg), { outDir: out, resume: true });
    assert.deepEqual(strip(resumed).adapfu, strip(a).adapfu);
    assert.deepEqual(strip(resumed).adapemu, strip(a).adapemu);
  });

test('config errors name the key', () => {
  assert.throws(
    () => validateConfig({ model: { random: {} }, data: { task: 'math' }, algorithm: { nmae: 'x' } }, 'x.yaml'),
    /algorithm.*nmae/s,
  );
  assert.throws(
    () => validateConfig({ model: { random: {} }, data: { task: 'math' }, algorithm: { dropRate: 1.5 } }, 'x.yaml'),
    /algorithm\.dropRate/,
  );
  assert.throws(
    () => validateConfig({ model: {}, data: { task: 'math' }, algorithm: {} }, 'x.yaml'),
    /model: give exactly one/,
  );
  assert.throws(() => loadConfig(null, ['rounds']), /expected key=value/);
});

test('simulation: a Q8_0 emulator (algorithm.emulator.weights) runs, holds less client memory, and stays close to f32', async () => {
  const run = async (weights: string) =>
    runSimulation(
      await buildExperiment(
        loadConfig(null, [...TINY, 'eval.generate=false', `algorithm.emulator={weights: ${weights}}`]),
      ),
      { outDir: tmp() },
    );
  const f32 = (await run('f32'))!;
  const q8 = (await run('q8_0'))!;
  assert.ok(
    q8.client.peak_memory_mb! < f32.client.peak_memory_mb!,
    `client memory ${q8.client.peak_memory_mb} MB vs ${f32.client.peak_memory_mb} MB`,
  );
  // the full model keeps f32 weights: the base is evaluated on the same model
  assert.deepEqual(q8.base, f32.base);
  assert.notDeepEqual(q8.emulator, f32.emulator, 'the clients run (and the server aligns) the quantized emulator');
  assert.ok(
    Math.abs(q8.adapfu.nll! - f32.adapfu.nll!) < 0.05 * f32.adapfu.nll!,
    `AdapFu NLL ${q8.adapfu.nll} vs ${f32.adapfu.nll}`,
  );
  assert.throws(() => loadConfig(null, [...TINY, 'algorithm.emulator={weights: q3}']), /algorithm\.emulator\.weights/);
});

test('simulation: compressed traffic (q8, q4 + top-k) moves fewer bytes per round, deterministically, close to uncompressed', async () => {
  const run = async (codec: string, topk = 'null') =>
    runSimulation(
      await buildExperiment(
        loadConfig(null, [...TINY, 'rounds=3', 'eval.generate=false', `compression={codec: ${codec}, topk: ${topk}}`]),
      ),
      { outDir: tmp() },
    );
  const none = (await run('none'))!;
  const q8 = (await run('q8'))!;
  const q8again = (await run('q8'))!;
  const q4k = (await run('q4', '0.1'))!;
  const strip = (s: typeof q8) => ({ ...s, seconds: 0, client: { ...s.client, mean_step_seconds: 0 } });
  assert.deepEqual(strip(q8again), strip(q8), 'seeded stochastic rounding: the same run twice is the same');
  const ratio = none.bytes_total / q8.bytes_total;
  console.log(
    `bytes: none ${none.bytes_total}, q8 ${q8.bytes_total}, q4+top10% ${q4k.bytes_total} (up ${none.bytes_up_total} / ${q8.bytes_up_total} / ${q4k.bytes_up_total}); AdapFu NLL ${none.adapfu.nll} / ${q8.adapfu.nll} / ${q4k.adapfu.nll}`,
  );
  assert.ok(ratio > 3.5, `q8 moves ${ratio.toFixed(2)}x fewer bytes than none`);
  assert.ok(
    none.bytes_up_total / q4k.bytes_up_total > 10,
    `q4 + top-10% uploads ${(none.bytes_up_total / q4k.bytes_up_total).toFixed(2)}x fewer bytes`,
  );
  assert.ok(
    Math.abs(q8.adapfu.nll! - none.adapfu.nll!) < 0.01 * none.adapfu.nll!,
    `q8 AdapFu NLL ${q8.adapfu.nll} vs ${none.adapfu.nll}`,
  );
  assert.ok(Number.isFinite(q4k.adapfu.nll!));
  assert.throws(() => loadConfig(null, [...TINY, 'compression={codec: q2}']), /compression\.codec/);
});
