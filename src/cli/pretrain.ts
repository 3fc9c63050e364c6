// `fedbiot pretrain --config FILE --out DIR`: trains the tokenizer and a base model from scratch.
import type { Command } from 'commander';
import { pretrainSchema } from '../pretrain/schema.js';
import { runPretrain } from '../pretrain/pretrain.js';
import { parseWithSchema, readYamlWithOverrides } from '../config/load.js';
import { terminalProgress } from './progress.js';
import { collectRepeated } from './options.js';

export function registerPretrain(program: Command): void {
  program
    .command('pretrain')
    .description('train a byte-level BPE tokenizer and a LLaMA base model from packaged text (resumable)')
    .option('--config <file>', 'YAML pretraining recipe (see examples/pretrain-base.yaml)')
    .option('--set <key=value>', 'override a recipe key (repeatable)', collectRepeated, [])
    .requiredOption('--out <dir>', 'output Hugging Face folder')
    .action(async (o: { config?: string; set: string[]; out: string }) => {
      const recipe = parseWithSchema(
        pretrainSchema,
        readYamlWithOverrides(o.config ?? null, o.set, 'recipe'),
        o.config ?? '(defaults)',
        'recipe',
      );
      const res = await runPretrain(recipe, o.out, terminalProgress(), o.config ?? '(defaults)');
      process.stdout.write(
        `pretrained ${(res.parameters / 1e6).toFixed(2)} M parameters for ${res.steps} steps: train loss ${res.trainLoss.toFixed(4)}, validation ${res.valLoss.toFixed(4)}; written to ${o.out}\n`,
      );
    });
}
