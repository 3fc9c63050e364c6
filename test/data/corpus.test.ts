import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildCorpus, corpusStats, detagBrown, toAscii } from '../../src/data/corpus.js';

test('Brown detagging restores readable text', () => {
  assert.equal(
    detagBrown(
      "The/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' was/bedz found/vbn ,/, and/cc it's/pps+bez over/rp ./.",
    ),
    'The jury said "no evidence" was found, and it\'s over.',
  );
  assert.equal(toAscii('\u201cyes\u201d \u2014 it\u2019s'), '"yes" -- it\'s');
});

test('corpus from installed packages: all three sources, plain text', () => {
  const docs = buildCorpus({ maxDocsPerSource: 3 });
  const stats = corpusStats(docs);
  assert.deepEqual(Object.keys(stats), ['brown', 'moby-dick', 'sotu']);
  for (const s of Object.values(stats)) {
    assert.equal(s.docs, 3);
    assert.ok(s.words > 1000);
  }
  for (const d of docs) assert.doesNotMatch(d.text, /\/(nn|at|vbd)\b/, 'no POS tags left');
  assert.match(docs.find((d) => d.id === 'moby-dick/1')!.text, /^Call me Ishmael\./);
});
