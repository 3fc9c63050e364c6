// `npm run bench:algorithms [-- --model DIR|random] [--seeds 0,1,2] [--quick] [--default-only] [--methods a,b]
//   [--task T | --tasks a,b] [--betas 0.2,0.5] [--adapters 2,4] [--setting default|domain-shift]
//   [--comparison] [--dry-run] [--out FILE] [--json FILE] [--set key=value ...]`
//
// FedBiOT and its baselines over a grid of drop rates (beta), adapter sizes, seeds, methods and task
// families, each run a `fedbiot demo` run (src/cli/demo.ts settings) through the one simulation
// driver. Writes the results file: a Markdown table per task family (docs/results.md unless --out;
// in a file with <!-- bench:algorithms --> markers, only the part between them)
// and the same numbers as JSON (--json, default: the Markdown path with .json), per seed and their
// means, rewritten after each seed so an interrupted run keeps the seeds that completed. No number
// in either file is edited by hand; the reading of the results lives in a separate doc.
//
// Without --comparison the grid is the methods at the demo's task: FedBiOT at adapters 2 and 4, the
// others at 4 (FedOT / offsite: 2+2). --comparison is the whole comparison: tasks math, code and qa
// (accuracy, pass@1 in the sandbox, Rouge-L, NLL everywhere), beta 0.2 / 0.5, adapter 2 / 4 for every
// split method (FedOT / offsite: half below, half above), seeds 0-2, methods fedbiot, fedbiot-noalign
// (FedBiOT without re-aligning the emulator each round), fedot, offsite, fedavg-full and local, with
// the emulator-to-full gap recorded every round; it writes docs/results-grid.md / .json unless --out.
// --dry-run lists the runs (every config validated) and runs none; --quick uses the demo's quick
// settings; --model random uses the demo's small random model.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfig } from '../src/config/load.js';
import { buildExperiment } from '../src/fl/experiment.js';
import { runSimulation, type Summary } from '../src/fl/simulation.js';
import { fmtBytes } from '../src/util/format.js';
import { DEMO_SETTINGS, demoOverrides, defaultDemoModel, type DemoSetting } from '../src/cli/demo.js';

function arg(name: string, fallback: string | null): string | null {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}
const flag = (name: string) => process.argv.includes(`--${name}`);
const list = (name: string, fallback: string) => (arg(name, fallback) ?? fallback).split(',').map((s) => s.trim());

const comparison = flag('comparison');
const modelArg = arg('model', null);
const model = modelArg === 'random' ? null : (modelArg ?? defaultDemoModel());
const seeds = list('seeds', '0,1,2').map(Number);
const quick = flag('quick');
const dryRun = flag('dry-run');
const outFile = arg('out', path.join('docs', comparison ? 'results-grid.md' : 'results.md'))!;
const jsonFile = arg('json', outFile.replace(/\.md$/i, '') + '.json')!;
const tasks = arg('tasks', null)?.split(',') ?? (comparison ? ['math', 'code', 'qa'] : [arg('task', 'math')!]);
const setting = (arg('setting', 'default') ?? 'default') as DemoSetting;
// --default-only: one row per method at the demo's setting (beta 0.2, adapter 4 / 2+2).
const defaultOnly = flag('default-only');
const SPLIT_METHODS = ['fedbiot', 'fedbiot-noalign', 'fedot', 'offsite', 'local'];
const METHODS = [...SPLIT_METHODS, 'fedavg-full'];
const methods = list('methods', comparison ? METHODS.join(',') : 'fedbiot,fedot,offsite,local,fedavg-full');
const betas = list('betas', defaultOnly ? '0.2' : '0.2,0.5').map(Number);
const adapters = list('adapters', defaultOnly ? '4' : '2,4').map(Number);
// --set key=value (repeatable): extra config overrides on top of the demo's settings.
const extraSets = process.argv.flatMap((a, i) => (a === '--set' && process.argv[i + 1] ? [process.argv[i + 1]!] : []));

for (const t of tasks) if (!['math', 'code', 'qa'].includes(t)) throw new Error(`--tasks: unknown task '${t}'`);
for (const m of methods)
  if (!METHODS.includes(m)) throw new Error(`--methods: unknown method '${m}' (known: ${METHODS.join(', ')})`);
if (!(DEMO_SETTINGS as readonly string[]).includes(setting))
  throw new Error(`--setting: unknown setting '${setting}' (known: ${DEMO_SETTINGS.join(', ')})`);
for (const s of seeds) if (!Number.isInteger(s) || s < 0) throw new Error(`--seeds: '${s}' is not a seed`);
for (const b of betas) if (!(b >= 0 && b < 1)) throw new Error(`--betas: '${b}' is not a drop rate in [0, 1)`);
for (const a of adapters) if (!(Number.isInteger(a) && a >= 2)) throw new Error(`--adapters: '${a}' is not >= 2`);

/** One row of the results: a method at one beta and adapter size on one task. */
interface Cell {
  task: string;
  /** The method as reported (fedbiot-noalign is fedbiot with no re-alignment steps). */
  method: string;
  beta: number;
  adapter: number;
  /** FedOT / offsite: layers below and above the emulator, e.g. "2+2". */
  layout: string;
  overrides: string[];
}

function cellOf(task: string, method: string, beta: number, adapter: number): Cell {
  const o = [`algorithm.name=${method === 'fedbiot-noalign' ? 'fedbiot' : method}`];
  let layout = String(adapter);
  if (method === 'fedavg-full') layout = 'all';
  else o.push(`algorithm.dropRate=${beta}`);
  if (method === 'fedbiot' || method === 'fedbiot-noalign' || method === 'local')
    o.push(`algorithm.adapterLayers=${adapter}`);
  if (method === 'fedot' || method === 'offsite') {
    const first = Math.floor(adapter / 2);
    layout = `${first}+${adapter - first}`;
    o.push(`algorithm.offsiteLayers={first: ${first}, last: ${adapter - first}}`);
  }
  if (method === 'fedbiot-noalign') o.push('algorithm.alignStepsPerRound=0');
  return {
    task,
    method,
    beta: method === 'fedavg-full' ? 0 : beta,
    adapter: method === 'fedavg-full' ? 0 : adapter,
    layout,
    overrides: o,
  };
}

const grid: Cell[] = [];
for (const task of tasks) {
  for (const beta of betas) {
    if (comparison) {
      for (const adapter of adapters)
        for (const m of SPLIT_METHODS) if (methods.includes(m)) grid.push(cellOf(task, m, beta, adapter));
    } else {
      // The methods at the demo's adapter (4; FedOT / offsite 2+2), FedBiOT at every size.
      for (const adapter of adapters)
        for (const m of ['fedbiot', 'fedbiot-noalign'])
          if (methods.includes(m)) grid.push(cellOf(task, m, beta, adapter));
      for (const m of ['fedot', 'offsite', 'local']) if (methods.includes(m)) grid.push(cellOf(task, m, beta, 4));
    }
  }
  if (methods.includes('fedavg-full')) grid.push(cellOf(task, 'fedavg-full', 0, 0));
}

function configOf(c: Cell, seed: number) {
  const o = [
    ...demoOverrides(c.task, model, quick, setting),
    ...(comparison ? ['eval.drift=true'] : []),
    ...extraSets,
    `seed=${seed}`,
    ...c.overrides,
  ];
  return loadConfig(null, o);
}

const runName = (c: Cell, seed: number) => `${c.task}-${c.method}-${c.beta}-${c.adapter}-${seed}`;

if (dryRun) {
  // Every config is built and validated; nothing runs.
  for (const seed of seeds) for (const c of grid) configOf(c, seed);
  process.stdout.write(
    `${grid.length * seeds.length} runs (${grid.length} settings x ${seeds.length} seeds), results to ${outFile} and ${jsonFile}:\n`,
  );
  for (const seed of seeds)
    for (const c of grid) process.stdout.write(`${runName(c, seed)}\t${c.overrides.join(' ')}\n`);
  process.exit(0);
}

function mean(xs: readonly Record<string, number>[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of Object.keys(xs[0] ?? {})) out[k] = xs.reduce((a, x) => a + (x[k] ?? Number.NaN), 0) / xs.length;
  return out;
}

// The untuned base model's evaluation does not depend on the method or seed (same test set): once per task.
const baseEval = new Map<string, Summary['base']>();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fedbiot-bench-alg-'));
// Seeds run outermost, the demo's setting (beta 0.2, adapter 4, fedavg-full) first in each, and the
// results are rewritten after every run, so an interrupted run leaves every number it reached and
// names the runs it did not.
const runsOf: { seed: number; s: Summary }[][] = grid.map(() => []);
const done: number[] = [];
const demoSetting = (c: Cell) => c.method === 'fedavg-full' || (c.beta === 0.2 && c.adapter === 4);
const order = [...grid.keys()].sort((a, b) => Number(!demoSetting(grid[a]!)) - Number(!demoSetting(grid[b]!)));
for (const seed of seeds) {
  for (const i of order) {
    const c = grid[i]!;
    process.stderr.write(`${c.task} ${c.method} beta=${c.beta} adapter=${c.layout} seed=${seed}\n`);
    const s = await runSimulation(await buildExperiment(configOf(c, seed)), {
      outDir: path.join(tmp, runName(c, seed)),
      baseEval: baseEval.get(c.task),
    });
    if (s) {
      runsOf[i]!.push({ seed, s });
      if (!baseEval.has(c.task)) baseEval.set(c.task, s.base);
    }
    if (i === order[order.length - 1]) done.push(seed);
    writeResults();
  }
}
fs.rmSync(tmp, { recursive: true, force: true });

/** The last drift point's gap (AdapEmu NLL - AdapFu NLL after the last round). */
function finalGap(s: Summary): number {
  return s.drift?.[s.drift.length - 1]?.gap ?? Number.NaN;
}

function writeResults(): void {
  const cells = grid
    .map((c, i) => ({ c, runs: runsOf[i]! }))
    .filter((x) => x.runs.length > 0)
    .map(({ c, runs }) => {
      const first = runs[0]!.s;
      return {
        task: c.task,
        method: c.method,
        beta: c.beta,
        adapter: c.adapter,
        layout: c.layout,
        alignment: `${first.method.align_loss}${first.method.public_data === 'corpus' ? ' (corpus)' : ''}`,
        proximal: first.method.proximal_rule,
        realign_steps: first.method.realign_steps,
        mean: {
          adapemu: mean(runs.map((r) => r.s.adapemu)),
          adapfu: mean(runs.map((r) => r.s.adapfu)),
          final_gap: runs.reduce((a, r) => a + finalGap(r.s), 0) / runs.length,
          client_mb: runs.reduce((a, r) => a + (r.s.client.peak_memory_mb ?? Number.NaN), 0) / runs.length,
          step_seconds: runs.reduce((a, r) => a + r.s.client.mean_step_seconds, 0) / runs.length,
          bytes_per_round: runs.reduce((a, r) => a + r.s.bytes_total / r.s.rounds, 0) / runs.length,
        },
        seeds: runs.map(({ seed, s }) => ({
          seed,
          base: s.base,
          emulator: s.emulator,
          adapemu: s.adapemu,
          adapfu: s.adapfu,
          drift: s.drift ?? null,
          rounds: s.rounds,
          bytes_total: s.bytes_total,
          client: s.client,
          seconds: s.seconds,
        })),
      };
    });
  const missing = seeds.filter((x) => !done.includes(x));
  const missingRuns = grid.flatMap((c, i) =>
    seeds.filter((seed) => !runsOf[i]!.some((r) => r.seed === seed)).map((seed) => runName(c, seed)),
  );
  const modelName = model ? path.relative(process.cwd(), model) || model : 'random model';
  const command = `npm run bench:algorithms -- ${process.argv.slice(2).join(' ')}`.trim();
  const json = {
    command,
    generated: new Date().toISOString(),
    cores: os.cpus().length,
    model: modelName,
    setting,
    quick,
    seeds: done,
    missing_seeds: missing,
    missing_runs: missingRuns,
    overrides: extraSets,
    base: Object.fromEntries(baseEval),
    cells,
  };
  const f = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(4));
  const sections: string[] = [];
  for (const task of tasks) {
    const rows = cells.filter((x) => x.task === task);
    if (rows.length === 0) continue;
    // Every metric but perplexity (a function of NLL); per seed for AdapFu.
    const metrics = [...new Set(rows.flatMap((r) => Object.keys(r.mean.adapfu)))].filter((m) => m !== 'ppl');
    const withGap = rows.some((r) => Number.isFinite(r.mean.final_gap));
    const head = `| method | beta | adapter | ${metrics.map((m) => `AdapEmu ${m} | AdapFu ${m} | AdapFu ${m} per seed`).join(' | ')} |${withGap ? ' gap |' : ''} client MB | client s/step | bytes/round | alignment | proximal |`;
    const sep = `|${' --- |'.repeat(head.split('|').length - 2)}`;
    const lines = rows.map(
      (r) =>
        `| ${r.method} | ${r.method === 'fedavg-full' ? '-' : r.beta} | ${r.layout} | ${metrics.map((m) => `${f(r.mean.adapemu[m])} | ${f(r.mean.adapfu[m])} | ${r.seeds.map((x) => f(x.adapfu[m])).join(', ')}`).join(' | ')} |${withGap ? ` ${f(r.mean.final_gap)} |` : ''} ${r.mean.client_mb.toFixed(0)} | ${r.mean.step_seconds.toFixed(3)} | ${fmtBytes(Math.round(r.mean.bytes_per_round))} | ${r.alignment} | ${r.proximal} |`,
    );
    const base = baseEval.get(task);
    sections.push(
      ...(tasks.length > 1 ? [`### ${task}`, ''] : []),
      `Base model (no tuning): ${
        base
          ? Object.keys(base)
              .map((m) => `${m} ${f(base[m])}`)
              .join(', ')
          : '-'
      }.`,
      '',
      head,
      sep,
      ...lines,
      '',
    );
  }
  const partial = missing.length ? ` (incomplete: seeds ${missing.join(', ')} did not finish)` : '';
  const text = [
    `## Grid: ${tasks.join(', ')}, ${modelName}, seeds ${done.join(', ')}${partial}${quick ? ' (quick settings)' : ''}${setting !== 'default' ? `, setting ${setting}` : ''}`,
    '',
    ...(missingRuns.length ? [`Runs that did not finish: ${missingRuns.join(', ')}.`, ''] : []),
    'Each row: the mean over seeds (AdapFu also per seed, in seed order); lower NLL is better.' +
      (comparison
        ? ' Gap: AdapEmu NLL - AdapFu NLL after the last round (the emulator-to-full gap; per round in the JSON).'
        : ''),
    '',
    ...sections,
    `Generated by \`${command}\` on ${new Date().toISOString().slice(0, 10)} (${os.cpus().length} cores); the numbers per seed and per round are in \`${path.basename(jsonFile)}\`.`,
    '',
  ].join('\n');
  // A results file that has the markers keeps everything around them (its reading of the numbers):
  // only the tables between them are rewritten.
  const [begin, end] = ['<!-- bench:algorithms -->', '<!-- /bench:algorithms -->'];
  const old = fs.existsSync(outFile) ? fs.readFileSync(outFile, 'utf8') : '';
  const [at, to] = [old.indexOf(begin), old.indexOf(end)];
  const out =
    at >= 0 && to > at ? `${old.slice(0, at + begin.length)}\n${text}${old.slice(to)}` : `# Results\n\n${text}`;
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  fs.writeFileSync(outFile, out);
  fs.mkdirSync(path.dirname(jsonFile), { recursive: true });
  fs.writeFileSync(jsonFile, JSON.stringify(json, null, 2) + '\n');
  process.stdout.write(text);
}
