import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SPECIAL_TOKENS, trainBpe, writeTrainedTokenizer } from '../../src/io/bpe-trainer.js';
import { loadTokenizer } from '../../src/io/tokenizer.js';
import { sotuTexts, tmpDir } from './helpers.js';

test('BPE trainer: 8k vocab on ~10 MB of text well under a minute, loadable output', () => {
  const texts = sotuTexts(); // ~10.8 MB of State of the Union addresses
  const chars = texts.reduce((a, t) => a + t.length, 0);
  assert.ok(chars > 10e6);
  const t0 = performance.now();
  const trained = trainBpe(texts, { vocabSize: 8000 });
  const secs = (performance.now() - t0) / 1000;
  assert.ok(secs < 45, `training took ${secs.toFixed(1)} s`);
  assert.equal(trained.vocab.length, 8000);
  assert.deepEqual(trained.vocab.slice(0, 4), [...SPECIAL_TOKENS]);
  assert.equal(new Set(trained.vocab).size, 8000, 'no duplicate tokens');
  const dir = tmpDir();
  writeTrainedTokenizer(dir, trained);
  const tok = loadTokenizer(dir);
  assert.equal(tok.vocabSize, 8000);
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8'));
  assert.equal(cfg.add_bos_token, true);
  assert.equal(cfg.pad_token, '<pad>');
  const sample = texts[100]!.slice(0, 20_000);
  const ids = tok.encode(sample, { addSpecial: false });
  assert.equal(tok.decode(ids), sample);
  assert.ok(sample.length / ids.length > 4, `compression ${(sample.length / ids.length).toFixed(2)} chars/token`);
  assert.ok(tok.encode(' the', { addSpecial: false }).length === 1, '" the" is one token');
  const v = tok.toGgufVocab();
  assert.equal(v.model, 'gpt2');
  assert.equal(v.merges!.length, trained.merges.length);
  assert.deepEqual(v.tokenTypes.slice(0, 5), [2, 3, 3, 3, 1]);
});

test('BPE trainer: deterministic, honours minFrequency, rejects tiny vocab', () => {
  const texts = ['aaab aaab aaab abab', 'hello hello world'];
  const a = trainBpe(texts, { vocabSize: 300 });
  const b = trainBpe(texts, { vocabSize: 300 });
  assert.deepEqual(a, b);
  assert.ok(a.vocab.length < 300, 'stops when no pair occurs twice');
  assert.ok(trainBpe(texts, { vocabSize: 300, minFrequency: 1 }).vocab.length > a.vocab.length);
  assert.throws(() => trainBpe(texts, { vocabSize: 100 }), /at least 260/);
});
