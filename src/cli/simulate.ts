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
import { collectRepeated, numberOption } from './options.js';
import { createRunOps } from '../ops/run-ops.js';
import { serveOps } from '../ops/http.js';
import { federationToOps, replayMetrics } from '../fl/ops-bridge.js';

export function formatSummary(s: Summary): string {
  const fmt = (r: Record<string, number> | null) =>
    r
      ? Object.entries(r)
          .map(([k, v]) => `${k}=${Number.isFinite(v) ? v.toFixed(4) : v}`)
          .join(' ')
      : '-';
  return [
    `algorithm ${s.algorithm}, ${s.rounds} rounds, ${s.seconds.toFixed(1)} s`,
    `  base model     ${fmt(s.base)}`,
    `  emulator       ${fmt(s.emulator)}`,
    `  AdapEmu        ${fmt(s.adapemu)}`,
    `  AdapFu         ${fmt(s.adapfu)}`,
    `  traffic        down ${fmtBytes(s.bytes_down_total)}, up ${fmtBytes(s.bytes_up_total)}, join ${fmtBytes(s.bytes_join_per_client)} per client`,
    `  client         ${s.client.model_params.toLocaleString('en-US')} params held, ${s.client.trainable_params.toLocaleString('en-US')} trained, ${s.client.mean_step_seconds.toFixed(3)} s/step, ${s.client.peak_memory_mb === null ? '-' : s.client.peak_memory_mb.toFixed(0)} MB peak (weights, LoRA state, measured activations)`,
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
    .option(
      '--dashboard [port]',
      'serve the live dashboard (and /metrics) on http://127.0.0.1:PORT/dashboard (default: a free port)',
    )
    .action(
      async (opts: { config: string; set: string[]; out?: string; resume?: boolean; dashboard?: string | boolean }) => {
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
        let dashboard: Awaited<ReturnType<typeof serveOps>> | null = null;
        try {
          const exp = await buildExperiment(cfg);
          for (const w of exp.warnings) progress.log(`warning: ${w}`);
          progress.log(
            `model ${exp.modelSource}: ${exp.base.config.numLayers} layers, d=${exp.base.config.hiddenSize}; ${exp.train.length} train / ${exp.test.length} test examples; ${exp.clients.length} client(s)`,
          );
          progress.log(exp.splitTable);
          let onEvent: ReturnType<typeof federationToOps> | undefined;
          if (opts.dashboard !== undefined) {
            const port =
              typeof opts.dashboard !== 'string'
                ? 0
                : numberOption(
                    '--dashboard',
                    opts.dashboard,
                    (x) => Number.isInteger(x) && x >= 0 && x < 65536,
                    'a port number',
                  )!;
            const ops = createRunOps({ onError: (e) => progress.log(`warning: dashboard: ${(e as Error).message}`) });
            ops.events.emit({
              type: 'run',
              mode: 'simulation',
              algorithm: cfg.algorithm.name,
              rounds: cfg.rounds,
              completedRounds: 0,
              clients: exp.clients.map((_, i) => String(i)),
            });
            if (opts.resume) replayMetrics(ops.events, path.join(out, 'metrics.jsonl'));
            dashboard = await serveOps({ ...ops, port });
            progress.log(`dashboard: ${dashboard.url}/dashboard (metrics at ${dashboard.url}/metrics)`);
            onEvent = federationToOps(ops.events, { bytesFromEntries: true });
          }
          const summary = await runSimulation(exp, {
            outDir: out,
            resume: opts.resume,
            progress,
            shouldStop: () => stop,
            hooks: onEvent ? { onEvent } : undefined,
          });
          if (!summary) {
            process.exitCode = 130;
            return;
          }
          process.stdout.write(formatSummary(summary) + '\n');
          process.stdout.write(`results in ${out} (report: ${writeRunReport(out)})\n`);
        } finally {
          await dashboard?.close();
          process.off('SIGINT', onSigint);
        }
      },
    );
}
