// GSM8K-style scoring: the number after the last "####", else the last number in the text,
// compared numerically.

const NUMBER = /-?\$?\s?\d[\d,]*(?:\.\d+)?|-?\$?\.\d+/g;

/** Parses "1,234", "$5", "-3.50", "7." to a number; null when not numeric. */
export function parseNumber(raw: string): number | null {
  const cleaned = raw.replace(/[\s,$]/g, '').replace(/\.$/, '');
  if (!/^-?(\d+(\.\d*)?|\.\d+)$/.test(cleaned)) return null;
  const n = Number(cleaned);
  return Number.isFinite(n) ? n : null;
}

/** The numbers in a text, in order. */
function numbersIn(text: string): number[] {
  const out: number[] = [];
  for (const m of text.matchAll(NUMBER)) {
    // Commas used as list separators ("1,2,3" is rare, "3, 4" is common): a comma must be followed
    // by exactly three digits to be a thousands separator.
    const token = m[0]
      .replace(/\s+/g, '')
      .replace(/,(?!\d{3}(?!\d))/g, ' ')
      .split(' ')[0]!;
    const n = parseNumber(token);
    if (n !== null) out.push(n);
  }
  return out;
}

/**
 * The final answer of a solution text: the first number after the last "####"; else the last
 * number anywhere; null when there is none.
 */
export function extractAnswer(text: string): number | null {
  const hash = text.lastIndexOf('####');
  if (hash >= 0) {
    const after = numbersIn(text.slice(hash + 4));
    if (after.length > 0) return after[0]!;
  }
  const all = numbersIn(text);
  return all.length > 0 ? all[all.length - 1]! : null;
}

/** Numeric equality with a relative tolerance for float noise. */
export function sameNumber(a: number | null, b: number | null, tol = 1e-6): boolean {
  if (a === null || b === null) return false;
  return Math.abs(a - b) <= tol * Math.max(1, Math.abs(a), Math.abs(b));
}

export interface AccuracyResult {
  correct: number;
  total: number;
  accuracy: number;
  /** Per-item: extracted prediction and correctness. */
  items: { predicted: number | null; gold: number | null; correct: boolean }[];
}

/** Accuracy of generated solutions against gold answers (numbers, or texts ending in "#### N"). */
export function mathAccuracy(predictions: readonly string[], golds: readonly (string | number)[]): AccuracyResult {
  if (predictions.length !== golds.length)
    throw new Error(`mathAccuracy: ${predictions.length} predictions for ${golds.length} golds`);
  const items = predictions.map((p, i) => {
    const g = golds[i]!;
    const gold = typeof g === 'number' ? g : extractAnswer(g);
    const predicted = extractAnswer(p);
    return { predicted, gold, correct: sameNumber(predicted, gold) };
  });
  const correct = items.filter((x) => x.correct).length;
  return { correct, total: items.length, accuracy: items.length ? correct / items.length : 0, items };
}
