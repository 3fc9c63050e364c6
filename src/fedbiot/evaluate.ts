// Evaluation of one model view (full model = AdapFu, compressed model = AdapEmu): response NLL /
// perplexity by teacher forcing, and a task metric from greedy generations.
import { noGrad, tape } from '../tensor/tensor.js';
import { lmLoss, type TokenBatch } from '../nn/lm.js';
import { generateGreedyBatch } from '../nn/generate.js';
import type { LlamaModel } from '../nn/llama.js';

export interface GenerationCase {
  /** Prompt token ids (bos included when the tokenizer adds it). */
  promptIds: number[];
}

/** Scores generated texts for the task (accuracy, exact match, pass@1...). */
export type TaskScorer = (outputs: string[]) => Promise<Record<string, number>>;

/** Mean NLL per response token over the batches, and its perplexity. */
export function responseNll(
  model: LlamaModel,
  batches: readonly TokenBatch[],
): { nll: number; ppl: number; tokens: number } {
  let total = 0;
  let tokens = 0;
  noGrad(() => {
    for (const b of batches) {
      const l = lmLoss(model, b);
      total += l.item() * l.count;
      tokens += l.count;
      tape.reset();
    }
  });
  const nll = tokens > 0 ? total / tokens : NaN;
  return { nll, ppl: Math.exp(nll), tokens };
}

/** Greedy generations for every prompt, decoded in batches of `batch` rows. */
export function greedyOutputs(
  model: LlamaModel,
  cases: readonly GenerationCase[],
  maxNewTokens: number,
  stopIds: number[],
  batch = 8,
): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < cases.length; i += batch) {
    out.push(
      ...generateGreedyBatch(
        model,
        cases.slice(i, i + batch).map((c) => c.promptIds),
        { maxNewTokens, stopIds },
      ),
    );
  }
  return out;
}

export interface EvalSpec {
  nllBatches: readonly TokenBatch[];
  cases: readonly GenerationCase[];
  maxNewTokens: number;
  stopIds: number[];
  decode: (ids: number[]) => string;
  scorer: TaskScorer | null;
}

export async function evaluateModel(model: LlamaModel, spec: EvalSpec): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  if (spec.nllBatches.length > 0) {
    const { nll, ppl } = responseNll(model, spec.nllBatches);
    out.nll = nll;
    out.ppl = ppl;
  }
  if (spec.scorer && spec.cases.length > 0) {
    const gens = greedyOutputs(model, spec.cases, spec.maxNewTokens, spec.stopIds).map((ids) =>
      spec.decode(ids.filter((t) => !spec.stopIds.includes(t))),
    );
    Object.assign(out, await spec.scorer(gens));
  }
  return out;
}
