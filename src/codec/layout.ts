// The tensor layout both peers agree on at join: names and shapes in a fixed order. Payloads name
// tensors by their index in it and carry its id, so a payload built for another model is refused.
import { createHash } from 'node:crypto';

export interface NamedArray {
  shape: number[];
  data: Float32Array;
}

/** Named f32 arrays (a LoRA state, a delta, ...). */
export type NamedArrays = Map<string, NamedArray>;

export interface Layout {
  names: string[];
  shapes: number[][];
  sizes: number[];
  /** First 32 bits of sha256 over "name shape" lines: what payloads carry. */
  id: number;
  index: Map<string, number>;
}

export function makeLayout(entries: Iterable<readonly [string, readonly number[]]>): Layout {
  const names: string[] = [];
  const shapes: number[][] = [];
  const h = createHash('sha256');
  for (const [name, shape] of entries) {
    names.push(name);
    shapes.push([...shape]);
    h.update(`${name} ${shape.join('x')}\n`);
  }
  if (names.length > 0xffff) throw new RangeError(`a layout holds at most 65535 tensors, got ${names.length}`);
  const index = new Map(names.map((n, i) => [n, i]));
  if (index.size !== names.length) throw new RangeError('a layout names a tensor twice');
  const id = h.digest().readUInt32LE(0);
  return { names, shapes, sizes: shapes.map((s) => s.reduce((a, b) => a * b, 1)), id, index };
}

/** The layout of a state, in its own (insertion) order. */
export function layoutOf(s: NamedArrays): Layout {
  return makeLayout([...s].map(([k, v]) => [k, v.shape] as const));
}
