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
    if (u.state.size !== out.size) throw new Error(`fedAvg: client '${u.client}' sent ${u.state.size} tensors, expected ${out.size}`);
    for (const [name, acc] of out) {
      const v = u.state.get(name);
      if (!v) throw new Error(`fedAvg: client '${u.client}' did not send '${name}'`);
      if (v.data.length !== acc.data.length) throw new Error(`fedAvg: client '${u.client}' sent '${name}' with ${v.data.length} values, expected ${acc.data.length}`);
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
