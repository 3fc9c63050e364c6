// `fedbiot server --config FILE [--state DIR]` runs a FedBiOT server;
// `fedbiot server add-client NAME --state DIR [--admin]` registers a client and prints its token once;
// `fedbiot server remove-client NAME --state DIR` revokes a token (a running server refuses it at once);
// `fedbiot server list-clients --state DIR` lists the registered clients.
// The server's config names no client data: each client brings its own file (`fedbiot client`).
import type { Command } from 'commander';
import * as path from 'node:path';
import { loadConfig } from '../config/load.js';
import { setThreads } from '../tensor/engine.js';
import { FedServer, openDb } from '../fl/net/server.js';
import { collectRepeated, numberOption } from './options.js';
import { commandLogger } from './logging.js';
import { lineLogger } from '../ops/log.js';

/**
 * The database of `server <sub> ... --state DIR [--config FILE]`: commander hands --state and
 * --config to the parent `server` command, wherever they appear, so read them from there.
 */
function dbOf(cmd: Command) {
  const o = cmd.optsWithGlobals<{ state: string; config?: string; set?: string[] }>();
  const cfg = o.config ? loadConfig(o.config, o.set ?? []) : null;
  return openDb(cfg, path.resolve(o.state));
}

export function registerServer(program: Command): void {
  const server = program
    .command('server')
    .description('run a FedBiOT server for remote clients (see docs/deployment.md)')
    .option('--config <file>', 'YAML run configuration (with an optional server: section)')
    .option('--set <key=value>', 'override a config key (repeatable), e.g. --set server.port=9000', collectRepeated, [])
    .option('--state <dir>', 'state folder: database, checkpoints, compressed model, metrics', 'server-state')
    .option(
      '--max-round-extensions <n>',
      'deadline extensions for a round short of minClients uploads (shorthand for --set server.maxRoundExtensions=N; default 2)',
    )
    .action(
      async (opts: { config?: string; set: string[]; state: string; maxRoundExtensions?: string }, cmd: Command) => {
        if (!opts.config) throw new Error('fedbiot server: --config is required');
        // The shorthand goes through the config schema like any other override, so it is checked once.
        const sets =
          opts.maxRoundExtensions === undefined
            ? opts.set
            : [...opts.set, `server.maxRoundExtensions=${opts.maxRoundExtensions}`];
        const cfg = loadConfig(opts.config, sets);
        if (cfg.threads) setThreads(cfg.threads);
        const logger = commandLogger(cmd, { role: 'server' });
        const srv = new FedServer(cfg, path.resolve(opts.state), lineLogger(logger), { logger });
        const stop = () => {
          logger.warn('interrupted: the next start resumes from the last completed round');
          void srv.close().finally(() => process.exit(130));
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        await srv.run();
      },
    );

  server
    .command('add-client <name>')
    .description('register a client (or, with --admin, a status reader) and print its token once')
    .option('--admin', 'an admin token (for fedbiot status), not a training client')
    .option(
      '--samples <n>',
      "the client's data size: its FedAvg weight (what it reports is capped at it); without it, rounds it is in weigh clients equally",
    )
    .action((name: string, opts: { admin?: boolean; samples?: string }, cmd: Command) => {
      const samples = numberOption(
        '--samples',
        opts.samples,
        (x) => Number.isSafeInteger(x) && x > 0,
        'a positive integer',
      );
      const db = dbOf(cmd);
      try {
        const token = db.addClient(name, opts.admin ? 'admin' : 'client', samples);
        process.stdout.write(`${token}\n`);
        process.stderr.write(
          `${opts.admin ? 'admin' : 'client'} '${name}' registered; the token above is shown only once (the server keeps its hash)\n`,
        );
      } finally {
        db.close();
      }
    });

  server
    .command('remove-client <name>')
    .description('revoke a client (or admin) token; a running server refuses it from its next request on')
    .action((name: string, _opts: unknown, cmd: Command) => {
      const db = dbOf(cmd);
      try {
        if (!db.removeClient(name)) {
          const known = db.clients().some((c) => c.name === name);
          throw new Error(
            known
              ? `client '${name}' is already revoked`
              : `no client named '${name}' (see \`fedbiot server list-clients\`)`,
          );
        }
        process.stdout.write(
          `client '${name}' revoked: its token is refused from now on (a running server checks every request); its uploads already aggregated stay in past rounds\n`,
        );
      } finally {
        db.close();
      }
    });

  server
    .command('list-clients')
    .description('list registered clients and admins: role, status, last seen, uploads')
    .action((_opts: unknown, cmd: Command) => {
      const db = dbOf(cmd);
      try {
        const iso = (t: number | null) => (t ? new Date(t).toISOString() : 'never');
        for (const c of db.clients()) {
          const st = c.revoked_at !== null ? `revoked ${iso(c.revoked_at)}` : 'active';
          process.stdout.write(
            `${c.name.padEnd(16)} ${c.role.padEnd(6)} ${st.padEnd(32)} last seen ${iso(c.last_seen)}  uploads ${db.uploadCount(c.name)}\n`,
          );
        }
      } finally {
        db.close();
      }
    });
}
