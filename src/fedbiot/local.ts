// Client side, the upper level: K local steps on private data, minimising the response-only CE plus
// epsilon * ||A - A(t)||^2. The proximal term is the plain parameter distance over the adapter's LoRA
// factors (A and B of every module) to the round's starting point, and it carries real gradient
// 2 * epsilon * (A - A(t)) (the reference code's version was a constant by accident).
import { tape, type Tensor } from '../tensor/tensor.js';
import { squaredDistance, weightedSum } from '../tensor/ops.js';
import { Optimizer, type OptimizerOptions } from '../nn/optim.js';
import { lmLoss, type TokenBatch } from '../nn/lm.js';
import type { LlamaModel } from '../nn/llama.js';

export interface LocalTrainOptions {
  steps: number;
  optimizer: OptimizerOptions;
  /** Backward passes per optimiser step. */
  gradAccum: number;
  /** Proximal weight epsilon (0 = plain FedAvg local training). */
  proximal: number;
  maxGradNorm?: number;
}

export interface LocalTrainResult {
  losses: number[];
  meanLoss: number;
  tokens: number;
}

/** The scalar local objective for one batch: CE + epsilon * sum ||p - anchor||^2. */
export function localObjective(
  model: LlamaModel,
  params: readonly Tensor[],
  anchors: readonly Float32Array[],
  batch: TokenBatch,
  epsilon: number,
): { loss: Tensor; ce: number; tokens: number } {
  const ce = lmLoss(model, batch);
  const terms: [Tensor, number][] = [[ce, 1]];
  if (epsilon > 0) params.forEach((p, i) => terms.push([squaredDistance(p, anchors[i]!), epsilon]));
  return { loss: terms.length === 1 ? ce : weightedSum(terms, 'local.loss'), ce: ce.item(), tokens: ce.count };
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
        const { loss, ce, tokens: n } = localObjective(model, params, anchors, next(), o.proximal);
        if (!Number.isFinite(ce)) throw new Error(`local training: loss became ${ce} at step ${step}`);
        if (loss.requiresGrad) tape.backward(loss);
        tape.reset();
        stepLoss += ce / o.gradAccum;
        tokens += n;
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
