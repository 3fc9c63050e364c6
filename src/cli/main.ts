// The `fedbiot` command line. Each sub-command lives in its own module; this file wires them up.
import { Command, CommanderError } from 'commander';
import { registerSimulate } from './simulate.js';
import { registerTrainSmoke } from './train-smoke.js';
import { registerDemo } from './demo.js';
import { registerServer } from './server.js';
import { registerClient } from './client.js';
import { registerSplitData } from './split-data.js';
import { registerStatus } from './status.js';
import { registerPretrain } from './pretrain.js';
import { registerGenerate } from './generate.js';
import { registerScore } from './score.js';
import { registerExport } from './export.js';

export async function main(argv: string[]): Promise<number> {
  const program = new Command();
  program
    .name('fedbiot')
    .description('Federated fine-tuning of LLaMA-family models without sharing the full model (FedBiOT)')
    .option('--threads <n>', 'compute threads (default: FEDBIOT_THREADS or the number of cores)')
    .option(
      '--log-format <format>',
      'server and client logs: pretty (readable lines) or json (one object per line); default $FEDBIOT_LOG_FORMAT or pretty',
    )
    .option(
      '--log-level <level>',
      'fatal, error, warn, info, debug (every request) or trace; default $FEDBIOT_LOG_LEVEL or info',
    )
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  program.hook('preAction', async (cmd) => {
    const t = cmd.opts().threads as string | undefined;
    if (t) {
      const { setThreads } = await import('../tensor/engine.js');
      const n = Number(t);
      if (!Number.isInteger(n) || n < 1) throw new Error(`--threads must be a positive integer, got ${t}`);
      setThreads(n);
    }
  });
  registerSimulate(program);
  registerTrainSmoke(program);
  registerDemo(program);
  registerServer(program);
  registerClient(program);
  registerSplitData(program);
  registerStatus(program);
  registerPretrain(program);
  registerGenerate(program);
  registerScore(program);
  registerExport(program);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    throw e;
  }
}
