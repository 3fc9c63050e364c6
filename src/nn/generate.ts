// Text generation with a KV cache: greedy, or sampling with temperature / top-k / top-p.
import { tape } from '../tensor/tensor.js';
import { KVCache, type LlamaModel } from './llama.js';
import { mulberry32, type Random } from '../util/rng.js';

export interface SamplingOptions {
  maxNewTokens: number;
  /** 0 or greedy=true: argmax. */
  temperature?: number;
  greedy?: boolean;
  topK?: number;
  topP?: number;
  seed?: number;
  /** Stop when one of these ids is produced (default: the model's eos). */
  stopIds?: number[];
  /** Called with each new token id as it is produced (streaming). */
  onToken?: (id: number) => void;
}

export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

/**
 * Samples from logits with temperature, top-k and top-p (nucleus) filtering: the candidates are the
 * k largest logits in descending order (ties by index), their probabilities exp((l - max) / T)
 * normalized over all k, cut after the first prefix whose mass reaches topP, and one is drawn from
 * that prefix. Only the values are sorted (a native numeric sort): the draw picks a rank, and the
 * index of that rank is found by one scan for its value, so a 152k vocabulary costs milliseconds
 * rather than a comparator sort of every index.
 */
export function sampleLogits(
  logits: ArrayLike<number>,
  o: { temperature: number; topK?: number; topP?: number },
  rand: Random,
): number {
  const V = logits.length;
  const k = o.topK && o.topK > 0 ? Math.min(o.topK, V) : V;
  // the k largest values, descending
  const vals = Float64Array.from(logits)
    .sort()
    .subarray(V - k)
    .reverse();
  const maxL = vals[0]!;
  const probs = new Float64Array(k);
  let s = 0;
  for (let i = 0; i < k; i++) s += probs[i] = Math.exp((vals[i]! - maxL) / o.temperature);
  for (let i = 0; i < k; i++) probs[i]! /= s;
  let keep = k;
  if (o.topP !== undefined && o.topP < 1) {
    let c = 0;
    for (let i = 0; i < k; i++) {
      c += probs[i]!;
      if (c >= o.topP) {
        keep = i + 1;
        break;
      }
    }
  }
  s = 0;
  for (let i = 0; i < keep; i++) s += probs[i]!;
  let r = rand() * s;
  let rank = keep - 1;
  for (let i = 0; i < keep; i++) {
    r -= probs[i]!;
    if (r <= 0) {
      rank = i;
      break;
    }
  }
  return indexOfRank(logits, vals, rank);
}

/**
 * The index holding rank `rank` of the logits in descending order, ties in ascending index order (as
 * a stable sort of all indices orders them); `vals` is the values in that order (a prefix suffices).
 */
function indexOfRank(logits: ArrayLike<number>, vals: Float64Array, rank: number): number {
  const v = vals[rank]!;
  let first = rank;
  while (first > 0 && vals[first - 1] === v) first--;
  let tie = rank - first;
  for (let i = 0; i < logits.length; i++) if (logits[i] === v && tie-- === 0) return i;
  return argmax(logits); // only for NaN logits, which order nowhere
}

/** Generates up to maxNewTokens after the prompt ids; returns only the new ids. */
export function generate(model: LlamaModel, promptIds: number[], o: SamplingOptions): number[] {
  if (promptIds.length === 0) throw new Error('generate: the prompt is empty (no tokens)');
  const capacity = Math.min(model.config.maxPositionEmbeddings, promptIds.length + o.maxNewTokens);
  if (promptIds.length >= capacity)
    throw new Error(
      `generate: prompt of ${promptIds.length} tokens leaves no room under the context length ${model.config.maxPositionEmbeddings}`,
    );
  const cache = new KVCache(model.layers.length, capacity, model.config.numKvHeads * model.config.headDim);
  const stop = new Set(o.stopIds ?? (model.config.eosTokenId !== null ? [model.config.eosTokenId] : []));
  const greedy = o.greedy || !o.temperature || o.temperature <= 0;
  const rand = mulberry32(o.seed ?? 0);
  const out: number[] = [];
  let logits = model.lastLogits(Int32Array.from(promptIds), cache);
  tape.reset();
  while (out.length < o.maxNewTokens) {
    const next = greedy
      ? argmax(logits)
      : sampleLogits(logits, { temperature: o.temperature!, topK: o.topK, topP: o.topP }, rand);
    out.push(next);
    o.onToken?.(next);
    if (stop.has(next) || cache.length >= capacity) break;
    logits = model.lastLogits(Int32Array.from([next]), cache);
    tape.reset();
  }
  return out;
}

/**
 * Greedy generation for several prompts at once: rows are left-padded to the longest prompt and
 * decoded together, so each weight matrix is read once per step for the whole batch instead of once
 * per row. Returns the new ids of each row (up to and including its stop token).
 */
export function generateGreedyBatch(
  model: LlamaModel,
  prompts: readonly number[][],
  o: { maxNewTokens: number; stopIds?: number[] },
): number[][] {
  const B = prompts.length;
  if (B === 0) return [];
  if (B === 1)
    return [generate(model, prompts[0]!, { maxNewTokens: o.maxNewTokens, greedy: true, stopIds: o.stopIds })];
  const P = Math.max(...prompts.map((p) => p.length));
  if (prompts.some((p) => p.length === 0)) throw new Error('generate: a prompt is empty (no tokens)');
  const capacity = Math.min(model.config.maxPositionEmbeddings, P + o.maxNewTokens);
  if (P >= capacity)
    throw new Error(
      `generate: prompt of ${P} tokens leaves no room under the context length ${model.config.maxPositionEmbeddings}`,
    );
  const cache = new KVCache(model.layers.length, capacity, model.config.numKvHeads * model.config.headDim, B);
  const mask = new Float32Array(B * capacity);
  const ids = new Int32Array(B * P);
  prompts.forEach((p, b) => {
    const pad = P - p.length;
    for (let t = 0; t < pad; t++) mask[b * capacity + t] = -Infinity;
    for (let t = 0; t < p.length; t++) ids[b * P + pad + t] = p[t]!;
  });
  cache.keyMask = mask;
  const stop = new Set(o.stopIds ?? (model.config.eosTokenId !== null ? [model.config.eosTokenId] : []));
  const V = model.config.vocabSize;
  const out: number[][] = prompts.map(() => []);
  const done = new Array<boolean>(B).fill(false);
  let logits = model.lastLogits(ids, cache);
  tape.reset();
  for (let step = 0; step < o.maxNewTokens; step++) {
    const next = new Int32Array(B);
    for (let b = 0; b < B; b++) {
      next[b] = argmax(logits.subarray(b * V, (b + 1) * V));
      if (!done[b]) {
        out[b]!.push(next[b]!);
        if (stop.has(next[b]!)) done[b] = true;
      }
    }
    if (done.every(Boolean) || cache.length >= capacity) break;
    logits = model.lastLogits(next, cache);
    tape.reset();
  }
  return out;
}
