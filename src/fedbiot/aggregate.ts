// FedAvg over the clients that reported: A = sum_i n_i A_i / sum_i n_i. A client that reported
// nothing is left out (never averaged in as zeros).
import type { LoraState } from './lora-state.js';

export interface ClientUpdate {
  client: string;
  /** Local data size n_i (the weight). */
  samples: number;
  state: LoraState;
}

export function fedAvg(updates: readonly ClientUpdate[]): LoraState {
  const live = updates.filter((u) => u.samples > 0);
  if (live.length === 0) throw new Error('fedAvg: no client reported an update with a positive sample count');
  const total = live.reduce((s, u) => s + u.samples, 0);
  const first = live[0]!;
  const out: LoraState = new Map();
  for (const [name, v] of first.state) out.set(name, { shape: [...v.shape], data: new Float32Array(v.data.length) });
  for (const u of live) {
    if (u.state.size !== out.size)
      throw new Error(`fedAvg: client '${u.client}' sent ${u.state.size} tensors, expected ${out.size}`);
    for (const [name, acc] of out) {
      const v = u.state.get(name);
      if (!v) throw new Error(`fedAvg: client '${u.client}' did not send '${name}'`);
      if (v.data.length !== acc.data.length)
        throw new Error(
          `fedAvg: client '${u.client}' sent '${name}' with ${v.data.length} values, expected ${acc.data.length}`,
        );
    }
  }
  // Accumulate in float64 so the mean does not depend on client order beyond rounding to f32 once.
  for (const [name, acc] of out) {
    const sum = new Float64Array(acc.data.length);
    for (const u of live) {
      const w = u.samples / total;
      const d = u.state.get(name)!.data;
      for (let i = 0; i < d.length; i++) sum[i]! += w * d[i]!;
    }
    acc.data.set(sum);
  }
  return out;
}

/** Checks that every update has the first one's tensors and sizes; returns the tensor names. */
function checkSameShapes(updates: readonly ClientUpdate[], what: string): string[] {
  if (updates.length === 0) throw new Error(`${what}: no client reported an update`);
  const first = updates[0]!.state;
  for (const u of updates) {
    if (u.state.size !== first.size)
      throw new Error(`${what}: client '${u.client}' sent ${u.state.size} tensors, expected ${first.size}`);
    for (const [name, v] of first) {
      const w = u.state.get(name);
      if (!w || w.data.length !== v.data.length)
        throw new Error(`${what}: client '${u.client}' sent no '${name}' of ${v.data.length} values`);
    }
  }
  return [...first.keys()];
}

/**
 * A per-coordinate robust statistic over the clients' values: each coordinate's values are sorted
 * and `pick` reduces the sorted column. Client weights do not enter (a poisoned client could lie
 * about its sample count).
 */
function coordinateWise(
  updates: readonly ClientUpdate[],
  what: string,
  pick: (sorted: Float64Array) => number,
): LoraState {
  const names = checkSameShapes(updates, what);
  const out: LoraState = new Map();
  const col = new Float64Array(updates.length);
  for (const name of names) {
    const ref = updates[0]!.state.get(name)!;
    const data = new Float32Array(ref.data.length);
    const cols = updates.map((u) => u.state.get(name)!.data);
    for (let i = 0; i < data.length; i++) {
      for (let k = 0; k < cols.length; k++) col[k] = cols[k]![i]!;
      col.sort();
      data[i] = pick(col);
    }
    out.set(name, { shape: [...ref.shape], data });
  }
  return out;
}

/** Coordinate-wise median (Yin et al. 2018): the middle value, or the mean of the two middle ones. */
export function coordinateMedian(updates: readonly ClientUpdate[]): LoraState {
  return coordinateWise(updates, 'median', (s) => {
    const n = s.length;
    return n % 2 === 1 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
  });
}

/** Coordinate-wise trimmed mean: drops floor(trim * n) values at each end and averages the rest. */
export function trimmedMean(updates: readonly ClientUpdate[], trim: number): LoraState {
  if (!(trim >= 0 && trim < 0.5)) throw new Error(`trimmedMean: trim must be in [0, 0.5), got ${trim}`);
  const k = Math.floor(trim * updates.length);
  if (updates.length - 2 * k < 1) throw new Error(`trimmedMean: trim ${trim} of ${updates.length} clients leaves none`);
  return coordinateWise(updates, 'trimmed mean', (s) => {
    let sum = 0;
    for (let i = k; i < s.length - k; i++) sum += s[i]!;
    return sum / (s.length - 2 * k);
  });
}
