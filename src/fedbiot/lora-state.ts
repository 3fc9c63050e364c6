// LoRA weights as plain named arrays: what travels between server and clients, what FedAvg averages,
// and what checkpoints hold. Names follow the PEFT convention of the layer they sit in, e.g.
// "model.layers.30.self_attn.q_proj.lora_A.weight".
import type { DecoderLayer } from '../nn/llama.js';
import { LINEAR_NAMES } from '../nn/llama.js';
import type { Tensor } from '../tensor/tensor.js';
import type { NamedArray } from '../codec/layout.js';
import { addStates, subtractStates } from '../codec/delta.js';

export type { NamedArray };
export type LoraState = Map<string, NamedArray>;

/** The LoRA tensors of these layers, by name. */
export function loraTensors(layers: readonly DecoderLayer[]): Map<string, Tensor> {
  const m = new Map<string, Tensor>();
  for (const layer of layers) {
    for (const n of LINEAR_NAMES) {
      const lin = layer.linears[n];
      if (!lin.lora) continue;
      m.set(`${lin.name}.lora_A.weight`, lin.lora.A);
      m.set(`${lin.name}.lora_B.weight`, lin.lora.B);
    }
  }
  return m;
}

/** A copy of the current LoRA weights of these layers. */
export function captureLora(layers: readonly DecoderLayer[]): LoraState {
  const s: LoraState = new Map();
  for (const [name, t] of loraTensors(layers)) s.set(name, { shape: [...t.shape], data: Float32Array.from(t.data) });
  return s;
}

/** Writes a state into the layers' LoRA tensors; names and shapes must match exactly. */
export function loadLora(layers: readonly DecoderLayer[], state: LoraState, what = 'LoRA state'): void {
  const tensors = loraTensors(layers);
  for (const name of tensors.keys()) if (!state.has(name)) throw new Error(`${what}: missing tensor '${name}'`);
  for (const [name, arr] of state) {
    const t = tensors.get(name);
    if (!t) throw new Error(`${what}: unexpected tensor '${name}' (the model has no such LoRA module)`);
    if (
      arr.data.length !== t.size ||
      arr.shape.length !== t.shape.length ||
      arr.shape.some((d, i) => d !== t.shape[i])
    ) {
      throw new Error(
        `${what}: tensor '${name}' has shape ${JSON.stringify(arr.shape)}, expected ${JSON.stringify(t.shape)}`,
      );
    }
    t.data.set(arr.data);
  }
}

export function cloneState(s: LoraState): LoraState {
  return new Map([...s].map(([k, v]) => [k, { shape: [...v.shape], data: Float32Array.from(v.data) }]));
}

export function stateBytes(s: LoraState, bytesPerValue = 4): number {
  let n = 0;
  for (const v of s.values()) n += v.data.length * bytesPerValue;
  return n;
}

/** Checks that every value is finite; returns the first offending tensor name or null. */
export function firstNonFinite(s: LoraState): string | null {
  for (const [name, v] of s) for (let i = 0; i < v.data.length; i++) if (!Number.isFinite(v.data[i]!)) return name;
  return null;
}

export function stateNorm(s: LoraState): number {
  let t = 0;
  for (const v of s.values()) for (let i = 0; i < v.data.length; i++) t += v.data[i]! * v.data[i]!;
  return Math.sqrt(t);
}

/** a - b, tensor by tensor (an update: the trained adapter minus the round's starting adapter). */
export function stateDiff(a: LoraState, b: LoraState, what = 'update'): LoraState {
  return subtractStates(a, b, what);
}

/** base + scale * delta, as a new state. */
export function stateAddScaled(base: LoraState, delta: LoraState, scale = 1): LoraState {
  return addStates(base, delta, 'stateAddScaled', scale);
}

/** Multiplies every value in place. */
export function scaleStateInPlace(s: LoraState, factor: number): void {
  for (const v of s.values()) for (let i = 0; i < v.data.length; i++) v.data[i]! *= factor;
}
