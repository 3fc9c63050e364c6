// Perplexity from summed negative log-likelihoods (natural log) and token counts.

export interface NllItem {
  /** Sum of -log p over the example's scored tokens. */
  nll: number;
  /** Number of scored tokens. */
  tokens: number;
}

export interface PerplexityResult {
  tokens: number;
  /** Token-weighted mean NLL (nats per token). */
  meanNll: number;
  perplexity: number;
  bitsPerToken: number;
  /** Mean over examples of each example's own per-token NLL (each example weighs the same). */
  macroMeanNll: number;
}

export function perplexity(items: readonly NllItem[]): PerplexityResult {
  let nll = 0;
  let tokens = 0;
  let macro = 0;
  let counted = 0;
  for (const it of items) {
    if (it.tokens < 0 || !Number.isFinite(it.nll)) throw new Error(`perplexity: bad item ${JSON.stringify(it)}`);
    nll += it.nll;
    tokens += it.tokens;
    if (it.tokens > 0) {
      macro += it.nll / it.tokens;
      counted++;
    }
  }
  const meanNll = tokens > 0 ? nll / tokens : NaN;
  return {
    tokens,
    meanNll,
    perplexity: Math.exp(meanNll),
    bitsPerToken: meanNll / Math.LN2,
    macroMeanNll: counted ? macro / counted : NaN,
  };
}

/** Adds per-batch sums into a running total (for streaming evaluation). */
export class NllAccumulator {
  private items: NllItem[] = [];
  add(nll: number, tokens: number): void {
    this.items.push({ nll, tokens });
  }
  result(): PerplexityResult {
    return perplexity(this.items);
  }
}
