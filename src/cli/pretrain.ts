// `fedbiot pretrain --config FILE --out DIR`: trains the tokenizer and a base model from scratch.
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { pretrainSchema } from '../pretrain/schema.js';
import { runPretrain } from '../pretrain/pretrain.js';
import { applyOverride, ConfigError } from '../config/load.js';
import { terminalProgress } from './progress.js';

export function registerPretrain(program: Command): void {
  program
    .command('pretrain')
    .description('train a byte-level BPE tokenizer and a LLaMA base model from packaged text (resumable)')
    .option('--config <file>', 'YAML pretraining recipe (see examples/pretrain-base.yaml)')
    .option('--set <key=value>', 'override a recipe key (repeatable)', (v: string, p: string[]) => [...p, v], [])
    .requiredOption('--out <dir>', 'output Hugging Face folder')
    .action(async (o: { config?: string; set: string[]; out: string }) => {
      let raw: Record<string, unknown> = {};
      if (o.config) {
        try {
          raw = (parseYaml(readFileSync(o.config, 'utf8')) as Record<string, unknown>) ?? {};
        } catch (e) {
          throw new ConfigError(`cannot read recipe ${o.config}: ${(e as Error).message}`);
        }
      }
      for (const s of o.set) applyOverride(raw, s);
      const r = pretrainSchema.safeParse(raw);
      if (!r.success) throw new ConfigError(`invalid recipe ${o.config ?? ''}:\n${r.error.issues.map((i) => `  ${i.path.join('.') || '(top level)'}: ${i.message}`).join('\n')}`);
      const res = await runPretrain(r.data, o.out, terminalProgress());
      process.stdout.write(`pretrained ${(res.parameters / 1e6).toFixed(2)} M parameters for ${res.steps} steps: train loss ${res.trainLoss.toFixed(4)}, validation ${res.valLoss.toFixed(4)}; written to ${o.out}\n`);
    });
}
