// Shared machinery of the synthetic task generators: seeded helpers and the assembly of
// disjoint train/test splits (no prompt text appears in both).

import { deriveSeed, mulberry32, type Random } from '../util/rng.js';
import type { Example } from '../data/types.js';

export type TaskName = 'math' | 'code' | 'qa';

export interface TaskOptions {
  seed?: number;
  trainSize?: number;
  testSize?: number;
}

export interface TaskSplits {
  name: TaskName;
  train: Example[];
  test: Example[];
  /** Categories the generator can produce, in a fixed order. */
  categories: string[];
  warnings: string[];
}

/** One generated item before ids are given. */
export interface Draft {
  instruction: string;
  input?: string;
  response: string;
  category: string;
  meta?: Record<string, unknown>;
}

export function randInt(rand: Random, lo: number, hi: number): number {
  return lo + Math.floor(rand() * (hi - lo + 1));
}

export function pick<T>(rand: Random, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)]!;
}

/**
 * Draws until trainSize + testSize distinct prompts exist (or attempts run out, for generators
 * with a finite space, which then yield fewer and warn). The first testSize distinct drafts form
 * the test split, so the test set does not change when only trainSize does... as long as the
 * generator draws the same sequence, which it does for a fixed seed.
 */
export function assembleSplits(
  name: TaskName,
  categories: string[],
  generate: (rand: Random) => Draft,
  opts: TaskOptions & { defaultTrain: number; defaultTest: number },
): TaskSplits {
  const trainSize = opts.trainSize ?? opts.defaultTrain;
  const testSize = opts.testSize ?? opts.defaultTest;
  const rand = mulberry32(deriveSeed(opts.seed ?? 0, `task-${name}`));
  const seen = new Set<string>();
  const drafts: Draft[] = [];
  const need = trainSize + testSize;
  const maxAttempts = need * 50 + 1000;
  for (let attempt = 0; drafts.length < need && attempt < maxAttempts; attempt++) {
    const d = generate(rand);
    const key = promptKey(d);
    if (seen.has(key)) continue;
    seen.add(key);
    drafts.push(d);
  }
  const warnings: string[] = [];
  let nTest = testSize;
  if (drafts.length < need) {
    // Keep the train/test ratio when the space is too small.
    nTest = Math.round((drafts.length * testSize) / need);
    warnings.push(
      `${name}: only ${drafts.length} distinct prompts for ${need} requested; split ${drafts.length - nTest}/${nTest}`,
    );
  }
  const toExample =
    (split: string) =>
    (d: Draft, i: number): Example => ({
      id: `${name}-${split}-${i}`,
      format: 'alpaca',
      instruction: d.instruction,
      input: d.input ?? '',
      response: d.response,
      category: d.category,
      ...(d.meta ? { meta: d.meta } : {}),
    });
  return {
    name,
    test: drafts.slice(0, nTest).map(toExample('test')),
    train: drafts.slice(nTest).map(toExample('train')),
    categories,
    warnings,
  };
}

/** The text that must not repeat across splits. */
export function promptKey(d: { instruction: string; input?: string }): string {
  return `${d.instruction}\u0000${d.input ?? ''}`;
}
