// Deltas between states of the same layout: the sender sends (new - held), the receiver adds it to
// what it holds. f32 arithmetic on both sides, so both ends compute the same bits.
import type { NamedArrays } from './layout.js';

/** a - b, tensor by tensor (same names and sizes). */
export function subtractStates(a: NamedArrays, b: NamedArrays, what = 'delta'): NamedArrays {
  const out: NamedArrays = new Map();
  for (const [name, x] of a) {
    const y = b.get(name);
    if (!y || y.data.length !== x.data.length)
      throw new RangeError(`${what}: tensor '${name}' is missing or of another size in the base state`);
    const d = new Float32Array(x.data.length);
    for (let i = 0; i < d.length; i++) d[i] = x.data[i]! - y.data[i]!;
    out.set(name, { shape: [...x.shape], data: d });
  }
  if (b.size !== a.size) throw new RangeError(`${what}: ${a.size} tensors, the base state has ${b.size}`);
  return out;
}

/** base + scale * delta, tensor by tensor, as a new state (scale 1 adds the delta exactly). */
export function addStates(base: NamedArrays, delta: NamedArrays, what = 'delta', scale = 1): NamedArrays {
  const out: NamedArrays = new Map();
  for (const [name, x] of base) {
    const d = delta.get(name);
    if (!d || d.data.length !== x.data.length)
      throw new RangeError(`${what}: tensor '${name}' is missing or of another size in the delta`);
    const s = new Float32Array(x.data.length);
    for (let i = 0; i < s.length; i++) s[i] = x.data[i]! + scale * d.data[i]!;
    out.set(name, { shape: [...x.shape], data: s });
  }
  if (delta.size !== base.size)
    throw new RangeError(`${what}: the delta has ${delta.size} tensors, the base ${base.size}`);
  return out;
}
