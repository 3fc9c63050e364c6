// Client side, the upper level: K local steps on private data, minimising the response-only CE plus
// epsilon * ||A - A(t)||^2. The proximal term is the plain parameter distance over the adapter's LoRA
// factors (A and B of every module) to the round's starting point, and it carries real gradient
// 2 * epsilon * (A - A(t)) (the reference code's version was a constant by accident).
import { tape, type Tensor } from '../tensor/tensor.js';
import { squaredDistance, weightedSum } from '../tensor/ops.js';
import { Optimizer, type OptimizerOptions } from '../nn/optim.js';
import { lmLoss, lossTokens, sliceRows, type TokenBatch } from '../nn/lm.js';
import type { LlamaModel } from '../nn/llama.js';

export interface LocalTrainOptions {
  steps: number;
  optimizer: OptimizerOptions;
  /** Backward passes per optimiser step. */
  gradAccum: number;
  /**
   * Rows per forward/backward pass: each batch runs as micro-batches of this many rows, their
   * losses weighted by their share of the batch's loss tokens, so the gradient is the whole batch's
   * (default: the whole batch at once). Fewer rows hold fewer activations at once.
   */
  microBatch?: number;
  /** Activation checkpointing of the trained layers (ForwardContext.recompute). */
  recompute?: boolean;
  /** Proximal weight epsilon (0 = plain FedAvg local training). */
  proximal: number;
  maxGradNorm?: number;
}

export interface LocalTrainResult {
  losses: number[];
  meanLoss: number;
  tokens: number;
}

/**
 * The scalar local objective for one batch: ceWeight * CE + epsilon * sum ||p - anchor||^2 (a
 * micro-batch carries its share of the batch's CE, and the proximal term rides on one of them).
 */
export function localObjective(
  model: LlamaModel,
  params: readonly Tensor[],
  anchors: readonly Float32Array[],
  batch: TokenBatch,
  epsilon: number,
  opts: { ceWeight?: number; recompute?: boolean } = {},
): { loss: Tensor; ce: number; tokens: number } {
  const ce = lmLoss(model, batch, { recompute: opts.recompute });
  const w = opts.ceWeight ?? 1;
  const terms: [Tensor, number][] = [[ce, w]];
  if (epsilon > 0) params.forEach((p, i) => terms.push([squaredDistance(p, anchors[i]!), epsilon]));
  const single = terms.length === 1 && w === 1;
  return { loss: single ? ce : weightedSum(terms, 'local.loss'), ce: ce.item(), tokens: ce.count };
}

/** A batch as micro-batches of at most `rows` rows, each with its loss-token count. */
function microBatches(batch: TokenBatch, rows: number | undefined): { batch: TokenBatch; tokens: number }[] {
  if (!rows || rows >= batch.B) return [{ batch, tokens: lossTokens(batch) }];
  const out: { batch: TokenBatch; tokens: number }[] = [];
  for (let r0 = 0; r0 < batch.B; r0 += rows) {
    const part = sliceRows(batch, r0, Math.min(batch.B, r0 + rows));
    out.push({ batch: part, tokens: lossTokens(part) });
  }
  return out;
}

/** Trains `params` (already marked trainable) of `model` in place. */
export function localTrain(
  model: LlamaModel,
  params: Tensor[],
  next: () => TokenBatch,
  o: LocalTrainOptions,
  onStep?: (step: number, loss: number) => void,
): LocalTrainResult {
  const opt = new Optimizer(params, o.optimizer);
  const anchors = params.map((p) => Float32Array.from(p.data));
  const losses: number[] = [];
  let tokens = 0;
  try {
    for (let step = 0; step < o.steps; step++) {
      opt.zeroGrad();
      let stepLoss = 0;
      for (let a = 0; a < o.gradAccum; a++) {
        const parts = microBatches(next(), o.microBatch);
        const total = parts.reduce((n, p) => n + p.tokens, 0);
        let ceSum = 0;
        parts.forEach((p, j) => {
          // Micro-batches without loss tokens add nothing, unless the proximal term rides on them.
          const last = j === parts.length - 1;
          if (p.tokens === 0 && parts.length > 1 && !(last && o.proximal > 0)) return;
          const share = parts.length === 1 ? 1 : total > 0 ? p.tokens / total : 0;
          const {
            loss,
            ce,
            tokens: n,
          } = localObjective(model, params, anchors, p.batch, last ? o.proximal : 0, {
            ceWeight: share,
            recompute: o.recompute,
          });
          if (!Number.isFinite(ce)) throw new Error(`local training: loss became ${ce} at step ${step}`);
          if (loss.requiresGrad) tape.backward(loss);
          tape.reset();
          ceSum += ce * share;
          tokens += n;
        });
        stepLoss += ceSum / o.gradAccum;
      }
      opt.step({ accumulated: o.gradAccum, maxGradNorm: o.maxGradNorm });
      losses.push(stepLoss);
      onStep?.(step, stepLoss);
    }
  } finally {
    tape.reset();
  }
  return { losses, meanLoss: losses.reduce((a, b) => a + b, 0) / Math.max(1, losses.length), tokens };
}
