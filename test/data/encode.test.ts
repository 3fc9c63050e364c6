import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CharTokenizer } from '../fixtures/char-tokenizer.js';
import { alpacaTemplate, customTemplate, getTemplate, qaTemplate, chatTemplate } from '../../src/data/templates.js';
import { encodeExample, encodeExamples, encodePrompt } from '../../src/data/encode.js';
import { BatchIterator, collate, resolvePadId } from '../../src/data/batch.js';
import { IGNORE_INDEX, type Example } from '../../src/data/types.js';

const tok = new CharTokenizer();
const ex = (over: Partial<Example> = {}): Example => ({
  id: 'x',
  format: 'alpaca',
  instruction: 'Add.',
  input: '',
  response: 'ok',
  category: 'c',
  ...over,
});

test('Alpaca template, with and without input, exact text', () => {
  assert.equal(
    alpacaTemplate.render(ex()),
    'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nAdd.\n\n### Response:\n',
  );
  assert.equal(
    alpacaTemplate.render(ex({ input: '2 and 3' })),
    'Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n### Instruction:\nAdd.\n\n### Input:\n2 and 3\n\n### Response:\n',
  );
});

test('qa, custom and chat templates', () => {
  assert.equal(qaTemplate.render(ex({ instruction: 'What is 2+2?' })), 'Question: What is 2+2?\nAnswer:\n');
  const t = customTemplate('<{category}> {instruction} | {input} =>', '<{category}> {instruction} =>');
  assert.equal(t.render(ex({ input: 'in' })), '<c> Add. | in =>');
  assert.equal(t.render(ex()), '<c> Add. =>');
  assert.equal(getTemplate('Q: {instruction}\\nA:').render(ex()), 'Q: Add.\nA:');
  assert.throws(() => getTemplate('nope'), /unknown prompt template/);
  const messages = [
    { role: 'system' as const, content: 'Be brief.' },
    { role: 'user' as const, content: 'Hi' },
  ];
  const chat = '### System:\nBe brief.\n\n### User:\nHi\n\n### Assistant:\n';
  assert.equal(chatTemplate.render(ex({ messages })), chat);
  // Flat templates fall back to the chat rendering when there is history to keep.
  assert.equal(alpacaTemplate.render(ex({ messages })), chat);
});

test('encoding: [bos] prompt response [eos], labels mask bos and prompt exactly', () => {
  const t = customTemplate('Q:{instruction}\n');
  const e = encodeExample(ex({ instruction: 'ab', response: 'cd' }), tok, { template: t });
  const prompt = tok.encode('Q:ab\n');
  const resp = tok.encode('cd');
  assert.deepEqual(e.inputIds, [1, ...prompt, ...resp, 2]);
  assert.deepEqual(e.labels, [IGNORE_INDEX, ...prompt.map(() => IGNORE_INDEX), ...resp, 2]);
  assert.equal(e.promptLength, 1 + prompt.length);
  assert.equal(e.truncated, false);
  // No bos/eos when the tokenizer lacks them.
  const bare = Object.assign(new CharTokenizer(), { bosId: undefined, eosId: undefined });
  const b = encodeExample(ex({ instruction: 'ab', response: 'cd' }), bare, { template: t });
  assert.deepEqual(b.inputIds, [...prompt, ...resp]);
});

test('truncation keeps the prompt start, cuts the response tail and its eos; counts and warns', () => {
  const t = customTemplate('{instruction}');
  const items = [
    ex({ id: 'short', instruction: 'ab', response: 'cd' }), // 1+2+2+1 = 6
    ex({ id: 'long', instruction: 'ab', response: 'cdefgh' }), // 10 -> 6
    ex({ id: 'prompt-only', instruction: 'abcdefgh', response: 'x' }), // prompt fills it
  ];
  const { items: enc, report } = encodeExamples(items, tok, { template: t, maxLength: 6 });
  assert.equal(report.truncated, 2);
  assert.equal(report.dropped, 1);
  assert.equal(report.encoded, 2);
  assert.equal(report.warnings.length, 2);
  const long = enc.find((x) => x.id === 'long')!;
  assert.deepEqual(long.inputIds, [1, ...tok.encode('abcde')]);
  assert.deepEqual(long.labels, [IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, ...tok.encode('cde')]);
  assert.ok(!long.inputIds.includes(2));
  assert.equal(enc.find((x) => x.id === 'short')!.inputIds.length, 6);
});

test('encodePrompt cuts from the left so the answer cue survives', () => {
  const ids = encodePrompt(ex({ instruction: 'abcdef' }), tok, {
    template: customTemplate('{instruction}'),
    maxLength: 4,
  });
  assert.deepEqual(ids, [1, ...tok.encode('def')]);
});

test('collate: right padding, -100 labels, mask, loss-token count', () => {
  const a = {
    id: 'a',
    category: 'c',
    inputIds: [1, 10, 11, 2],
    labels: [-100, -100, 11, 2],
    promptLength: 2,
    truncated: false,
  };
  const b = { id: 'b', category: 'c', inputIds: [1, 12], labels: [-100, 12], promptLength: 1, truncated: false };
  const batch = collate([a, b], { padId: resolvePadId(tok) });
  assert.equal(batch.seqLen, 4);
  assert.deepEqual([...batch.inputIds], [1, 10, 11, 2, 1, 12, 0, 0]);
  assert.deepEqual([...batch.labels], [-100, -100, 11, 2, -100, 12, -100, -100]);
  assert.deepEqual([...batch.attentionMask], [1, 1, 1, 1, 1, 1, 0, 0]);
  assert.equal(batch.lossTokens, 3);
  assert.deepEqual(batch.lengths, [4, 2]);
  assert.equal(collate([b], { padId: 0, padTo: 5 }).seqLen, 5);
});

test('BatchIterator: deterministic per seed, covers each epoch once, cycles, restores state', () => {
  const items = Array.from({ length: 10 }, (_, i) => ({
    id: `e${i}`,
    category: 'c',
    inputIds: [1, 3 + i],
    labels: [-100, 3 + i],
    promptLength: 1,
    truncated: false,
  }));
  const ids = (seed: number, steps: number) =>
    [...new BatchIterator(items, { batchSize: 4, padId: 0, seed }).take(steps)].map((b) => b.ids);
  assert.deepEqual(ids(7, 9), ids(7, 9));
  assert.notDeepEqual(ids(7, 3), ids(8, 3));
  const run = ids(7, 9);
  // 3 batches per epoch (4, 4, 2); each epoch covers all examples once.
  for (let e = 0; e < 3; e++) {
    const epoch = run.slice(3 * e, 3 * e + 3).flat();
    assert.equal(epoch.length, 10);
    assert.equal(new Set(epoch).size, 10);
  }
  assert.notDeepEqual(run.slice(0, 3), run.slice(3, 6)); // reshuffled
  const it = new BatchIterator(items, { batchSize: 4, padId: 0, seed: 7 });
  it.next();
  it.next();
  const saved = it.getState();
  const rest = [...it.take(4)].map((b) => b.ids);
  const again = new BatchIterator(items, { batchSize: 4, padId: 0, seed: 7 });
  again.setState(saved);
  assert.deepEqual(
    [...again.take(4)].map((b) => b.ids),
    rest,
  );
  // Without cycling the iterator ends after one epoch; dropLast drops the short batch.
  assert.equal([...new BatchIterator(items, { batchSize: 4, padId: 0, cycle: false })].length, 3);
  assert.equal([...new BatchIterator(items, { batchSize: 4, padId: 0, cycle: false, dropLast: true })].length, 2);
  const ordered = [...new BatchIterator(items, { batchSize: 5, padId: 0, cycle: false, shuffle: false })].map(
    (b) => b.ids,
  );
  assert.deepEqual(ordered[0], ['e0', 'e1', 'e2', 'e3', 'e4']);
});
