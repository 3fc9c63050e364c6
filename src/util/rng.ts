// Seeded pseudo-random numbers: every random choice in the project goes through these, so a seed
// fixes a run. mulberry32 is small, fast and good enough for sampling and initialisation.

export type Random = () => number;

/** Uniform [0, 1) generator from a 32-bit seed. */
export function mulberry32(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Derives an independent seed from a base seed and a label (e.g. "client-3", "round-2"). */
export function deriveSeed(seed: number, label: string): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (let i = 0; i < label.length; i++) {
    h = Math.imul(h ^ label.charCodeAt(i), 0x01000193) >>> 0;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  return h >>> 0;
}

/** Standard normal by Box-Muller. */
export function normal(rand: Random): number {
  let u = rand();
  while (u <= 1e-12) u = rand();
  const v = rand();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** Gamma(shape, 1) by Marsaglia-Tsang (shape < 1 via the boost u^(1/shape)). */
export function gamma(rand: Random, shape: number): number {
  if (shape <= 0) throw new Error(`gamma: shape must be positive, got ${shape}`);
  if (shape < 1) return gamma(rand, shape + 1) * Math.pow(Math.max(rand(), 1e-300), 1 / shape);
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = normal(rand);
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = rand();
    if (u < 1 - 0.0331 * x ** 4) return d * v;
    if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
  }
}

/** A sample from Dirichlet(alpha, ..., alpha) of dimension k. */
export function dirichlet(rand: Random, alpha: number, k: number): number[] {
  const g = Array.from({ length: k }, () => gamma(rand, alpha));
  const s = g.reduce((a, b) => a + b, 0);
  return s > 0 ? g.map((x) => x / s) : g.map(() => 1 / k);
}

/** Fisher-Yates shuffle in place. */
export function shuffle<T>(rand: Random, items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

/** Fills an array with N(0, std^2) samples. */
export function fillNormal(rand: Random, out: Float32Array, std: number): Float32Array {
  for (let i = 0; i < out.length; i++) out[i] = normal(rand) * std;
  return out;
}
