// Server side, the lower level: align the emulator to the block it replaces, with the current
// adapter plugged in and frozen. Only the emulator's LoRA trains.
//   loss = w * hidden(E(h_in), B(h_in)) + lambda * KL(p_full || p_compressed) + mu * CE(compressed)
// hidden = NMSE at the emulator output (default), layer-wise NMSE between each kept layer and its
// original counterpart (summed over the kept layers, as the reference does, or averaged), or
// 1 - cosine. Padding positions are masked out of every term. The weights are what tells the methods
// apart (see objectives.ts): FedBiOT uses NMSE + 0.9 KL, FedOT and Offsite-Tuning NMSE and an LM loss.
import { Tensor, noGrad, tape, saved } from '../tensor/tensor.js';
import { nmse, cosineLoss, mul, weightedSum } from '../tensor/ops.js';
import { keyMaskOf, positionWeights, shiftedTargets, IGNORE_INDEX, type TokenBatch } from '../nn/lm.js';
import { Optimizer, type OptimizerOptions } from '../nn/optim.js';
import type { ForwardContext } from '../nn/llama.js';
import { setTrainable, type SplitModels } from './compress.js';
import { mulberry32 } from '../util/rng.js';

export interface AlignLossOptions {
  hiddenLoss: 'nmse' | 'layerwise-nmse' | 'cosine';
  /** Weight of the hidden-state term (default 1; Offsite-Tuning's kd_weight is 30). */
  hiddenWeight?: number;
  /** Layer-wise NMSE: sum over the kept layers (the reference, default) or their mean. */
  layerwiseReduction?: 'sum' | 'mean';
  /** Weight of the KL term (FedBiOT reference: 0.9; 0 = off, and not computed). */
  lambda: number;
  /** Weight of the optional next-token CE (LM) term on the public data (0 = off). */
  mu: number;
}

export interface AlignLossValues {
  loss: number;
  /** The hidden-state term as it enters the loss (before its weight); layer-wise: summed or averaged. */
  hidden: number;
  /** 0 when lambda is 0 (not computed). */
  kl: number;
  /** 0 when mu is 0 (not computed). */
  ce: number;
}

/** Broadcasts a [B*T] 0/1 row mask over D features as a constant tensor. */
function rowMaskTensor(w: Float32Array, D: number, shape: readonly number[]): Tensor {
  const m = saved(w.length * D, 'align.rowMask'); // pooled: recycled when the tape is reset
  m.fill(0);
  for (let i = 0; i < w.length; i++) if (w[i]) m.fill(1, i * D, (i + 1) * D);
  return new Tensor(m, shape, { name: 'rowMask' });
}

/** Builds the alignment loss graph for one batch (call tape.backward on .tensor). */
export function alignmentLoss(
  s: SplitModels,
  batch: TokenBatch,
  o: AlignLossOptions,
): { tensor: Tensor; values: AlignLossValues } {
  const ctx: ForwardContext = { B: batch.B, T: batch.T, keyMask: keyMaskOf(batch) };
  const weights = positionWeights(batch);
  const hasPadding = ctx.keyMask !== null;
  const m = s.full;
  const D = m.config.hiddenSize;
  const hIn = m.runLayers(m.embed(batch.ids, batch.B, batch.T), ctx, s.adapterBottom);

  // Teacher: the original block and, when the KL term is on, the full model with the current
  // adapter. No graph.
  const teacherHidden: Float32Array[] = [];
  const wantKl = o.lambda > 0;
  const teacherNormed = noGrad(() => {
    let h = hIn;
    const keep = new Set(s.plan.emulator);
    const layerwise = o.hiddenLoss === 'layerwise-nmse';
    s.block.forEach((layer, i) => {
      // Only each layer's output outlives it (as in runLayers), so the teacher holds one layer's
      // activations at a time instead of the whole block's.
      const next = tape.transient(() => m.layerForward(layer, h, ctx, i));
      if (h !== hIn && !teacherHidden.includes(h.data)) h.dispose();
      h = next;
      if (layerwise && keep.has(layer.sourceIndex)) teacherHidden.push(h.data);
    });
    if (o.hiddenLoss !== 'layerwise-nmse') teacherHidden.push(h.data);
    // what the LM head reads; the teacher's logits are made chunk by chunk inside headLosses
    return wantKl ? m.normed(m.runLayers(h, ctx, s.adapterTop)).data : null;
  });

  // Student: the emulator, then the same adapter.
  const mask = hasPadding ? rowMaskTensor(weights, D, hIn.shape) : null;
  const masked = (t: Tensor) => (mask ? mul(t, mask) : t);
  const maskedTeacher = (a: Float32Array) => {
    if (!mask) return a;
    const c = saved(a.length, 'align.maskedTeacher');
    for (let i = 0; i < a.length; i++) c[i] = a[i]! * mask.data[i]!;
    return c;
  };
  const hiddenTerms: Tensor[] = [];
  let h = hIn;
  s.emulator.forEach((layer, i) => {
    h = m.layerForward(layer, h, ctx, i);
    if (o.hiddenLoss === 'layerwise-nmse') hiddenTerms.push(nmse(masked(h), maskedTeacher(teacherHidden[i]!)));
  });
  if (o.hiddenLoss === 'nmse') hiddenTerms.push(nmse(masked(h), maskedTeacher(teacherHidden[0]!)));
  if (o.hiddenLoss === 'cosine') hiddenTerms.push(cosineLoss(masked(h), maskedTeacher(teacherHidden[0]!)));
  const perTerm = (o.layerwiseReduction ?? 'sum') === 'mean' ? 1 / hiddenTerms.length : 1;
  const hiddenWeight = o.hiddenWeight ?? 1;

  const terms: [Tensor, number][] = hiddenTerms.map((t) => [t, hiddenWeight * perTerm]);
  let kl: Tensor | null = null;
  let ce: Tensor | null = null;
  if (wantKl || o.mu > 0) {
    const losses = m.headLosses(m.runLayers(h, ctx, s.adapterTop), {
      kl: teacherNormed ? { teacherHidden: teacherNormed, rowWeight: weights } : null,
      ce: o.mu > 0 ? { targets: shiftedTargets(batch.labels, batch.B, batch.T), ignoreIndex: IGNORE_INDEX } : null,
    });
    kl = losses.kl;
    ce = losses.ce;
    if (kl) terms.push([kl, o.lambda]);
    if (ce) terms.push([ce, o.mu]);
  }
  const tensor = weightedSum(terms, 'align.loss');
  const hidden = hiddenTerms.reduce((a, t) => a + t.item(), 0) * perTerm;
  return { tensor, values: { loss: tensor.item(), hidden, kl: kl ? kl.item() : 0, ce: ce ? ce.item() : 0 } };
}

export interface AlignRunOptions extends AlignLossOptions {
  steps: number;
  optimizer: OptimizerOptions;
  maxGradNorm?: number;
  /** Seeds the emulator LoRA's dropout masks (used when its dropout is > 0). */
  dropoutSeed?: number;
}

/**
 * Runs `steps` alignment steps on batches from `next()`, with a fresh optimiser (the reference
 * re-creates it every round). Returns the mean loss values over the steps.
 */
export function runAlignment(
  s: SplitModels,
  next: () => TokenBatch,
  o: AlignRunOptions,
  onStep?: (step: number, v: AlignLossValues) => void,
): AlignLossValues {
  const mean: AlignLossValues = { loss: 0, hidden: 0, kl: 0, ce: 0 };
  if (o.steps <= 0 || s.emulator.every((l) => l.loraParams().length === 0)) return mean;
  setTrainable(s, 'emulator');
  const dropout = mulberry32(o.dropoutSeed ?? 0);
  for (const l of s.emulator) l.setLoraDropout(dropout);
  try {
    const opt = new Optimizer(
      s.emulator.flatMap((l) => l.loraParams()),
      o.optimizer,
    );
    for (let step = 0; step < o.steps; step++) {
      opt.zeroGrad();
      const { tensor, values } = alignmentLoss(s, next(), o);
      if (!Number.isFinite(values.loss)) throw new Error(`alignment: loss became ${values.loss} at step ${step}`);
      tape.backward(tensor);
      tape.reset();
      opt.step({ maxGradNorm: o.maxGradNorm });
      for (const k of Object.keys(mean) as (keyof AlignLossValues)[]) mean[k] += values[k] / o.steps;
      onStep?.(step, values);
    }
  } finally {
    tape.reset();
    setTrainable(s, 'none');
    for (const l of s.emulator) l.setLoraDropout(null);
  }
  return mean;
}
