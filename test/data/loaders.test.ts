import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DataError, loadExamplesFromFile, parseExamplesText } from '../../src/data/loaders.js';
import { extractAnswer } from '../../src/eval/math.js';

const fx = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));

test('alpaca JSONL: fields, empty input, Dolly spellings, extra fields kept in meta', () => {
  const { examples, report } = loadExamplesFromFile(fx('alpaca.jsonl'));
  assert.equal(examples.length, 3);
  assert.equal(report.byFormat.alpaca, 3);
  assert.deepEqual(
    examples.map((e) => [e.format, e.instruction, e.input, e.response, e.category]),
    [
      [
        'alpaca',
        'Give three tips for staying healthy.',
        '',
        'Eat well, sleep enough, and move every day.',
        'brainstorming',
      ],
      ['alpaca', 'Translate to French.', 'Good morning', 'Bonjour', 'translation'],
      ['alpaca', 'Summarize the text.', 'The cat sat on the mat all day.', 'A cat sat on a mat.', 'summarization'],
    ],
  );
  assert.equal(examples[2]!.meta?.source, 'dolly-style');
  // ids carry the line number (the blank line 3 is skipped, not renumbered)
  assert.equal(examples[2]!.id, 'alpaca:4');
});

test('gsm8k JSONL: final answer parsed, default category, optional calculator stripping', () => {
  const { examples } = loadExamplesFromFile(fx('gsm8k.jsonl'));
  assert.equal(examples[0]!.format, 'gsm8k');
  assert.equal(examples[0]!.category, 'math');
  assert.equal(examples[0]!.instruction, 'Tom has 3 boxes with 4 pens in each box. How many pens does he have?');
  assert.equal(examples[0]!.meta?.finalAnswer, '12');
  assert.equal(examples[1]!.meta?.finalAnswer, '1500');
  assert.match(examples[0]!.response, /<<3\*4=12>>/);
  const stripped = loadExamplesFromFile(fx('gsm8k.jsonl'), { stripCalculatorAnnotations: true }).examples;
  assert.equal(stripped[0]!.response, 'He has 3 * 4 = 12 pens.\n#### 12');
});

test('chat JSONL: prompt is everything before the last assistant turn', () => {
  const { examples } = loadExamplesFromFile(fx('chat.jsonl'));
  const [a, b] = examples;
  assert.equal(a!.format, 'chat');
  assert.equal(a!.response, '4');
  assert.equal(a!.instruction, 'What is 2+2?');
  assert.equal(a!.messages!.length, 4);
  assert.equal(a!.messages![3]!.content, 'What is 2+2?');
  assert.equal(a!.category, 'chitchat');
  assert.equal(b!.category, 'chat');
  assert.deepEqual(b!.messages, [{ role: 'user', content: 'Name a colour.' }]);
});

test('JSON array with mixed forms: per-record detection and line numbers of elements', () => {
  assert.throws(
    () => loadExamplesFromFile(fx('mixed-array.json')),
    (e: unknown) => {
      assert.ok(e instanceof DataError);
      assert.equal(e.line, 9);
      assert.equal(e.field, 'output');
      assert.match(e.message, /mixed-array\.json:9: field "output": expected a string, got number/);
      return true;
    },
  );
  const { examples, report } = loadExamplesFromFile(fx('mixed-array.json'), { skipInvalid: true });
  assert.deepEqual(
    examples.map((e) => e.format),
    ['alpaca', 'gsm8k', 'chat'],
  );
  assert.deepEqual(
    examples.map((e) => e.id),
    ['mixed-array:2', 'mixed-array:3', 'mixed-array:8'],
  );
  assert.equal(report.skipped, 1);
});

test('malformed JSONL: error names file, line and field; skipInvalid counts and reports', () => {
  assert.throws(() => loadExamplesFromFile(fx('malformed.jsonl')), /malformed\.jsonl:2: field "output": missing/);
  const { examples, report } = loadExamplesFromFile(fx('malformed.jsonl'), { skipInvalid: true });
  assert.deepEqual(
    examples.map((e) => e.response),
    ['ok', 'yes'],
  );
  assert.equal(report.total, 6);
  assert.equal(report.loaded, 2);
  assert.equal(report.skipped, 4);
  assert.deepEqual(
    report.invalid.map((x) => [x.line, x.field]),
    [
      [2, 'output'],
      [3, 'answer'],
      [4, '<json>'],
      [5, 'messages[0].role'],
    ],
  );
});

test("forced format: a record lacking that form's fields is an error", () => {
  const text = '{"instruction": "a", "output": "b"}\n';
  assert.throws(
    () => parseExamplesText(text, { format: 'gsm8k', fileName: 'x.jsonl' }),
    /x\.jsonl:1: field "question": missing/,
  );
  assert.equal(parseExamplesText(text, { format: 'alpaca' }).examples.length, 1);
});

test('invalid JSON array reports a line', () => {
  assert.throws(
    () => parseExamplesText('[\n{"a": 1},\n{oops}\n]', { fileName: 'bad.json' }),
    /bad\.json:3: field "<json>"/,
  );
});

const SHARED = fileURLToPath(new URL('../../../shared/data/gsm8k/train.jsonl', import.meta.url));
test('real GSM8K train file, when present', { skip: !existsSync(SHARED) && 'shared GSM8K file not present' }, () => {
  const { examples, report } = loadExamplesFromFile(SHARED);
  assert.equal(report.skipped, 0);
  assert.ok(examples.length > 7000);
  for (const e of examples) {
    assert.ok(Number.isFinite(Number(e.meta!.finalAnswer)), e.id);
    // answer extraction agrees with the loader on every real solution
    assert.equal(extractAnswer(e.response), Number(e.meta!.finalAnswer), e.id);
  }
});
