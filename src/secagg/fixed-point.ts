// Fixed-point encoding of real vectors into Z/2^32 for secure aggregation. Each client's value is
// clamped to [-range, range] and rounded to a multiple of 1/scale; the scale leaves two bits of
// headroom above the largest honest sum (clients * range), so a sum that lands in the headroom
// proves that some client sent values outside the range (masking hides which one).

export interface FixedPoint {
  scale: number;
  /** Largest honest |sum| in quantized units. */
  bound: number;
}

export function fixedPoint(range: number, clients: number): FixedPoint {
  if (!(range > 0) || !(clients >= 1))
    throw new Error(`fixedPoint: range must be > 0 and clients >= 1 (got ${range}, ${clients})`);
  const scale = Math.floor(2 ** 29 / (clients * range));
  if (scale < 1) throw new Error(`fixedPoint: range ${range} over ${clients} clients does not fit 32-bit fixed point`);
  return { scale, bound: clients * (Math.round(range * scale) + 1) };
}

/** Clamps, rounds and wraps into uint32; returns how many values were clamped. */
export function encodeFixed(
  values: ArrayLike<number>,
  range: number,
  fp: FixedPoint,
  out = new Uint32Array(values.length),
): { encoded: Uint32Array; clamped: number } {
  let clamped = 0;
  for (let i = 0; i < values.length; i++) {
    let v = values[i]!;
    if (!Number.isFinite(v)) throw new Error(`encodeFixed: value ${i} is not finite`);
    if (v > range) (v = range), clamped++;
    else if (v < -range) (v = -range), clamped++;
    out[i] = Math.round(v * fp.scale) >>> 0;
  }
  return { encoded: out, clamped };
}

/** Reads a sum of encodings back as reals; throws when it lies outside the honest bound. */
export function decodeFixedSum(sum: Uint32Array, fp: FixedPoint): Float64Array {
  const out = new Float64Array(sum.length);
  let outside = 0;
  for (let i = 0; i < sum.length; i++) {
    const q = sum[i]! | 0; // two's complement
    if (Math.abs(q) > fp.bound) outside++;
    out[i] = q / fp.scale;
  }
  if (outside > 0)
    throw new Error(
      `secure aggregation: ${outside} of ${sum.length} coordinates of the unmasked sum lie outside the range honest clients can reach; a client sent out-of-range values, the round's aggregate is refused`,
    );
  return out;
}

/** a += b mod 2^32 (sign = -1 subtracts). */
export function addMod32(a: Uint32Array, b: Uint32Array, sign: 1 | -1 = 1): void {
  if (a.length !== b.length) throw new Error(`addMod32: lengths differ (${a.length}, ${b.length})`);
  if (sign === 1) for (let i = 0; i < a.length; i++) a[i] = (a[i]! + b[i]!) >>> 0;
  else for (let i = 0; i < a.length; i++) a[i] = (a[i]! - b[i]!) >>> 0;
}
