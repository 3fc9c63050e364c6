// The emulator-to-full gap (AdapEmu NLL - AdapFu NLL) recorded by the driver after every round with
// eval.drift, with and without FedBiOT's re-alignment, and the domain-shift preset.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { buildExperiment } from '../../src/fl/experiment.js';
import { runSimulation } from '../../src/fl/simulation.js';
import { demoOverrides } from '../../src/cli/demo.js';
import { TINY_RUN } from '../helpers/tiny-run.js';

const TINY = [
  'rounds=3',
  ...TINY_RUN,
  'algorithm.alignStepsPerRound=3',
  'eval={maxExamples: 3, generate: false, drift: true}',
];

async function run(...extra: string[]) {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'fedbiot-drift-'));
  const s = await runSimulation(await buildExperiment(loadConfig(null, [...TINY, ...extra])), { outDir: out });
  assert.ok(s);
  const lines = fs
    .readFileSync(path.join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  fs.rmSync(out, { recursive: true, force: true });
  return { s, lines };
}

test('eval.drift: the gap after pre-alignment and every round, in metrics.jsonl and summary.json', async () => {
  const { s, lines } = await run();
  assert.deepEqual(
    s.drift!.map((p) => p.round),
    [-1, 0, 1, 2],
  );
  // round -1: the pre-aligned emulator against the base model (the adapter's LoRA is still zero)
  const d0 = s.drift![0]!;
  assert.equal(d0.adapemu_nll, s.emulator!.nll);
  assert.equal(d0.adapfu_nll, s.base.nll);
  for (const p of s.drift!) assert.ok(Math.abs(p.gap - (p.adapemu_nll - p.adapfu_nll)) < 1e-12);
  // each round's entry carries its point, computed from that round's evaluation of both views
  const rounds = lines.filter((l) => l.round >= 0 && !l.phase);
  assert.equal(rounds.length, 3);
  // the last round is evaluated once, in the final evaluation
  assert.equal(rounds[2].eval, undefined);
  for (const r of rounds.slice(0, 2)) {
    assert.equal(r.drift.adapemu_nll, r.eval.adapemu.nll);
    assert.equal(r.drift.adapfu_nll, r.eval.adapfu.nll);
    assert.equal(r.eval.adapfu.accuracy, undefined, 'NLL only between rounds');
  }
  const final = lines.find((l) => l.phase === 'final');
  assert.deepEqual(final.drift, s.drift![3]);
  assert.equal(final.drift.adapfu_nll, s.adapfu.nll);
  assert.equal(s.method.realign_steps, 3);
});

test('without re-alignment the gap is the same until the first re-alignment would run, then differs', async () => {
  const [withAlign, without] = [await run(), await run('algorithm.alignStepsPerRound=0')];
  assert.equal(without.s.method.realign_steps, 0);
  const a = withAlign.s.drift!;
  const b = without.s.drift!;
  // rounds -1 and 0: no re-alignment yet in either run (FedBiOT re-aligns from round 1 on)
  assert.deepEqual(a.slice(0, 2), b.slice(0, 2));
  // round 1: re-aligning the emulator changed AdapEmu; AdapFu moves only through what clients learnt on it
  assert.notEqual(a[2]!.adapemu_nll, b[2]!.adapemu_nll);
  assert.notEqual(a[2]!.gap, b[2]!.gap);
});

test('no emulator, no drift: fedavg-full records none', async () => {
  const { s, lines } = await run('algorithm.name=fedavg-full');
  assert.equal(s.drift, undefined);
  assert.ok(lines.every((l) => l.drift === undefined));
});

test('the domain-shift preset: public data without the clients\u2019 family, more rounds, drift each round', () => {
  for (const task of ['math', 'code', 'qa']) {
    const cfg = loadConfig(null, demoOverrides(task, null, false, 'domain-shift'));
    const def = loadConfig(null, demoOverrides(task, null, false));
    assert.deepEqual(def.data.public.tasks, ['math', 'code', 'qa']);
    assert.deepEqual(
      cfg.data.public.tasks,
      ['math', 'code', 'qa'].filter((t) => t !== task),
    );
    assert.ok(cfg.rounds > def.rounds);
    assert.equal(cfg.eval.drift, true);
  }
  assert.throws(() => demoOverrides('math', null, true, 'nope' as 'default'), /unknown setting 'nope'/);
});
