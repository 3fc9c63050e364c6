// `npm run bench:algorithms`, spawned as a user runs it: --dry-run lists and validates the whole
// comparison grid without running it, and a tiny real grid (random model, quick settings, two tasks,
// FedBiOT with and without re-alignment, two seeds) writes the results file: per-seed numbers, their
// means, and the emulator-to-full gap per round, the Markdown and the JSON agreeing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function bench(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(
      process.execPath,
      ['--import', 'tsx', path.join(root, 'bench/algorithms.ts'), ...args],
      { cwd: root, env: { ...process.env, FEDBIOT_THREADS: '1' }, maxBuffer: 1 << 24 },
      (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout, stderr }),
    ),
  );
}

test('--comparison --dry-run: the whole grid, every config validated, nothing run or written', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fedbiot-grid-dry-'));
  const out = path.join(dir, 'grid.md');
  const r = await bench(['--comparison', '--dry-run', '--model', 'random', '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const [head, ...runs] = r.stdout.trim().split('\n');
  // 3 tasks x (2 betas x 2 adapters x 5 split methods + fedavg-full) x 3 seeds
  assert.match(head!, /^189 runs \(63 settings x 3 seeds\)/);
  assert.equal(runs.length, 189);
  const names = runs.map((l) => l.split('\t')[0]!);
  assert.equal(new Set(names).size, 189);
  for (const task of ['math', 'code', 'qa'])
    for (const m of ['fedbiot', 'fedbiot-noalign', 'fedot', 'offsite', 'local'])
      for (const beta of [0.2, 0.5])
        for (const a of [2, 4])
          for (const seed of [0, 1, 2]) assert.ok(names.includes(`${task}-${m}-${beta}-${a}-${seed}`));
  const noalign = runs.find((l) => l.startsWith('math-fedbiot-noalign-0.5-2-0'))!;
  assert.match(noalign, /algorithm\.name=fedbiot .*algorithm\.alignStepsPerRound=0/);
  assert.match(runs.find((l) => l.startsWith('qa-fedot-0.2-4-1'))!, /offsiteLayers=\{first: 2, last: 2\}/);
  assert.match(runs.find((l) => l.startsWith('qa-offsite-0.2-2-1'))!, /offsiteLayers=\{first: 1, last: 1\}/);
  assert.equal(fs.existsSync(out), false);
  // bad grid arguments are refused by name
  const bad = await bench(['--dry-run', '--methods', 'fedbiot,fedprox']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /--methods: unknown method 'fedprox'/);
});

test('a tiny grid writes per-seed numbers, means and the gap per round (Markdown and JSON agree)', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fedbiot-grid-'));
  const out = path.join(dir, 'grid.md');
  const args = [
    '--comparison',
    '--model',
    'random',
    '--quick',
    '--tasks',
    'math,qa',
    '--methods',
    'fedbiot,fedbiot-noalign',
    '--betas',
    '0.5',
    '--adapters',
    '2',
    '--seeds',
    '0,1',
    '--out',
    out,
    ...['rounds=2', 'data.trainSize=16', 'eval.maxExamples=2', 'model.random.numLayers=4'].flatMap((s) => ['--set', s]),
  ];
  const r = await bench(args);
  assert.equal(r.code, 0, r.stderr);
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'grid.json'), 'utf8'));
  assert.deepEqual(json.seeds, [0, 1]);
  assert.deepEqual(json.missing_seeds, []);
  assert.equal(json.cells.length, 4);
  const md = fs.readFileSync(out, 'utf8');
  assert.ok(r.stdout.trim().endsWith(md.replace(/^# Results\n\n/, '').trim()), 'what is printed is what is written');
  for (const c of json.cells) {
    assert.deepEqual(
      c.seeds.map((s: { seed: number }) => s.seed),
      [0, 1],
    );
    assert.equal(c.realign_steps, c.method === 'fedbiot' ? 2 : 0);
    // the means are the means of the per-seed numbers
    for (const view of ['adapemu', 'adapfu'])
      for (const [k, v] of Object.entries(c.mean[view] as Record<string, number>)) {
        const per = c.seeds.map((s: Record<string, Record<string, number>>) => s[view]![k]!);
        assert.ok(Math.abs(v - (per[0] + per[1]) / 2) < 1e-12, `${c.task} ${c.method} ${view} ${k}`);
      }
    // task metric next to NLL: accuracy for math, Rouge-L for qa
    assert.ok(Number.isFinite(c.mean.adapfu.nll));
    assert.ok(Number.isFinite(c.mean.adapfu[c.task === 'math' ? 'accuracy' : 'rouge_l']));
    // the emulator-to-full gap after pre-alignment and each of the 2 rounds, per seed
    for (const s of c.seeds) {
      assert.deepEqual(
        s.drift.map((p: { round: number }) => p.round),
        [-1, 0, 1],
      );
      assert.equal(s.drift[2].adapfu_nll, s.adapfu.nll);
    }
    const gap = (c.seeds[0].drift[2].gap + c.seeds[1].drift[2].gap) / 2;
    assert.ok(Math.abs(c.mean.final_gap - gap) < 1e-12);
    // the Markdown row carries the same means and per-seed values
    const row = md
      .split('\n')
      .slice(md.slice(0, md.indexOf(`### ${c.task}`)).split('\n').length)
      .find((l) => l.startsWith(`| ${c.method} |`))!;
    const cells = row.split('|').map((x) => x.trim());
    assert.equal(cells[4], c.mean.adapemu.nll.toFixed(4));
    assert.equal(cells[5], c.mean.adapfu.nll.toFixed(4));
    assert.equal(cells[6], c.seeds.map((s: { adapfu: { nll: number } }) => s.adapfu.nll.toFixed(4)).join(', '));
  }
  // re-alignment changes the emulator from round 1 on: the two methods' gaps differ there
  const math = json.cells.filter((c: { task: string }) => c.task === 'math');
  assert.notEqual(math[0].seeds[0].drift[2].gap, math[1].seeds[0].drift[2].gap);
  assert.deepEqual(math[0].seeds[0].drift.slice(0, 2), math[1].seeds[0].drift.slice(0, 2));
  assert.match(md, /^# Results\n\n## Grid: math, qa, random model, seeds 0, 1 \(quick settings\)/);
  // a file with the markers keeps what is around them
  fs.writeFileSync(out, '# Reading\n\nkept\n\n<!-- bench:algorithms -->\nold\n<!-- /bench:algorithms -->\n\nafter\n');
  const again = await bench(args.map((a) => (a === '0,1' ? '0' : a === 'math,qa' ? 'math' : a)));
  assert.equal(again.code, 0, again.stderr);
  const kept = fs.readFileSync(out, 'utf8');
  assert.match(kept, /^# Reading\n\nkept\n\n<!-- bench:algorithms -->\n## Grid: math, random model, seeds 0 \(quick/);
  assert.ok(kept.endsWith('<!-- /bench:algorithms -->\n\nafter\n') && !kept.includes('\nold\n'));
  fs.rmSync(dir, { recursive: true, force: true });
});
