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

/** Samples from logits with temperature, top-k and top-p (nucleus) filtering. */
export function sampleLogits(
  logits: ArrayLike<number>,
  o: { temperature: number; topK?: number; topP?: number },
  rand: Random,
): number {
  const V = logits.length;
  const idx = Array.from({ length: V }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]!);
  const k = o.topK && o.topK > 0 ? Math.min(o.topK, V) : V;
  const top = idx.slice(0, k);
  const maxL = logits[top[0]!]!;
  let probs = top.map((i) => Math.exp((logits[i]! - maxL) / o.temperature));
  let s = probs.reduce((a, b) => a + b, 0);
  probs = probs.map((p) => p / s);
  let keep = top.length;
  if (o.topP !== undefined && o.topP < 1) {
    let c = 0;
    for (let i = 0; i < probs.length; i++) {
      c += probs[i]!;
      if (c >= o.topP) {
        keep = i + 1;
        break;
      }
    }
  }
  s = probs.slice(0, keep).reduce((a, b) => a + b, 0);
  let r = rand() * s;
  for (let i = 0; i < keep; i++) {
    r -= probs[i]!;
    if (r <= 0) return top[i]!;
  }
  return top[keep - 1]!;
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
