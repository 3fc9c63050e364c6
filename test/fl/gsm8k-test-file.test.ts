// A GSM8K-format test file given by path (data.test) is evaluated as GSM8K: it replaces the
// generated test split, its records are asked in the training data's prompt form, and the task
// metric is exact match of the final number after '####' against the record's final answer. End to
// end through `fedbiot simulate`, spawned as a user runs it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/config/load.js';
import { buildExperiment, taskScorer } from '../../src/fl/experiment.js';
import { buildEvalSpec } from '../../src/fl/driver.js';
import { TINY_RUN } from '../helpers/tiny-run.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const GSM8K = path.join(root, 'test/fixtures/gsm8k.jsonl');

test('data.test with a generated task: the GSM8K file replaces the test split, asked in the training prompt form', async () => {
  const exp = await buildExperiment(loadConfig(null, [...TINY_RUN, `data.test=${GSM8K}`]));
  assert.equal(exp.task, 'math');
  assert.equal(exp.test.length, 2);
  assert.deepEqual(
    exp.test.map((e) => e.meta?.finalAnswer),
    ['12', '1500'],
  );
  assert.equal(exp.test[0]!.instruction, 'Tom has 3 boxes with 4 pens in each box. How many pens does he have?');
  // generated math is Alpaca-form: the GSM8K questions are put the same way
  assert.equal(exp.test[0]!.format, exp.train[0]!.format);
  // data.template set: the records keep their own form (the template decides)
  const kept = await buildExperiment(loadConfig(null, [...TINY_RUN, `data.test=${GSM8K}`, 'data.template=qa']));
  assert.equal(kept.test[0]!.format, 'gsm8k');
});

test('GSM8K scoring: exact match of the final number after #### against the record final answer', async () => {
  const exp = await buildExperiment(loadConfig(null, [...TINY_RUN, `data.test=${GSM8K}`]));
  const scorer = buildEvalSpec(exp, exp.test).scorer!;
  assert.ok(scorer);
  // the number after the last '####' counts, thousands separators and $ allowed
  assert.deepEqual(await scorer(['3 * 4 = 13\n#### 12', 'Before: 1200 + 300 = 1500\n#### $1,500']), { accuracy: 1 });
  // an intermediate number right is not the answer; the last number counts when there is no '####'
  assert.deepEqual(await scorer(['He has 3 * 4 = 12 pens.\n#### 11', 'it cost 1500 dollars, not 1200']), {
    accuracy: 0,
  });
  assert.deepEqual(await scorer(['#### 12', '#### 1499.5']), { accuracy: 0.5 });
  // the gold is the parsed final answer, not a number inside the solution's calculator annotations
  const only = taskScorer('math', [{ ...exp.test[0]!, response: '<<3*4=99>>99\n#### 99' }])!;
  assert.deepEqual(await only(['#### 12']), { accuracy: 1 });
});

test('data.test: a GSM8K file with a non-math task, or an empty file, is refused naming data.test', async () => {
  await assert.rejects(
    buildExperiment(loadConfig(null, [...TINY_RUN, 'data.task=code', `data.test=${GSM8K}`])),
    /data\.test: .*gsm8k\.jsonl holds GSM8K records .* data\.task is code/,
  );
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fedbiot-gsm8k-'));
  const empty = path.join(dir, 'empty.jsonl');
  fs.writeFileSync(empty, '\n');
  await assert.rejects(
    buildExperiment(loadConfig(null, [...TINY_RUN, `data.test=${empty}`])),
    /data\.test: .*empty\.jsonl holds no test records/,
  );
  const bad = path.join(dir, 'bad.jsonl');
  fs.writeFileSync(bad, '{"question": "q?", "answer": "no final line"}\n');
  await assert.rejects(
    buildExperiment(loadConfig(null, [...TINY_RUN, `data.test=${bad}`])),
    /bad\.jsonl:1: field "answer"/,
  );
});

test('fedbiot simulate --set data.test=GSM8K file: the summary carries accuracy on that file', async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'fedbiot-gsm8k-run-'));
  const cfgFile = path.join(out, 'run.yaml');
  fs.writeFileSync(cfgFile, 'rounds: 1\n');
  const args = [
    'simulate',
    '--config',
    cfgFile,
    '--out',
    path.join(out, 'run'),
    ...[...TINY_RUN, 'eval={maxExamples: 5, maxNewTokens: 4}', `data.test=${GSM8K}`].flatMap((s) => ['--set', s]),
  ];
  const r = await new Promise<{ code: number; stderr: string }>((resolve) =>
    execFile(
      process.execPath,
      ['--import', 'tsx', path.join(root, 'src/cli/run-dev.ts'), ...args],
      { cwd: root, env: { ...process.env, FEDBIOT_THREADS: '1' } },
      (err, _stdout, stderr) => resolve({ code: err ? 1 : 0, stderr }),
    ),
  );
  assert.equal(r.code, 0, r.stderr);
  const summary = JSON.parse(fs.readFileSync(path.join(out, 'run', 'summary.json'), 'utf8'));
  for (const view of [summary.base, summary.adapemu, summary.adapfu]) {
    assert.ok(Number.isFinite(view.nll));
    // two records: accuracy is 0, 0.5 or 1
    assert.ok([0, 0.5, 1].includes(view.accuracy), JSON.stringify(view));
  }
});
