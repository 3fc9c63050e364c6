// `fedbiot simulate --config FILE [--set k=v ...] [--out DIR] [--resume]`
import type { Command } from 'commander';
import * as path from 'node:path';
import { loadConfig } from '../config/load.js';
import { buildExperiment } from '../fl/experiment.js';
import { runSimulation, type Summary } from '../fl/simulation.js';
import { fmtBytes } from '../util/format.js';
import { terminalProgress } from './progress.js';
import { setThreads } from '../tensor/engine.js';
import { writeRunReport } from '../report/html.js';
import { collectRepeated } from './options.js';

export function formatSummary(s: Summary): string {
  const fmt = (r: Record<string, number> | null) => (r ? Object.entries(r).map(([k, v]) => `${k}=${Number.isFinite(v) ? v.toFixed(4) : v}`).join(' ') : '-');
  return [
    `algorithm ${s.algorithm}, ${s.rounds} rounds, ${s.seconds.toFixed(1)} s`,
    `  base model     ${fmt(s.base)}`,
    `  emulator       ${fmt(s.emulator)}`,
    `  AdapEmu        ${fmt(s.adapemu)}`,
    `  AdapFu         ${fmt(s.adapfu)}`,
    `  traffic        down ${fmtBytes(s.bytes_down_total)}, up ${fmtBytes(s.bytes_up_total)}, join ${fmtBytes(s.bytes_join_per_client)} per client`,
    `  client         ${s.client.model_params.toLocaleString('en-US')} params held, ${s.client.trainable_params.toLocaleString('en-US')} trained, ${s.client.mean_step_seconds.toFixed(3)} s/step, ${s.client.peak_memory_mb === null ? "-" : s.client.peak_memory_mb.toFixed(0)} MB peak (weights, LoRA state, measured activations)`,
  ].join('\n');
}

export function registerSimulate(program: Command): void {
  program
    .command('simulate')
    .description('run a federated experiment with all clients in one process')
    .requiredOption('--config <file>', 'YAML run configuration')
    .option('--set <key=value>', 'override a config key (repeatable), e.g. --set rounds=3', collectRepeated, [])
    .option('--out <dir>', 'output folder (metrics.jsonl, checkpoints, adapter, summary.json)')
    .option('--resume', 'continue from the last completed round in --out')
    .action(async (opts: { config: string; set: string[]; out?: string; resume?: boolean }) => {
      const cfg = loadConfig(opts.config, opts.set);
      if (cfg.threads) setThreads(cfg.threads);
      const out = opts.out ?? path.join('runs', path.basename(opts.config).replace(/\.[^.]+$/, ''));
      const progress = terminalProgress();
      let stop = false;
      const onSigint = () => {
        if (stop) process.exit(130);
        stop = true;
        progress.log('interrupt: finishing the current client, then stopping (Ctrl-C again to abort now)');
      };
      process.on('SIGINT', onSigint);
      try {
        const exp = await buildExperiment(cfg);
        for (const w of exp.warnings) progress.log(`warning: ${w}`);
        progress.log(`model ${exp.modelSource}: ${exp.base.config.numLayers} layers, d=${exp.base.config.hiddenSize}; ${exp.train.length} train / ${exp.test.length} test examples; ${exp.clients.length} client(s)`);
        progress.log(exp.splitTable);
        const summary = await runSimulation(exp, { outDir: out, resume: opts.resume, progress, shouldStop: () => stop });
        if (!summary) {
          process.exitCode = 130;
          return;
        }
        process.stdout.write(formatSummary(summary) + '\n');
        process.stdout.write(`results in ${out} (report: ${writeRunReport(out)})\n`);
      } finally {
        process.off('SIGINT', onSigint);
      }
    });
}
