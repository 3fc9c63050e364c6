// `fedbiot demo [--task math|code|qa] [--out DIR] [--model DIR] [--quick] [--test FILE]`: FedBiOT and its
// baselines on one task, then a comparison table (base, emulator, AdapEmu / AdapFu per method,
// client compute and traffic).
import type { Command } from 'commander';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../config/load.js';
import { buildExperiment } from '../fl/experiment.js';
import { runSimulation, type Summary } from '../fl/simulation.js';
import { fmtBytes, fmtMetric } from '../util/format.js';
import { ALGORITHMS } from '../fedbiot/algorithms.js';
import { terminalProgress } from './progress.js';
import { writeReport } from '../report/html.js';

/** The shipped base model (models/base in the package), when present. */
export function defaultDemoModel(): string | null {
  const dir = fileURLToPath(new URL('../../models/base', import.meta.url));
  return fs.existsSync(path.join(dir, 'config.json')) ? dir : null;
}

/**
 * The settings the demo (and `npm run bench:algorithms`) can run:
 * - default: the server aligns on public data from every task family, the clients' own included;
 * - domain-shift: the clients' task family is absent from the public data the server aligns on (it
 *   sees only the other families), rounds are twice as many so the adapter can drift away from where
 *   the emulator was aligned, and the emulator-to-full gap (AdapEmu NLL - AdapFu NLL on the clients'
 *   held-out task data) is measured after every round (`eval.drift`). The bi-level part of FedBiOT,
 *   re-aligning the emulator with the current adapter each round, is meant to matter here.
 */
export const DEMO_SETTINGS = ['default', 'domain-shift'] as const;
export type DemoSetting = (typeof DEMO_SETTINGS)[number];

/** The demo's settings: small enough for a 2-core machine in minutes. */
export function demoOverrides(
  task: string,
  model: string | null,
  quick: boolean,
  setting: DemoSetting = 'default',
): string[] {
  const o = [
    `data.task=${task}`,
    model
      ? `model.path=${model}`
      : 'model.random={hiddenSize: 64, intermediateSize: 172, numLayers: 8, numHeads: 4, numKvHeads: 2, maxPositionEmbeddings: 512}',
    'data.maxLength=320',
    'clients={count: 4, split: meta}',
    // FedBiOT's adapter is the last 4 layers: as many trainable layers as FedOT's 2 + 2, and at drop
    // rate 0.2 both emulators drop 2 of 8 layers, so the two differ only in where the adapter sits
    // and in FedBiOT's re-alignment. LoRA on every linear of the adapter (the q,v-only default moves
    // this small model too little to compare methods). Each method keeps its authors' alignment loss
    // and proximal weight (src/fedbiot/objectives.ts). Public data for FedBiOT's and FedOT's
    // alignment: every generated task family, the clients' own included (other instances, see
    // data.public.tasks); Offsite-Tuning distils on corpus text, as its authors do.
    'algorithm.adapterLayers=4',
    'algorithm.adapterLora={r: 8, alpha: 16, targets: [q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj]}',
  ];
  const publicData = (size: number) => `data.public={size: ${size}, tasks: [math, code, qa]}`;
  const align = (batchSize: number) => `algorithm.align={batchSize: ${batchSize}, optimizer: {kind: adamw, lr: 0.003}}`;
  const local = (steps: number, batchSize: number) =>
    `algorithm.local={steps: ${steps}, batchSize: ${batchSize}, optimizer: {kind: adamw, lr: 0.003}}`;
  if (quick) {
    o.push(
      'rounds=2',
      'data.trainSize=48',
      'data.testSize=6',
      publicData(24),
      'algorithm.preAlignSteps=8',
      'algorithm.alignStepsPerRound=2',
      align(2),
      local(3, 2),
      'eval={every: 1, maxExamples: 6, maxNewTokens: 12}',
    );
  } else {
    o.push(
      'rounds=4',
      'data.trainSize=400',
      'data.testSize=40',
      publicData(200),
      'algorithm.preAlignSteps=100',
      'algorithm.alignStepsPerRound=10',
      align(4),
      local(16, 4),
      'eval={every: 1, maxExamples: 40, maxNewTokens: 40}',
    );
  }
  if (setting === 'domain-shift') {
    const others = ['math', 'code', 'qa'].filter((t) => t !== task);
    o.push(`data.public.tasks=[${others.join(', ')}]`, `rounds=${quick ? 3 : 8}`, 'eval.drift=true');
  } else if (setting !== 'default') {
    throw new Error(`unknown setting '${String(setting)}' (known: ${DEMO_SETTINGS.join(', ')})`);
  }
  return o;
}

export function comparisonTable(rows: Summary[]): string {
  const metricKeys = [...new Set(rows.flatMap((r) => Object.keys(r.adapfu)))];
  const header = [
    'method',
    'view',
    ...metricKeys,
    'client s/step',
    'client MB',
    'bytes/round',
    'alignment',
    'proximal',
  ];
  const lines: string[][] = [];
  const first = rows[0];
  if (first) {
    lines.push(['base model', 'full', ...metricKeys.map((k) => fmtMetric(first.base[k])), '-', '-', '-', '-', '-']);
    const withEmu = rows.find((r) => r.emulator);
    if (withEmu?.emulator)
      lines.push([
        `emulator (${withEmu.algorithm})`,
        'compressed',
        ...metricKeys.map((k) => fmtMetric(withEmu.emulator![k])),
        '-',
        '-',
        '-',
        '-',
        '-',
      ]);
  }
  for (const r of rows) {
    const perRound = fmtBytes(Math.round(r.bytes_total / Math.max(1, r.rounds)));
    const alignment = r.method.align_objective
      ? `${r.method.align_loss}${r.method.public_data === 'corpus' ? ' (corpus)' : ''}`
      : r.method.align_loss;
    const cost = [
      r.client.mean_step_seconds.toFixed(3),
      (r.client.peak_memory_mb ?? Number.NaN).toFixed(0),
      perRound,
      alignment,
      r.method.proximal_rule ?? String(r.method.proximal),
    ];
    lines.push([r.algorithm, 'AdapEmu', ...metricKeys.map((k) => fmtMetric(r.adapemu[k])), ...cost]);
    lines.push([r.algorithm, 'AdapFu', ...metricKeys.map((k) => fmtMetric(r.adapfu[k])), ...cost]);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const row = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  return [row(header), widths.map((w) => '-'.repeat(w)).join('  '), ...lines.map(row)].join('\n');
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('FedBiOT and its baselines on one task, with a comparison table')
    .option('--task <task>', 'math, code or qa', 'math')
    .option('--out <dir>', 'output folder', 'runs/demo')
    .option('--model <dir>', 'a Hugging Face model folder (default: the shipped base model, else a small random one)')
    .option('--algorithms <list>', 'comma-separated subset of ' + ALGORITHMS.join(','), ALGORITHMS.join(','))
    .option('--quick', 'a smaller, faster run')
    .option('--setting <name>', `${DEMO_SETTINGS.join(' or ')} (see docs/results.md)`, 'default')
    .option(
      '--test <file>',
      "a test file (JSONL/JSON) instead of the generated test split; GSM8K records are scored on the final answer after '####'",
    )
    .action(
      async (o: {
        task: string;
        out: string;
        model?: string;
        algorithms: string;
        quick?: boolean;
        test?: string;
        setting: string;
      }) => {
        if (!['math', 'code', 'qa'].includes(o.task))
          throw new Error(`--task must be math, code or qa, got '${o.task}'`);
        const algos = o.algorithms.split(',').map((s) => s.trim());
        for (const a of algos)
          if (!(ALGORITHMS as readonly string[]).includes(a))
            throw new Error(`--algorithms: unknown algorithm '${a}' (known: ${ALGORITHMS.join(', ')})`);
        const progress = terminalProgress();
        const rows: Summary[] = [];
        for (const name of algos) {
          const cfg = loadConfig(null, [
            ...demoOverrides(o.task, o.model ?? defaultDemoModel(), o.quick ?? false, o.setting as DemoSetting),
            `algorithm.name=${name}`,
            ...(o.test ? [`data.test=${JSON.stringify(o.test)}`] : []),
          ]);
          progress.log(`=== ${name} ===`);
          const exp = await buildExperiment(cfg);
          // The base model's evaluation is the same for every method: compute it once.
          const s = await runSimulation(exp, { outDir: path.join(o.out, name), progress, baseEval: rows[0]?.base });
          if (s) rows.push(s);
        }
        const table = comparisonTable(rows);
        fs.mkdirSync(o.out, { recursive: true });
        fs.writeFileSync(path.join(o.out, 'table.txt'), table + '\n');
        fs.writeFileSync(path.join(o.out, 'summaries.json'), JSON.stringify(rows, null, 2) + '\n');
        process.stdout.write(`\n${table}\n\nresults in ${o.out}\n`);
        const html = writeReport(o.out);
        process.stdout.write(`report: ${html}\n`);
      },
    );
}
