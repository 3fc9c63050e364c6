// Shared helpers for the kernel tests: a seeded PRNG, array builders and a closeness check
// that names the worst element.
import assert from 'node:assert/strict';
import { mulberry32 } from '../../src/util/rng.js';

/** The project's seeded PRNG (mulberry32), under the name the tests use. */
export const rng = mulberry32;

/** n standard normal values (Box-Muller), rounded to float32 so both precisions see the same input. */
export function randn(n: number, r: () => number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(r(), 1e-12),
      v = r();
    out[i] = scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  return out;
}

export function randInt(n: number, max: number, r: () => number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(r() * max);
  return out;
}

export const f64 = (x: ArrayLike<number>): Float64Array => Float64Array.from(x);
export const f32 = (x: ArrayLike<number>): Float32Array => Float32Array.from(x);

/** Asserts |actual - expected| <= atol + rtol * |expected| elementwise (NaN never passes). */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: { atol: number; rtol: number },
  what: string,
): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let worst = -1,
    worstExcess = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!,
      e = expected[i]!;
    if (a === e) continue; // covers equal infinities
    const excess = Math.abs(a - e) - (tol.atol + tol.rtol * Math.abs(e));
    if (!(excess <= 0) && (worst < 0 || !(excess <= worstExcess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) {
    assert.fail(
      `${what}: element ${worst} is ${actual[worst]}, expected ${expected[worst]} (atol ${tol.atol}, rtol ${tol.rtol})`,
    );
  }
}

export function assertNear(actual: number, expected: number, tol: { atol: number; rtol: number }, what: string): void {
  assertClose([actual], [expected], tol, what);
}
