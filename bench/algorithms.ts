// `npm run bench:algorithms [-- --model DIR] [--seeds 0,1,2] [--quick] [--default-only] [--methods a,b] [--set key=value ...]`
// FedBiOT and its baselines at drop rate 0.2 and 0.5 and adapter 2 and 4 layers, averaged over
// seeds, on the generated math task: AdapEmu / AdapFu per method, client cost and traffic. Writes a
// Markdown table (docs/results.md unless --out; in a file with <!-- bench:algorithms --> markers,
// only the part between them) and prints it.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfig } from '../src/config/load.js';
import { buildExperiment } from '../src/fl/experiment.js';
import { runSimulation, type Summary } from '../src/fl/simulation.js';
import { fmtBytes } from '../src/util/format.js';
import { demoOverrides, defaultDemoModel } from '../src/cli/demo.js';

function arg(name: string, fallback: string | null): string | null {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}

const model = arg('model', defaultDemoModel());
const seeds = (arg('seeds', '0,1,2') ?? '0').split(',').map(Number);
const quick = process.argv.includes('--quick');
const outFile = arg('out', path.join('docs', 'results.md'))!;
const task = arg('task', 'math')!;

interface Row {
  method: string;
  beta: number;
  adapter: number;
  emu: Record<string, number>;
  fu: Record<string, number>;
  fuPerSeed: (Record<string, number> | null | undefined)[];
  mb: number;
  bytesRound: number;
  stepS: number;
  base: Record<string, number>;
  alignment: string;
  proximal: string;
}

// --default-only: one row per method at the demo's setting (beta 0.2, adapter 4 / 2+2).
const defaultOnly = process.argv.includes('--default-only');
const methods = (arg('methods', 'fedbiot,fedot,offsite,local,fedavg-full') ?? '').split(',');
// --set key=value (repeatable): extra config overrides on top of the demo's settings.
const extraSets = process.argv.flatMap((a, i) => (a === '--set' && process.argv[i + 1] ? [process.argv[i + 1]!] : []));
let grid: { method: string; beta: number; adapter: number }[] = [];
for (const beta of defaultOnly ? [0.2] : [0.2, 0.5]) {
  for (const adapter of defaultOnly ? [4] : [2, 4]) grid.push({ method: 'fedbiot', beta, adapter });
  grid.push({ method: 'fedot', beta, adapter: 4 });
  grid.push({ method: 'offsite', beta, adapter: 4 });
  grid.push({ method: 'local', beta, adapter: 4 });
}
grid.push({ method: 'fedavg-full', beta: 0, adapter: 0 });
grid = grid.filter((g) => methods.includes(g.method));

function mean(xs: Record<string, number>[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of Object.keys(xs[0] ?? {})) out[k] = xs.reduce((a, x) => a + (x[k] ?? NaN), 0) / xs.length;
  return out;
}

// The untuned base model's evaluation does not depend on the method or seed (same test set).
let baseEval: Summary['base'] | undefined;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fedbiot-bench-alg-'));
// Seeds run outermost and the table is rewritten after each one, so an interrupted run leaves every
// method's numbers over the seeds that completed.
const runsOf: Summary[][] = grid.map(() => []);
const done: number[] = [];
for (const seed of seeds) {
  for (const [i, g] of grid.entries()) {
    const o = [...demoOverrides(task, model, quick), ...extraSets, `seed=${seed}`, `algorithm.name=${g.method}`];
    if (g.method !== 'fedavg-full') o.push(`algorithm.dropRate=${g.beta}`);
    if (g.method === 'fedbiot' || g.method === 'local') o.push(`algorithm.adapterLayers=${g.adapter}`);
    const cfg = loadConfig(null, o);
    process.stderr.write(`${g.method} beta=${g.beta} adapter=${g.adapter} seed=${seed}\n`);
    const s = await runSimulation(await buildExperiment(cfg), {
      outDir: path.join(tmp, `${g.method}-${g.beta}-${g.adapter}-${seed}`),
      baseEval,
    });
    if (s) {
      runsOf[i]!.push(s);
      baseEval ??= s.base;
    }
  }
  done.push(seed);
  writeTable();
}

function writeTable(): void {
  const rows: Row[] = grid.map((g, i) => {
    const runs = runsOf[i]!;
    return {
      ...g,
      emu: mean(runs.map((r) => r.adapemu)),
      fu: mean(runs.map((r) => r.adapfu)),
      fuPerSeed: runs.map((r) => r.adapfu),
      base: mean(runs.map((r) => r.base)),
      alignment: `${runs[0]!.method.align_loss}${runs[0]!.method.public_data === 'corpus' ? ' (corpus)' : ''}`,
      proximal: runs[0]!.method.proximal_rule,
      mb: runs[0]!.client.peak_memory_mb ?? Number.NaN,
      bytesRound: runs[0]!.bytes_total / runs[0]!.rounds,
      stepS: mean(runs.map((r) => ({ s: r.client.mean_step_seconds }))).s!,
    };
  });
  const metrics = Object.keys(rows[0]?.fu ?? {});
  const first = metrics[0] ?? 'nll';
  const head = `| method | beta | adapter | ${metrics.map((m) => `AdapEmu ${m} | AdapFu ${m}`).join(' | ')} | AdapFu ${first} per seed | client MB | client s/step | bytes/round | alignment | proximal |`;
  const sep = `|${' --- |'.repeat(9 + 2 * metrics.length)}`;
  const f = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(4));
  const lines = rows.map(
    (r) =>
      `| ${r.method} | ${r.method === 'fedavg-full' ? '-' : r.beta} | ${r.method === 'fedavg-full' ? 'all' : r.method === 'fedot' || r.method === 'offsite' ? '2+2' : r.adapter} | ${metrics.map((m) => `${f(r.emu[m])} | ${f(r.fu[m])}`).join(' | ')} | ${r.fuPerSeed.map((x) => f(x?.[first])).join(', ')} | ${r.mb.toFixed(0)} | ${r.stepS.toFixed(3)} | ${fmtBytes(Math.round(r.bytesRound))} | ${r.alignment} | ${r.proximal} |`,
  );
  const base = rows[0]!.base;
  const partial =
    done.length < seeds.length
      ? ` (incomplete: seeds ${seeds.filter((x) => !done.includes(x)).join(', ')} did not run)`
      : '';
  const text = [
    `## Grid: ${task}, ${model ? path.relative(process.cwd(), model) || model : 'random model'}, seeds ${done.join(', ')}${partial}${quick ? ' (quick settings)' : ''}`,
    '',
    `Base model (no tuning): ${metrics.map((m) => `${m} ${f(base[m])}`).join(', ')}.`,
    '',
    head,
    sep,
    ...lines,
    '',
    `Generated by \`npm run bench:algorithms\` on ${new Date().toISOString().slice(0, 10)} (${os.cpus().length} cores)${extraSets.length ? ` with ${extraSets.map((x) => `\`--set ${x}\``).join(' ')}` : ''}.`,
    '',
  ].join('\n');
  // A results file that has the markers keeps everything around them (its reading of the numbers):
  // only the table between them is rewritten.
  const [begin, end] = ['<!-- bench:algorithms -->', '<!-- /bench:algorithms -->'];
  const old = fs.existsSync(outFile) ? fs.readFileSync(outFile, 'utf8') : '';
  const [at, to] = [old.indexOf(begin), old.indexOf(end)];
  const out =
    at >= 0 && to > at ? `${old.slice(0, at + begin.length)}\n${text}${old.slice(to)}` : `# Results\n\n${text}`;
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  fs.writeFileSync(outFile, out);
  process.stdout.write(text);
}
