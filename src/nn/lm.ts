// Causal language-model objective: position t predicts token t + 1. Labels use -100 for positions
// that carry no loss (prompt, padding), as Hugging Face does.
import type { Tensor } from '../tensor/tensor.js';
import type { LlamaModel } from './llama.js';

export const IGNORE_INDEX = -100;

export interface TokenBatch {
  B: number;
  T: number;
  /** [B * T] token ids (padding filled with any valid id). */
  ids: Int32Array;
  /** [B * T] labels aligned with ids (-100 = no loss at this token). */
  labels: Int32Array;
  /** [B * T] 1 for real tokens, 0 for padding. */
  attention: Uint8Array;
}

/** Positions that carry a next-token loss: labelled tokens after the first column of their row. */
export function lossTokens(batch: TokenBatch): number {
  let n = 0;
  for (let i = 0; i < batch.labels.length; i++) if (i % batch.T !== 0 && batch.labels[i] !== IGNORE_INDEX) n++;
  return n;
}

/**
 * Rows [r0, r1) of a right-padded batch, without the columns that are padding in all of them: a
 * micro-batch of short rows costs their length, not the longest row's. Rows are computed
 * independently (causal attention, padding masked), so each row's losses are unchanged.
 */
export function sliceRows(batch: TokenBatch, r0: number, r1: number): TokenBatch {
  const { T } = batch;
  let len = 0;
  for (let b = r0; b < r1; b++) for (let t = T - 1; t >= len; t--) if (batch.attention[b * T + t]) len = t + 1;
  const B = r1 - r0;
  const take = <A extends Int32Array | Uint8Array>(src: A, make: (n: number) => A): A => {
    const out = make(B * len);
    for (let b = 0; b < B; b++) out.set(src.subarray((r0 + b) * T, (r0 + b) * T + len), b * len);
    return out;
  };
  return {
    B,
    T: len,
    ids: take(batch.ids, (n) => new Int32Array(n)),
    labels: take(batch.labels, (n) => new Int32Array(n)),
    attention: take(batch.attention, (n) => new Uint8Array(n)),
  };
}

/** Shifts labels left by one within each row: targets[b, t] = labels[b, t + 1]. */
export function shiftedTargets(labels: Int32Array, B: number, T: number): Int32Array {
  const out = new Int32Array(B * T).fill(IGNORE_INDEX);
  for (let b = 0; b < B; b++) for (let t = 0; t + 1 < T; t++) out[b * T + t] = labels[b * T + t + 1]!;
  return out;
}

/** Additive key mask [B, T] from the attention mask: 0 for tokens, -Infinity for padding. */
export function keyMaskOf(batch: TokenBatch): Float32Array | null {
  let any = false;
  for (let i = 0; i < batch.attention.length; i++) if (!batch.attention[i]) any = true;
  if (!any) return null;
  const m = new Float32Array(batch.B * batch.T);
  for (let i = 0; i < m.length; i++) m[i] = batch.attention[i] ? 0 : -Infinity;
  return m;
}

/** Row weights [B * T] for per-position losses: 1 where the next-token position is real. */
export function positionWeights(batch: TokenBatch): Float32Array {
  const w = new Float32Array(batch.B * batch.T);
  for (let i = 0; i < w.length; i++) w[i] = batch.attention[i] ? 1 : 0;
  return w;
}

/**
 * Mean next-token cross-entropy over labelled positions; returns the loss and its token count. The
 * LM head and the loss run in row chunks (LlamaModel.headLosses): the [B*T, V] logits never exist whole.
 */
export function lmLoss(
  model: LlamaModel,
  batch: TokenBatch,
  opts: { recompute?: boolean } = {},
): Tensor & { count: number } {
  const { B, T } = batch;
  const h = model.runLayers(model.embed(batch.ids, B, T), {
    B,
    T,
    keyMask: keyMaskOf(batch),
    recompute: opts.recompute ?? false,
  });
  return model.headLosses(h, { ce: { targets: shiftedTargets(batch.labels, B, T), ignoreIndex: IGNORE_INDEX } }).ce!;
}
