// QLoRA-style server option (algorithm.full.weights): the server's whole frozen model is held in
// Q8_0 blocks (embedding, every layer, head), LoRA trains on top of it, and the clients' download
// carries the blocks as they are: a simulated run completes with an AdapFu NLL near the f32 one
// and a client download about a third of it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { buildExperiment } from '../../src/fl/experiment.js';
import { runSimulation } from '../../src/fl/simulation.js';
import { ServerAlgorithm } from '../../src/fedbiot/algorithms.js';
import { settingsFromConfig } from '../../src/fedbiot/settings.js';
import { FrozenWeight } from '../../src/tensor/frozen.js';
import { LINEAR_NAMES } from '../../src/nn/llama.js';
import { TINY_RUN } from '../helpers/tiny-run.js';

const TINY = [...TINY_RUN, 'rounds=2', 'eval={maxExamples: 4, generate: false}'];

test('algorithm.full.weights q8_0: the whole frozen model in Q8_0, trained over, downloaded as blocks', async () => {
  const cfg = loadConfig(null, [...TINY, 'algorithm.full={weights: q8_0}']);
  const exp = await buildExperiment(cfg);
  const server = new ServerAlgorithm(
    exp.base,
    settingsFromConfig(cfg),
    () => {
      throw new Error('no alignment here');
    },
    cfg.seed,
  );
  const full = server.fullModel();
  for (const w of [
    full.embedTokens,
    full.lmHead,
    ...full.layers.flatMap((l) => LINEAR_NAMES.map((n) => l.linears[n].weight)),
  ])
    assert.ok(w instanceof FrozenWeight && w.format === 'q8_0', 'every frozen matrix is Q8_0');

  const run = async (sets: string[]) => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'fedbiot-full-weights-'));
    const s = await runSimulation(await buildExperiment(loadConfig(null, [...TINY, ...sets])), { outDir: out });
    fs.rmSync(out, { recursive: true, force: true });
    assert.ok(s);
    return s;
  };
  const f32 = await run([]);
  const q8 = await run(['algorithm.full={weights: q8_0}']);
  const rel = Math.abs(q8.adapfu.nll! / f32.adapfu.nll! - 1);
  assert.ok(rel < 0.01, `AdapFu NLL ${q8.adapfu.nll} against ${f32.adapfu.nll}`);
  const ratio = f32.bytes_join_per_client / q8.bytes_join_per_client;
  assert.ok(ratio > 3, `the download is ${ratio.toFixed(2)}x smaller`);
  assert.ok(q8.client.peak_memory_mb! < f32.client.peak_memory_mb!);
});
