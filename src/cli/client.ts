// `fedbiot client --server URL --token TOKEN --data FILE [--format F] [--cache DIR]`: a data owner
// with its own training file; `fedbiot client --data FILE [--format F] --check` validates the file
// and prints its record count (the size to register with `fedbiot server add-client --samples`).
import { Option, type Command } from 'commander';
import * as path from 'node:path';
import { runClient } from '../fl/net/client.js';
import { loadClientData } from '../data/client-data.js';
import type { FormatOption } from '../data/loaders.js';
import { numberOption } from './options.js';
import { commandLogger } from './logging.js';
import { terminalProgress } from './progress.js';
import { addSecret, lineLogger } from '../ops/log.js';

export function registerClient(program: Command): void {
  program
    .command('client')
    .description('join a FedBiOT server, download the compressed model, and train in the rounds it is sampled for')
    .option('--server <url>', 'server URL, e.g. https://fl.example.org:8443')
    .option('--token <token>', 'client token from `fedbiot server add-client` (default: $FEDBIOT_TOKEN)')
    .requiredOption('--data <file>', "this client's own training data (JSONL/JSON records)")
    .addOption(
      new Option('--format <form>', 'the form of the records in --data (auto: detected per record)')
        .choices(['auto', 'alpaca', 'gsm8k', 'chat'])
        .default('auto'),
    )
    .option(
      '--check',
      'only check --data: report invalid records and print the count to register (add-client --samples); contacts no server',
    )
    .option('--cache <dir>', 'where the downloaded model and progress are kept between runs', '.fedbiot-cache')
    .option('--ca <file>', 'PEM certificate to trust (a self-signed server certificate)')
    .option('--chunk-bytes <n>', 'download chunk size in bytes')
    .option('--patience <seconds>', 'give up when the server is unreachable this long', '600')
    .option(
      '--noise-seed <n>',
      'local differential privacy: draw the noise from this seed instead of a random key (reproducible experiments; private only while the seed is secret)',
    )
    .action(
      async (
        opts: {
          server?: string;
          token?: string;
          data: string;
          format: FormatOption;
          check?: boolean;
          cache: string;
          ca?: string;
          chunkBytes?: string;
          patience: string;
          noiseSeed?: string;
        },
        cmd: Command,
      ) => {
        if (opts.check) {
          const own = loadClientData(opts.data, opts.format);
          for (const w of own.warnings) process.stderr.write(`warning: ${w}\n`);
          process.stdout.write(`${own.examples.length}\n`);
          process.stderr.write(
            `${opts.data}: ${own.examples.length} valid record(s); register this client with: fedbiot server add-client NAME --samples ${own.examples.length}\n`,
          );
          return;
        }
        if (!opts.server) throw new Error('fedbiot client: --server is required (or --check to only check --data)');
        const chunkBytes = numberOption(
          '--chunk-bytes',
          opts.chunkBytes,
          (x) => Number.isInteger(x) && x > 0,
          'a positive integer',
        );
        const patience = numberOption('--patience', opts.patience, (x) => x > 0, 'a positive number of seconds')!;
        const noiseSeed = numberOption('--noise-seed', opts.noiseSeed, (x) => Number.isInteger(x), 'an integer');
        const token = opts.token ?? process.env.FEDBIOT_TOKEN;
        if (!token) throw new Error('fedbiot client: give --token or set FEDBIOT_TOKEN');
        const logger = commandLogger(cmd, { role: 'client' });
        addSecret(logger, token);
        const log = lineLogger(logger);
        await runClient({
          server: opts.server,
          token,
          data: opts.data,
          format: opts.format,
          cache: path.resolve(opts.cache),
          ca: opts.ca,
          patienceSeconds: patience,
          noiseSeed,
          download: chunkBytes ? { chunkBytes } : undefined,
          log,
          progress: terminalProgress(),
          // A slow device, for testing deadlines: FEDBIOT_DEBUG_TRAIN_DELAY_MS=5000.
          trainDelayMs: Number(process.env.FEDBIOT_DEBUG_TRAIN_DELAY_MS ?? 0) || undefined,
        });
      },
    );
}
