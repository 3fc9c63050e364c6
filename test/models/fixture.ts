/** Shared fixtures for the model and CLI tests: a tiny random LLaMA folder with a trained tokenizer. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { trainBpe, writeTrainedTokenizer, BOS_ID, EOS_ID } from '../../src/io/bpe-trainer.js';
import type { HfTokenizer } from '../../src/io/tokenizer.js';
import { LlamaModel } from '../../src/nn/llama.js';
import { makeConfig, type ModelConfig } from '../../src/nn/config.js';
import { saveHfModel } from '../../src/models/hf-model.js';
import { noGrad, tape } from '../../src/tensor/tensor.js';
import { mulberry32 } from '../../src/util/rng.js';

export function tmpDir(prefix = 'fedbiot-models-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A few KB of English text (fixed, so tokenizers are reproducible). */
export const TEXT = [
  'The Congress shall have power to lay and collect taxes, duties, imposts and excises, to pay the debts and provide for the common defence and general welfare of the United States.',
  'We the people of the United States, in order to form a more perfect union, establish justice, insure domestic tranquility, provide for the common defence, promote the general welfare, and secure the blessings of liberty to ourselves and our posterity.',
  'It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness, it was the epoch of belief, it was the epoch of incredulity.',
  'Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse, and nothing particular to interest me on shore, I thought I would sail about a little and see the watery part of the world.',
  'Numbers: 12 + 30 = 42, 7 * 6 = 42, and 100 - 58 = 42. Café, naïve, 東京, emoji 🙂 and ümlauts.',
]
  .join('\n')
  .repeat(6);

let tokCache: { dir: string; tok: HfTokenizer } | undefined;

/** A byte-level BPE tokenizer trained on TEXT (vocab 400), written once per process. */
export function tinyTokenizer(): { dir: string; tok: HfTokenizer } {
  if (!tokCache) {
    const dir = tmpDir('fedbiot-tok-');
    const tok = writeTrainedTokenizer(dir, trainBpe(TEXT.split('\n'), { vocabSize: 400, minFrequency: 2 }));
    tokCache = { dir, tok };
  }
  return tokCache;
}

export function tinyConfig(over: Partial<ModelConfig> = {}): ModelConfig {
  return makeConfig({
    vocabSize: tinyTokenizer().tok.vocabSize,
    hiddenSize: 32,
    intermediateSize: 64,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    maxPositionEmbeddings: 256,
    bosTokenId: BOS_ID,
    eosTokenId: EOS_ID,
    ...over,
  });
}

/** A random model whose logits are far from uniform (std 0.15), so argmax and NLL are meaningful. */
export function tinyModel(seed = 1, over: Partial<ModelConfig> = {}): LlamaModel {
  return LlamaModel.random(tinyConfig(over), seed, 0.15);
}

/** Saves a model plus the tokenizer files into a fresh folder; returns the folder. */
export function saveFixtureFolder(
  model: LlamaModel,
  dir = tmpDir(),
  opts: Parameters<typeof saveHfModel>[2] = {},
): string {
  saveHfModel(model, dir, opts);
  const t = tinyTokenizer().dir;
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(t, f), path.join(dir, f));
  return dir;
}

/** All-position logits of one sequence (copied out of the engine's buffers). */
export function logitsOf(model: LlamaModel, ids: readonly number[]): Float32Array {
  const out = noGrad(() => Float32Array.from(model.forward(Int32Array.from(ids), { B: 1, T: ids.length }).data));
  tape.reset();
  return out;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

/** Gives every attached LoRA a random B (normal, std) so the adapter changes the model. */
export function randomizeLoraB(model: LlamaModel, seed: number, std = 0.2): void {
  const r = mulberry32(seed);
  for (const t of model.loraParams()) {
    if (!t.name.endsWith('lora_B.weight')) continue;
    for (let i = 0; i < t.data.length; i++) t.data[i] = (r() * 2 - 1) * std * Math.sqrt(3);
  }
}
