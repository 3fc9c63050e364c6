import { test } from 'node:test';
import assert from 'node:assert/strict';
import { extractAnswer, mathAccuracy, parseNumber, sameNumber } from '../../src/eval/math.js';
import { exactMatch, lcsLength, normalizeAnswer, rougeL, textScores } from '../../src/eval/text.js';
import { perplexity, NllAccumulator } from '../../src/eval/perplexity.js';
import { goldNumber, scoreTask } from '../../src/eval/score.js';
import type { Example } from '../../src/data/types.js';

test('math answer extraction edge cases', () => {
  assert.equal(extractAnswer('3 * 4 = 12\n#### 12'), 12);
  assert.equal(extractAnswer('#### 1,500'), 1500);
  assert.equal(extractAnswer('So the total is $1,234.50.'), 1234.5);
  assert.equal(extractAnswer('It costs $ 5 in the end'), 5);
  assert.equal(extractAnswer('The answer is 7.'), 7);
  assert.equal(extractAnswer('The change is -3'), -3);
  assert.equal(extractAnswer('1 + 2 = 3, then 3 + 4 = 7'), 7);
  assert.equal(extractAnswer('#### 42 apples, not 43'), 42, 'the first number after ####');
  assert.equal(extractAnswer('#### 5\nmore text 99\n#### 6'), 6, 'the last ####');
  assert.equal(extractAnswer('####'), null);
  assert.equal(extractAnswer('#### none\nbut earlier 8'), 8, 'falls back to the last number');
  assert.equal(extractAnswer('no numbers here'), null);
  assert.equal(extractAnswer('pick 3, 4 or 5'), 5);
  assert.equal(extractAnswer('values 12,34'), 12, 'a comma not followed by 3 digits is no thousands separator');
  assert.equal(extractAnswer('0.5 of it'), 0.5);
  assert.equal(parseNumber('7.'), 7);
  assert.equal(parseNumber('abc'), null);
  assert.ok(sameNumber(18, 18.0));
  assert.ok(!sameNumber(null, 3));
});

test('math accuracy: numeric comparison against numbers or GSM8K answers', () => {
  const r = mathAccuracy(
    ['#### 18', 'I think 3.0', 'dunno', '#### 1,000'],
    [18, 'so 3\n#### 3', '#### 5', 'x\n#### 1000'],
  );
  assert.equal(r.correct, 3);
  assert.equal(r.accuracy, 0.75);
  assert.deepEqual(
    r.items.map((x) => x.predicted),
    [18, 3, null, 1000],
  );
  assert.throws(() => mathAccuracy(['1'], []));
});

test('exact match normalisation (SQuAD)', () => {
  assert.equal(normalizeAnswer('  The  Quick, brown FOX!  '), 'quick brown fox');
  assert.equal(normalizeAnswer('An apple a day'), 'apple day');
  assert.equal(exactMatch('the Columbus.', 'Columbus'), 1);
  assert.equal(exactMatch('St. Paul', ['Saint Paul', 'St. Paul']), 1);
  assert.equal(exactMatch('Columbus, Ohio', 'Columbus'), 0);
  assert.equal(exactMatch('', 'x'), 0);
});

test('Rouge-L on known pairs', () => {
  assert.equal(lcsLength(['a', 'b', 'c', 'd'], ['a', 'c', 'd', 'b']), 3);
  assert.deepEqual(rougeL('the cat sat on the mat', 'the cat sat on the mat'), { precision: 1, recall: 1, f1: 1 });
  // LCS("police killed the gunman", "the gunman kill police") = "the gunman" -> 2 tokens; P = R = 2/4
  const r = rougeL('police killed the gunman', 'the gunman kill police');
  assert.equal(r.precision, 0.5);
  assert.equal(r.recall, 0.5);
  assert.equal(r.f1, 0.5);
  // P = 3/3, R = 3/6 -> F1 = 2/3
  const s = rougeL('a tangible entity', 'a tangible and visible physical entity');
  assert.ok(Math.abs(s.f1 - 2 / 3) < 1e-12);
  assert.equal(rougeL('', 'x').f1, 0);
  assert.equal(rougeL('nothing shared', 'totally different').f1, 0);
  assert.equal(rougeL('blue', ['red', 'blue']).f1, 1, 'best of several references');
  const t = textScores(['Boston', 'a city'], ['boston', 'the big city']);
  assert.equal(t.exactMatch, 0.5);
  // 'a city' vs 'the big city': LCS 1, P 1/2, R 1/3, F1 0.4
  assert.ok(Math.abs(t.rougeL - (1 + 0.4) / 2) < 1e-12);
});

test('perplexity from summed NLL and token counts', () => {
  const p = perplexity([
    { nll: 2 * Math.LN2, tokens: 2 },
    { nll: 0, tokens: 0 },
    { nll: 6 * Math.LN2, tokens: 2 },
  ]);
  assert.equal(p.tokens, 4);
  assert.ok(Math.abs(p.meanNll - 2 * Math.LN2) < 1e-12);
  assert.ok(Math.abs(p.perplexity - 4) < 1e-9);
  assert.ok(Math.abs(p.bitsPerToken - 2) < 1e-12);
  assert.ok(Math.abs(p.macroMeanNll - 2 * Math.LN2) < 1e-12);
  const acc = new NllAccumulator();
  acc.add(Math.log(10) * 3, 3);
  assert.ok(Math.abs(acc.result().perplexity - 10) < 1e-9);
  assert.ok(Number.isNaN(perplexity([]).perplexity));
});

test('scoreTask dispatches math and qa', async () => {
  const ex = (over: Partial<Example>): Example => ({
    id: 'e',
    format: 'alpaca',
    instruction: 'q',
    input: '',
    response: '',
    category: 'c',
    ...over,
  });
  assert.equal(goldNumber(ex({ meta: { finalAnswer: '1,200' } })), 1200);
  assert.equal(goldNumber(ex({ response: 'x\n#### 9' })), 9);
  const m = await scoreTask('math', [ex({ meta: { answer: 12 } }), ex({ response: '#### 3' })], ['so #### 12', '4']);
  assert.equal(m.task === 'math' && m.accuracy, 0.5);
  const q = await scoreTask(
    'qa',
    [ex({ response: 'Saint Paul', meta: { answers: ['Saint Paul', 'St. Paul'] } })],
    ['St. Paul'],
  );
  assert.equal(q.task === 'qa' && q.exactMatch, 1);
});
