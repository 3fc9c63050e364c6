import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateMathTask, type MathStep } from '../../src/tasks/math.js';
import { generateCodeTask, CODE_CATEGORIES } from '../../src/tasks/code.js';
import { generateQaTask } from '../../src/tasks/qa.js';
import { generateTask, promptKey, writeTaskJsonl } from '../../src/tasks/index.js';
import { loadExamplesFromFile } from '../../src/data/loaders.js';
import { extractAnswer } from '../../src/eval/math.js';
import { evaluateCode } from '../../src/eval/code.js';
import type { TaskSplits } from '../../src/tasks/common.js';

function assertDisjoint(t: TaskSplits): void {
  const testKeys = new Set(t.test.map(promptKey));
  assert.equal(testKeys.size, t.test.length, 'test prompts unique');
  const trainKeys = new Set(t.train.map(promptKey));
  assert.equal(trainKeys.size, t.train.length, 'train prompts unique');
  for (const k of trainKeys) assert.ok(!testKeys.has(k), `prompt in both splits: ${k}`);
}

test('math: deterministic, disjoint, every answer recomputes from its operations', () => {
  const t = generateMathTask({ seed: 11, trainSize: 1500, testSize: 300 });
  assert.deepEqual(generateMathTask({ seed: 11, trainSize: 1500, testSize: 300 }), t);
  assert.notDeepEqual(generateMathTask({ seed: 12, trainSize: 10, testSize: 5 }).test, t.test.slice(0, 5));
  assert.equal(t.train.length, 1500);
  assert.equal(t.test.length, 300);
  assertDisjoint(t);
  assert.deepEqual(new Set([...t.train, ...t.test].map((e) => e.category)), new Set(t.categories));
  const ops = {
    '+': (a: number, b: number) => a + b,
    '-': (a: number, b: number) => a - b,
    '*': (a: number, b: number) => a * b,
    '/': (a: number, b: number) => a / b,
  };
  for (const e of [...t.train, ...t.test]) {
    const steps = e.meta!.steps as MathStep[];
    assert.ok(steps.length >= 1 && steps.length <= 3);
    const lines = e.response.split('\n');
    assert.equal(lines.length, steps.length + 1);
    steps.forEach((s, i) => {
      assert.equal(ops[s.op](s.a, s.b), s.result);
      assert.ok(Number.isInteger(s.result) && s.result >= 0, `${e.id}: ${s.a} ${s.op} ${s.b}`);
      assert.ok(lines[i]!.endsWith(`: ${s.a} ${s.op} ${s.b} = ${s.result}`), lines[i]);
      // the numbers the question gives are used, chained results come from earlier steps
      for (const v of [s.a, s.b])
        assert.ok(
          e.instruction.includes(String(v)) || steps.slice(0, i).some((p) => p.result === v),
          `${e.id}: ${v} not in question`,
        );
    });
    const answer = steps[steps.length - 1]!.result;
    assert.equal(e.meta!.answer, answer);
    assert.equal(lines[lines.length - 1], `#### ${answer}`);
    assert.equal(extractAnswer(e.response), answer);
  }
});

test('code: deterministic, disjoint, categories, 3 tests each', () => {
  const t = generateCodeTask({ seed: 5, trainSize: 1000, testSize: 100 });
  assert.deepEqual(generateCodeTask({ seed: 5, trainSize: 1000, testSize: 100 }), t);
  assertDisjoint(t);
  assert.deepEqual(new Set(t.train.map((e) => e.category)), new Set(CODE_CATEGORIES));
  for (const e of t.train) {
    const tests = e.meta!.tests as string[];
    assert.ok(tests.length >= 2, e.instruction);
    assert.ok(e.instruction.includes(`\`${e.meta!.entryPoint}(`));
    for (const line of tests) assert.match(line, /^assert\.(strictEqual|deepStrictEqual)\(/);
  }
});

test('code: every solution passes its own tests in the sandbox; a wrong one fails', async () => {
  const t = generateCodeTask({ seed: 5, trainSize: 300, testSize: 0 });
  // One example per distinct function body covers every family and constant style cheaply.
  const byShape = new Map<string, (typeof t.train)[number]>();
  for (const e of t.train) byShape.set(e.response.replace(/\d+/g, 'N').replace(/function \w+/, 'function f'), e);
  const sample = [...byShape.values()];
  assert.ok(sample.length >= 25, `only ${sample.length} shapes`);
  const good = await evaluateCode(sample.map((e) => ({ output: e.response, tests: e.meta!.tests as string[] })));
  assert.deepEqual(good.byVerdict, { pass: sample.length }, JSON.stringify(good.results.filter((r) => !r.passed)));
  // Swapping solutions between different functions must fail (the tests really check something).
  const swapped = await evaluateCode(
    sample.slice(0, 6).map((e, i) => ({
      output: sample[(i + 1) % 6]!.response.replace(/function \w+/, `function ${e.meta!.entryPoint}`),
      tests: e.meta!.tests as string[],
    })),
  );
  assert.equal(swapped.passed, 0);
});

test('qa: deterministic, disjoint by prompt, categories by source, short answers, fact split', () => {
  const t = generateQaTask({ seed: 2, trainSize: 600, testSize: 100 });
  assert.deepEqual(generateQaTask({ seed: 2, trainSize: 600, testSize: 100 }), t);
  assertDisjoint(t);
  assert.deepEqual(new Set(t.train.map((e) => e.category)), new Set(['capitals', 'definitions', 'antonyms']));
  for (const e of t.train) {
    assert.ok(e.response.split(' ').length <= 8, e.response);
    assert.ok((e.meta!.answers as string[]).includes(e.response));
  }
  const cap =
    t.train.find((e) => e.instruction === 'What is the capital of Ohio?') ??
    t.train.find((e) => /capital of Texas\?$/.test(e.instruction));
  if (cap) assert.ok(['Columbus', 'Austin'].includes(cap.response));
  const byFact = generateQaTask({ seed: 2, trainSize: 600, testSize: 100, splitBy: 'fact' });
  const testFacts = new Set(byFact.test.map((e) => e.meta!.fact));
  assert.ok(byFact.train.every((e) => !testFacts.has(e.meta!.fact)));
  const capitalsOnly = generateQaTask({ seed: 1, trainSize: 1000, testSize: 100, categories: ['capitals'] });
  assert.ok(capitalsOnly.warnings.length > 0, 'capitals alone cannot fill 1100 distinct prompts');
  assertDisjoint(capitalsOnly);
});

test('export: Alpaca JSONL round-trips through the loader, tests and answers kept', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fedbiot-export-'));
  try {
    for (const name of ['math', 'code'] as const) {
      const t = generateTask(name, { seed: 1, trainSize: 40, testSize: 10 });
      const paths = writeTaskJsonl(t, dir);
      const train = loadExamplesFromFile(paths.train).examples;
      const test = loadExamplesFromFile(paths.test).examples;
      assert.equal(train.length, 40);
      assert.equal(test.length, 10);
      assert.deepEqual(
        train.map((e) => [e.id, e.instruction, e.input, e.response, e.category, e.format]),
        t.train.map((e) => [e.id, e.instruction, e.input, e.response, e.category, 'alpaca']),
      );
      assert.deepEqual(test[0]!.meta, t.test[0]!.meta);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
