// `fedbiot split-data --config FILE --out DIR`: deals a run's training data (data.train or data.task)
// into the simulation's client shares and writes them as OUT/client-<i>.jsonl, one file per data
// owner, with each file's record count (the size to register with `fedbiot server add-client
// --samples`). For demos and tests of a deployment that reproduces `fedbiot simulate`: the client
// named `i` with file `i` trains on the simulated client `i`'s batches. The server never reads them.
import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { writeShares } from '../data/client-data.js';
import { buildExperiment, clientShares } from '../fl/experiment.js';
import { collectRepeated } from './options.js';

export function registerSplitData(program: Command): void {
  program
    .command('split-data')
    .description("write the simulation's client shares of a config's training data as OUT/client-<i>.jsonl")
    .requiredOption('--config <file>', 'YAML run configuration (data.train or data.task, clients.*)')
    .option('--set <key=value>', 'override a config key (repeatable)', collectRepeated, [])
    .requiredOption('--out <dir>', 'output folder')
    .action(async (o: { config: string; set: string[]; out: string }) => {
      const exp = await buildExperiment(loadConfig(o.config, o.set));
      for (const w of exp.warnings) process.stderr.write(`warning: ${w}\n`);
      for (const s of writeShares(clientShares(exp), o.out)) process.stdout.write(`${s.file}\t${s.records}\n`);
    });
}
