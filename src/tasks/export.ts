// Writes a task's splits as Alpaca-form JSONL ({instruction, input, output, category, ...meta}),
// which loadExamplesFromFile reads back (extra fields land in meta).

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Example } from '../data/types.js';
import type { TaskSplits } from './common.js';

/** One Alpaca-form JSON line; meta fields are spread after the standard ones. */
export function toAlpacaRecord(ex: Example): Record<string, unknown> {
  return {
    id: ex.id,
    instruction: ex.instruction,
    input: ex.input,
    output: ex.response,
    category: ex.category,
    ...(ex.meta ?? {}),
  };
}

export function toJsonl(examples: readonly Example[]): string {
  return examples.map((e) => JSON.stringify(toAlpacaRecord(e)) + '\n').join('');
}

/** Writes `<dir>/<name>.train.jsonl` and `<dir>/<name>.test.jsonl`; returns their paths. */
export function writeTaskJsonl(task: TaskSplits, dir: string): { train: string; test: string } {
  mkdirSync(dir, { recursive: true });
  const train = join(dir, `${task.name}.train.jsonl`);
  const test = join(dir, `${task.name}.test.jsonl`);
  writeFileSync(train, toJsonl(task.train));
  writeFileSync(test, toJsonl(task.test));
  return { train, test };
}
