// Pretraining end to end on a tiny recipe: tokenizer, training, checkpoint, resume, released folder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pretrainSchema } from '../../src/pretrain/schema.js';
import { runPretrain } from '../../src/pretrain/pretrain.js';
import { silentProgress } from '../../src/util/progress.js';
import { loadHfModel } from '../../src/models/hf-model.js';
import { loadTokenizer } from '../../src/io/tokenizer.js';

const recipe = (steps: number) =>
  pretrainSchema.parse({
    tokenizer: { vocabSize: 400, trainChars: 200000 },
    data: { corpus: ['moby-dick'], tasks: { math: 50, code: 20, qa: 20 } },
    model: { hiddenSize: 32, intermediateSize: 64, numLayers: 3, numHeads: 2 },
    train: { steps, evalEvery: 4, checkpointEvery: 4, seqLen: 32, batchSize: 4, warmupSteps: 2, evalBatches: 2 },
  });

test('pretrain: loss falls, the folder loads back, and a second run resumes from the checkpoint', async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'fedbiot-pretrain-'));
  const a = await runPretrain(recipe(8), out, silentProgress);
  assert.equal(a.steps, 8);
  const log = fs
    .readFileSync(path.join(out, 'training_log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(log.length, 8);
  assert.ok(log[7].train < log[0].train, `loss should fall: ${log[0].train} -> ${log[7].train}`);
  const model = loadHfModel(out);
  const tok = loadTokenizer(out);
  assert.equal(model.config.vocabSize, tok.vocabSize);
  assert.equal(model.config.numLayers, 3);
  assert.match(fs.readFileSync(path.join(out, 'README.md'), 'utf8'), /8 steps/);
  const b = await runPretrain(recipe(12), out, silentProgress);
  assert.equal(b.steps, 12);
  const log2 = fs.readFileSync(path.join(out, 'training_log.jsonl'), 'utf8').trim().split('\n');
  assert.equal(log2.length, 12, 'the resumed run keeps the first run history and adds 4 steps');
});
