// Free-text metrics: SQuAD-style exact match and Rouge-L F1 over tokens.

/** Lowercase, strip punctuation and the articles a/an/the, collapse whitespace (SQuAD normalisation). */
export function normalizeAnswer(s: string): string {
  return s
    .toLowerCase()
    .replace(/[\p{P}\p{S}]/gu, ' ')
    .replace(/\b(a|an|the)\b/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

/** 1 when the normalised prediction equals any normalised reference, else 0. */
export function exactMatch(prediction: string, references: string | readonly string[]): number {
  const refs = typeof references === 'string' ? [references] : references;
  const p = normalizeAnswer(prediction);
  return refs.some((r) => normalizeAnswer(r) === p) ? 1 : 0;
}

/** Tokens for Rouge: lowercase alphanumeric runs. */
export function rougeTokens(s: string): string[] {
  return s.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
}

/** Length of the longest common subsequence of two token lists (O(n*m) time, O(m) memory). */
export function lcsLength(a: readonly string[], b: readonly string[]): number {
  if (a.length === 0 || b.length === 0) return 0;
  let prev = new Array<number>(b.length + 1).fill(0);
  let cur = new Array<number>(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      cur[j] = a[i - 1] === b[j - 1] ? prev[j - 1]! + 1 : Math.max(prev[j]!, cur[j - 1]!);
    }
    [prev, cur] = [cur, prev];
  }
  return prev[b.length]!;
}

export interface RougeScore {
  precision: number;
  recall: number;
  f1: number;
}

/** Rouge-L between a prediction and one reference; with several references, the best F1. */
export function rougeL(prediction: string, references: string | readonly string[]): RougeScore {
  const refs = typeof references === 'string' ? [references] : references;
  const p = rougeTokens(prediction);
  let best: RougeScore = { precision: 0, recall: 0, f1: 0 };
  for (const r of refs) {
    const t = rougeTokens(r);
    const lcs = lcsLength(p, t);
    if (lcs === 0) continue;
    const precision = lcs / p.length;
    const recall = lcs / t.length;
    const f1 = (2 * precision * recall) / (precision + recall);
    if (f1 > best.f1) best = { precision, recall, f1 };
  }
  return best;
}

export interface TextScores {
  total: number;
  exactMatch: number;
  rougeL: number;
  items: { exactMatch: number; rougeL: number }[];
}

/** Mean exact match and Rouge-L F1 over a set. */
export function textScores(
  predictions: readonly string[],
  references: readonly (string | readonly string[])[],
): TextScores {
  if (predictions.length !== references.length)
    throw new Error(`textScores: ${predictions.length} predictions for ${references.length} references`);
  const items = predictions.map((p, i) => ({
    exactMatch: exactMatch(p, references[i]!),
    rougeL: rougeL(p, references[i]!).f1,
  }));
  const n = items.length || 1;
  return {
    total: items.length,
    exactMatch: items.reduce((a, x) => a + x.exactMatch, 0) / n,
    rougeL: items.reduce((a, x) => a + x.rougeL, 0) / n,
    items,
  };
}
