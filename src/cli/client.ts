// `fedbiot client --server URL --token TOKEN --data FILE [--cache DIR]`
import type { Command } from 'commander';
import * as path from 'node:path';
import { runClient } from '../fl/net/client.js';
import { numberOption } from './options.js';
import { commandLogger } from './logging.js';
import { terminalProgress } from './progress.js';
import { addSecret, lineLogger } from '../ops/log.js';

export function registerClient(program: Command): void {
  program
    .command('client')
    .description('join a FedBiOT server, download the compressed model, and train in the rounds it is sampled for')
    .requiredOption('--server <url>', 'server URL, e.g. https://fl.example.org:8443')
    .option('--token <token>', 'client token from `fedbiot server add-client` (default: $FEDBIOT_TOKEN)')
    .requiredOption('--data <file>', 'local training data (JSONL/JSON: alpaca, gsm8k or chat records)')
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
          server: string;
          token?: string;
          data: string;
          cache: string;
          ca?: string;
          chunkBytes?: string;
          patience: string;
          noiseSeed?: string;
        },
        cmd: Command,
      ) => {
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
