// Privacy accounting for the subsampled Gaussian mechanism with Renyi differential privacy (RDP).
//
// One round releases (sum of clipped updates of the sampled clients) + N(0, (z C)^2) where each
// client is in the round with probability q: the Sampled Gaussian Mechanism. Its RDP at order a is
// log(A_a) / (a - 1) (Mironov, Talwar, Zhang 2019, "Renyi Differential Privacy of the Sampled
// Gaussian Mechanism", section 3.3), with A_a the binomial expansion for integer a and the two-sided
// erfc series for fractional a. RDP adds up over rounds, and the (epsilon, delta) conversion is
// Proposition 12 of Canonne, Kamath, Steinke 2020 (the bound TensorFlow Privacy and Opacus use).
// Adjacency is add-or-remove one client.
import { logErfc } from '../util/normal.js';

/** The orders TensorFlow Privacy's DP-SGD analysis uses: a good cover for the usual regimes. */
export const DEFAULT_ORDERS: readonly number[] = [
  1.25,
  1.5,
  1.75,
  2,
  2.25,
  2.5,
  3,
  3.5,
  4,
  4.5,
  ...Array.from({ length: 59 }, (_, i) => 5 + i),
  128,
  256,
  512,
];

function logAdd(a: number, b: number): number {
  const lo = Math.min(a, b);
  const hi = Math.max(a, b);
  if (lo === -Infinity) return hi;
  return Math.log1p(Math.exp(lo - hi)) + hi;
}

function logSub(a: number, b: number): number {
  if (a < b) throw new Error('accountant: log-space subtraction went negative');
  if (b === -Infinity) return a;
  if (a === b) return -Infinity;
  return Math.log(Math.expm1(a - b)) + b;
}

/** log A_a for integer a: sum_i binom(a, i) q^i (1-q)^(a-i) exp((i^2 - i) / (2 sigma^2)). */
function logAInt(q: number, sigma: number, a: number): number {
  let logA = -Infinity;
  let logBinom = 0; // log binom(a, 0)
  for (let i = 0; i <= a; i++) {
    if (i > 0) logBinom += Math.log(a - i + 1) - Math.log(i);
    const s = logBinom + i * Math.log(q) + (a - i) * Math.log1p(-q) + (i * i - i) / (2 * sigma * sigma);
    logA = logAdd(logA, s);
  }
  return logA;
}

/** log A_a for fractional a: the integral split at z0, each half an alternating binomial series. */
function logAFrac(q: number, sigma: number, a: number): number {
  let logA0 = -Infinity;
  let logA1 = -Infinity;
  const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
  let logAbsBinom = 0; // log |binom(a, 0)|
  let sign = 1;
  for (let i = 0; ; i++) {
    if (i > 0) {
      const f = (a - i + 1) / i;
      if (f < 0) sign = -sign;
      logAbsBinom += Math.log(Math.abs(f));
    }
    const j = a - i;
    const logT0 = logAbsBinom + i * Math.log(q) + j * Math.log1p(-q);
    const logT1 = logAbsBinom + j * Math.log(q) + i * Math.log1p(-q);
    const logE0 = Math.log(0.5) + logErfc((i - z0) / (Math.SQRT2 * sigma));
    const logE1 = Math.log(0.5) + logErfc((z0 - j) / (Math.SQRT2 * sigma));
    const logS0 = logT0 + (i * i - i) / (2 * sigma * sigma) + logE0;
    const logS1 = logT1 + (j * j - j) / (2 * sigma * sigma) + logE1;
    if (sign > 0) {
      logA0 = logAdd(logA0, logS0);
      logA1 = logAdd(logA1, logS1);
    } else {
      logA0 = logSub(logA0, logS0);
      logA1 = logSub(logA1, logS1);
    }
    if (Math.max(logS0, logS1) < -30) break;
    if (i > 100000) throw new Error(`accountant: the series for order ${a} did not converge`);
  }
  return logAdd(logA0, logA1);
}

/** RDP at order a of one step of the Sampled Gaussian Mechanism (sampling rate q, noise multiplier z). */
export function sgmRdp(q: number, z: number, a: number): number {
  if (!(q >= 0 && q <= 1)) throw new Error(`accountant: sampling rate must be in [0, 1], got ${q}`);
  if (!(a > 1)) throw new Error(`accountant: RDP orders must be > 1, got ${a}`);
  if (q === 0) return 0;
  if (!(z > 0) || !Number.isFinite(a)) return Infinity;
  if (q === 1) return a / (2 * z * z);
  return (Number.isInteger(a) ? logAInt(q, z, a) : logAFrac(q, z, a)) / (a - 1);
}

/** RDP over `steps` identical steps at each order. */
export function computeRdp(q: number, z: number, steps: number, orders: readonly number[] = DEFAULT_ORDERS): number[] {
  return orders.map((a) => sgmRdp(q, z, a) * steps);
}

/**
 * The smallest epsilon over the orders for this delta: eps = rdp + log1p(-1/a) - log(delta a)/(a - 1)
 * (Canonne, Kamath, Steinke 2020, Proposition 12), and 0 where the KL bound already gives delta.
 */
export function epsilonFromRdp(
  orders: readonly number[],
  rdp: readonly number[],
  delta: number,
): { epsilon: number; order: number } {
  if (!(delta > 0 && delta < 1)) throw new Error(`accountant: delta must be in (0, 1), got ${delta}`);
  if (orders.length !== rdp.length) throw new Error('accountant: orders and RDP values differ in length');
  let best = { epsilon: Infinity, order: orders[0] ?? NaN };
  orders.forEach((a, k) => {
    const r = rdp[k]!;
    let eps: number;
    if (delta * delta + Math.expm1(-r) > 0) eps = 0;
    else if (a > 1.01) eps = r + Math.log1p(-1 / a) - Math.log(delta * a) / (a - 1);
    else eps = Infinity;
    if (eps < best.epsilon) best = { epsilon: eps, order: a };
  });
  return { epsilon: Math.max(0, best.epsilon), order: best.order };
}

/** Epsilon after `steps` rounds at sampling rate q and noise multiplier z. */
export function epsilonFor(
  q: number,
  z: number,
  steps: number,
  delta: number,
  orders: readonly number[] = DEFAULT_ORDERS,
): { epsilon: number; order: number } {
  return epsilonFromRdp(orders, computeRdp(q, z, steps, orders), delta);
}

/**
 * The smallest noise multiplier whose epsilon after `steps` rounds is at most targetEpsilon
 * (bisection on z; epsilon falls as z grows). Within 1e-6 (relative) of the exact value, rounded up.
 */
export function noiseForEpsilon(
  targetEpsilon: number,
  q: number,
  steps: number,
  delta: number,
  orders: readonly number[] = DEFAULT_ORDERS,
): number {
  if (!(targetEpsilon > 0)) throw new Error(`accountant: target epsilon must be positive, got ${targetEpsilon}`);
  let lo = 0;
  let hi = 1;
  while (epsilonFor(q, hi, steps, delta, orders).epsilon > targetEpsilon) {
    lo = hi;
    hi *= 2;
    if (hi > 1e6)
      throw new Error(`accountant: no noise multiplier up to 1e6 reaches epsilon ${targetEpsilon} (delta ${delta})`);
  }
  while (hi - lo > 1e-6 * hi) {
    const mid = (lo + hi) / 2;
    if (epsilonFor(q, mid, steps, delta, orders).epsilon > targetEpsilon) lo = mid;
    else hi = mid;
  }
  return hi;
}

/** Running RDP total over rounds that may differ in sampling rate or noise (checkpointable). */
export class RdpAccountant {
  rdp: number[];

  constructor(
    readonly orders: readonly number[] = DEFAULT_ORDERS,
    rdp?: readonly number[],
  ) {
    this.rdp = rdp ? [...rdp] : orders.map(() => 0);
    if (this.rdp.length !== orders.length) throw new Error('accountant: saved RDP values do not match the orders');
  }

  step(q: number, z: number, steps = 1): void {
    this.orders.forEach((a, k) => (this.rdp[k]! += sgmRdp(q, z, a) * steps));
  }

  epsilon(delta: number): number {
    return epsilonFromRdp(this.orders, this.rdp, delta).epsilon;
  }
}
