// `fedbiot server --config FILE [--state DIR]` runs a FedBiOT server;
// `fedbiot server add-client NAME --state DIR [--admin]` registers a client and prints its token once;
// `fedbiot server export-shares --config FILE --out DIR` writes the simulated clients' data shares.
import type { Command } from 'commander';
import * as path from 'node:path';
import { loadConfig } from '../config/load.js';
import { setThreads } from '../tensor/engine.js';
import { FedServer, openDb } from '../fl/net/server.js';
import { exportShares } from '../fl/net/shares.js';
import { buildExperiment } from '../fl/experiment.js';

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

export function registerServer(program: Command): void {
  const server = program
    .command('server')
    .description('run a FedBiOT server for remote clients (see docs/deployment.md)')
    .option('--config <file>', 'YAML run configuration (with an optional server: section)')
    .option('--set <key=value>', 'override a config key (repeatable), e.g. --set server.port=9000', collect, [])
    .option('--state <dir>', 'state folder: database, checkpoints, compressed model, metrics', 'server-state')
    .action(async (opts: { config?: string; set: string[]; state: string }) => {
      if (!opts.config) throw new Error('fedbiot server: --config is required');
      const cfg = loadConfig(opts.config, opts.set);
      if (cfg.threads) setThreads(cfg.threads);
      const srv = new FedServer(cfg, path.resolve(opts.state), (l) => process.stdout.write(`[${new Date().toISOString()}] ${l}\n`));
      const stop = () => {
        process.stdout.write('interrupted: the next start resumes from the last completed round\n');
        void srv.close().finally(() => process.exit(130));
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      await srv.run();
    });

  server
    .command('add-client <name>')
    .description('register a client (or, with --admin, a status reader) and print its token once')
    .option('--state <dir>', 'the server state folder', 'server-state')
    .option('--config <file>', 'the server config (only to find server.dbPath)')
    .option('--admin', 'an admin token (for fedbiot status), not a training client')
    .action((name: string, opts: { state: string; config?: string; admin?: boolean }) => {
      const cfg = opts.config ? loadConfig(opts.config) : null;
      const db = openDb(cfg, path.resolve(opts.state));
      try {
        const token = db.addClient(name, opts.admin ? 'admin' : 'client');
        process.stdout.write(`${token}\n`);
        process.stderr.write(`${opts.admin ? 'admin' : 'client'} '${name}' registered; the token above is shown only once (the server keeps its hash)\n`);
      } finally {
        db.close();
      }
    });

  server
    .command('export-shares')
    .description("write each simulated client's training data as OUT/client-<i>.jsonl (demos, tests)")
    .requiredOption('--config <file>', 'YAML run configuration')
    .option('--set <key=value>', 'override a config key (repeatable)', collect, [])
    .requiredOption('--out <dir>', 'output folder')
    .action(async (opts: { config: string; set: string[]; out: string }) => {
      const exp = await buildExperiment(loadConfig(opts.config, opts.set));
      for (const f of exportShares(exp, opts.out)) process.stdout.write(`${f}\n`);
    });
}
