// Writes each simulated client's share of the training data as a JSONL file in its own record form,
// so a deployment demo (or a test) can give real client processes the same data as `simulate`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Example } from '../../data/types.js';
import type { Experiment } from '../experiment.js';

export function exampleRecord(e: Example): Record<string, unknown> {
  if (e.format === 'gsm8k') return { id: e.id, question: e.instruction, answer: e.response, category: e.category };
  if (e.format === 'chat')
    return {
      id: e.id,
      messages: [
        ...(e.messages ?? [{ role: 'user', content: e.instruction }]),
        { role: 'assistant', content: e.response },
      ],
      category: e.category,
    };
  return { id: e.id, instruction: e.instruction, input: e.input, output: e.response, category: e.category };
}

/** Writes OUT/client-<i>.jsonl for every client; returns the paths. */
export function exportShares(exp: Experiment, out: string): string[] {
  fs.mkdirSync(out, { recursive: true });
  return exp.clients.map((idx, i) => {
    const file = path.join(out, `client-${i}.jsonl`);
    fs.writeFileSync(file, idx.map((j) => JSON.stringify(exampleRecord(exp.train[j]!))).join('\n') + '\n');
    return file;
  });
}
