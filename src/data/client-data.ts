// A client's training data, prepared the one way every client does it: a networked client from its
// own file (`fedbiot client --data FILE --format F`), a simulated client from its share of one
// dataset. Loading skips invalid records and says which lines; encoding reports truncated and
// dropped examples; the batch order is seeded by the client's data seed, so the client named `i`
// holding share `i` trains on the same batches in a deployment as in the simulation.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadExamplesFromFile, type FormatOption } from './loaders.js';
import { encodeExamples } from './encode.js';
import { BatchIterator, resolvePadId } from './batch.js';
import type { PromptTemplate } from './templates.js';
import type { Example, TokenizerLike } from './types.js';

/** A client's own data file, loaded: invalid records skipped (and reported), none left is an error. */
export function loadClientData(file: string, format: FormatOption): { examples: Example[]; warnings: string[] } {
  if (!fs.existsSync(file)) throw new Error(`${file}: no such data file`);
  const loaded = loadExamplesFromFile(file, { format, skipInvalid: true });
  const r = loaded.report;
  const lines = r.invalid
    .slice(0, 3)
    .map((x) => `line ${x.line} ${x.field}: ${x.message}`)
    .join('; ');
  const more = r.skipped > 3 ? '; ...' : '';
  if (loaded.examples.length === 0)
    throw new Error(
      r.total === 0
        ? `${file}: no record in the file`
        : `${file}: none of its ${r.total} record(s) is a valid ${format === 'auto' ? 'alpaca, gsm8k or chat' : format} record (${lines}${more})`,
    );
  const warnings =
    r.skipped > 0 ? [`${file}: skipped ${r.skipped} invalid record(s) of ${r.total} (${lines}${more})`] : [];
  return { examples: loaded.examples, warnings };
}

export interface ClientDataOptions {
  maxLength: number;
  template?: PromptTemplate;
  batchSize: number;
  /** The client's data seed (its batch order, and its dropout seeds derive from it). */
  seed: number;
}

export interface PreparedClientData {
  iterator: BatchIterator;
  /** Examples the client trains on: the size it reports with its updates. */
  size: number;
  warnings: string[];
}

/** Encodes a client's examples and makes its seeded batch order; `label` names the client or file in messages. */
export function prepareClientData(
  examples: readonly Example[],
  tok: TokenizerLike,
  o: ClientDataOptions,
  label: string,
): PreparedClientData {
  const r = encodeExamples(examples, tok, { maxLength: o.maxLength, template: o.template });
  const warnings = r.report.warnings.map((w) => `${label}: ${w}`);
  if (r.items.length === 0)
    throw new Error(
      `${label}: no usable example after encoding ${examples.length} (${r.report.warnings.join('; ') || 'none given'})`,
    );
  const iterator = new BatchIterator(r.items, { batchSize: o.batchSize, padId: resolvePadId(tok), seed: o.seed });
  return { iterator, size: r.items.length, warnings };
}

/** An example as a record of its own form (alpaca, gsm8k or chat), as loadExamplesFromFile reads it back. */
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

/** Writes examples as JSONL in their own record form. */
export function writeExamples(file: string, examples: readonly Example[]): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, examples.map((e) => JSON.stringify(exampleRecord(e))).join('\n') + '\n');
}

/** Writes OUT/client-<i>.jsonl for every share; returns each file and its record count. */
export function writeShares(shares: readonly (readonly Example[])[], out: string): { file: string; records: number }[] {
  return shares.map((examples, i) => {
    const file = path.join(out, `client-${i}.jsonl`);
    writeExamples(file, examples);
    return { file, records: examples.length };
  });
}
