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
import { fileURLToPath } from 'node:url';
import { parseWithSchema, readYamlWithOverrides } from '../../src/config/load.js';
import { countParameters, makeConfig } from '../../src/nn/config.js';

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

test('pretrain: tokens seen are counted across phases with another batch size; the model card has the loss curve', async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'fedbiot-pretrain-tokens-'));
  const a = await runPretrain(recipe(8), out, silentProgress, 'tiny.yaml');
  assert.equal(a.tokensSeen, 8 * 4 * 32);
  // second phase: batch 2 instead of 4
  const second = pretrainSchema.parse({ ...recipe(12), train: { ...recipe(12).train, batchSize: 2 } });
  const b = await runPretrain(second, out, silentProgress, 'tiny.yaml');
  assert.equal(b.tokensSeen, 8 * 4 * 32 + 4 * 2 * 32);
  const log = fs
    .readFileSync(path.join(out, 'training_log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    log.map((h) => h.tokens),
    [
      ...Array.from({ length: 8 }, (_, i) => (i + 1) * 128),
      ...Array.from({ length: 4 }, (_, i) => 1024 + (i + 1) * 64),
    ],
  );
  const card = fs.readFileSync(path.join(out, 'README.md'), 'utf8');
  assert.match(card, /fedbiot pretrain --config tiny\.yaml --out DIR/);
  assert.match(card, /12 steps, 1280 tokens seen in all \(0\.00 M; the last phase 2 x 32 tokens per step\)/);
  // the curve: one row per validation point (steps 4, 8, 12), the train loss averaged since the row above
  const rows = card
    .split('\n')
    .filter((l) => /^\| \d+ \|/.test(l))
    .map((l) => l.split('|').map((c) => c.trim()));
  assert.deepEqual(
    rows.map((r) => Number(r[1])),
    [4, 8, 12],
  );
  const mean = (from: number, to: number) => log.slice(from, to).reduce((s, h) => s + h.train, 0) / (to - from);
  assert.equal(rows[1]![3], mean(4, 8).toFixed(4));
  assert.equal(rows[2]![4], log[11].val.toFixed(4));
});

test('pretrain: a model too large to ship is refused before training, naming release.maxMegabytes', async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'fedbiot-pretrain-size-'));
  const big = pretrainSchema.parse({ ...recipe(4), release: { maxMegabytes: 0.01 } });
  await assert.rejects(runPretrain(big, out, silentProgress), /MB as F16, more than release\.maxMegabytes 0\.01/);
  assert.equal(fs.existsSync(path.join(out, 'pretrain-work', 'state.json')), false);
});

test('the stronger base model recipe (examples/pretrain-large.yaml) parses and ships within 60 MB as F16', () => {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
  const file = path.join(root, 'examples/pretrain-large.yaml');
  const cfg = parseWithSchema(pretrainSchema, readYamlWithOverrides(file), file, 'recipe');
  const m = cfg.model;
  const params = countParameters(
    makeConfig({
      vocabSize: cfg.tokenizer.vocabSize,
      hiddenSize: m.hiddenSize,
      intermediateSize: m.intermediateSize,
      numLayers: m.numLayers,
      numHeads: m.numHeads,
      numKvHeads: m.numKvHeads ?? m.numHeads,
      maxPositionEmbeddings: m.maxPositionEmbeddings,
    }),
  );
  assert.ok(params > 20e6, `tens of millions of parameters: ${params}`);
  assert.ok((params * 2) / 1e6 <= 60, `F16 weights ${(params * 2) / 1e6} MB`);
  assert.equal(cfg.release.maxMegabytes, 60);
  // about ten times the tokens models/base was trained on (4.92 M)
  assert.ok(cfg.train.steps * cfg.train.batchSize * cfg.train.seqLen > 40e6);
});
