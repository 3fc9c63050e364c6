// Builds the two views of one base model that FedBiOT works with:
//   full       = bottom adapter + original block (frozen, no LoRA) + top adapter   (server only)
//   compressed = bottom adapter + emulator (kept layers, own LoRA) + top adapter    (shipped to clients)
// The adapter layers are the very same objects in both, so the adapter LoRA trained on the
// compressed model is plugged into the full model for free (AdapFu), and the emulator's kept layers
// share their frozen base weights with the original layers (no copy in memory).
import type { DecoderLayer, LinearName } from '../nn/llama.js';
import type { LlamaModel } from '../nn/llama.js';
import type { Weight } from '../tensor/ops.js';
import { storeWeight } from '../models/stored-weights.js';
import type { LoraSpec } from '../nn/lora.js';
import { planSplit, type AdapterPlacement, type LayerDropRule, type SplitPlan } from './split.js';
import { deriveSeed } from '../util/rng.js';

export type LoraConfig = LoraSpec & { targets: LinearName[] };

export interface SplitModels {
  plan: SplitPlan;
  placement: AdapterPlacement;
  full: LlamaModel;
  compressed: LlamaModel;
  adapterBottom: DecoderLayer[];
  adapterTop: DecoderLayer[];
  block: DecoderLayer[];
  emulator: DecoderLayer[];
}

/**
 * How the emulator's frozen weights are stored where it runs (clients, and the server's alignment):
 * f32, f16, or GGUF's Q8_0 / Q4_0 blocks that the gemm widens while packing (no f32 copy). A matrix
 * whose rows do not fill 32-value blocks stays f16 under q8_0 / q4.
 */
export const EMULATOR_WEIGHTS = ['f32', 'f16', 'q8_0', 'q4'] as const;
export type EmulatorWeights = (typeof EMULATOR_WEIGHTS)[number];

/** A frozen f32 weight in the emulator's storage format. */
export function storeEmulatorWeight(w: Weight, format: EmulatorWeights, name: string): Weight {
  return storeWeight(w, format === 'q4' ? 'q4_0' : format, name);
}

export function adapterLayers(s: SplitModels): DecoderLayer[] {
  return [...s.adapterBottom, ...s.adapterTop];
}

/**
 * Splits `base` (whose layers must carry no LoRA yet) and attaches LoRA: the adapter's ("client
 * LoRA") and the emulator's ("server LoRA"). The base model's layer objects become the full model.
 */
export function buildSplit(
  base: LlamaModel,
  placement: AdapterPlacement,
  dropRate: number,
  lora: { adapter: LoraConfig; emulator: LoraConfig | null },
  seed: number,
  rule: LayerDropRule = 'reference',
  emulatorWeights: EmulatorWeights = 'f32',
): SplitModels {
  for (const l of base.layers) {
    if (l.loraParams().length > 0)
      throw new Error(`buildSplit: layer ${l.prefix} already carries LoRA; split a clean base model`);
  }
  const plan = planSplit(base.layers.length, placement, dropRate, rule);
  const pick = (idx: number[]) => idx.map((i) => base.layers[i]!);
  const adapterBottom = pick(plan.adapterBottom);
  const adapterTop = pick(plan.adapterTop);
  const block = pick(plan.block);
  const emulator = plan.emulator.map((src, i) =>
    base.layers[src]!.withWeights(`emulator.layers.${i}`, (name, w) => storeEmulatorWeight(w, emulatorWeights, name)),
  );
  base.attachLora(lora.adapter, deriveSeed(seed, 'adapter-lora'), [...adapterBottom, ...adapterTop]);
  if (lora.emulator) base.attachLora(lora.emulator, deriveSeed(seed, 'emulator-lora'), emulator);
  const full = base.withLayers([...adapterBottom, ...block, ...adapterTop]);
  const compressed = base.withLayers([...adapterBottom, ...emulator, ...adapterTop]);
  return { plan, placement, full, compressed, adapterBottom, adapterTop, block, emulator };
}

/** Marks which LoRA trains: the adapter's (clients) or the emulator's (server alignment). */
export function setTrainable(s: SplitModels, which: 'adapter' | 'emulator' | 'none'): void {
  for (const p of adapterLayers(s).flatMap((l) => l.loraParams())) p.requiresGrad = which === 'adapter';
  for (const p of s.emulator.flatMap((l) => l.loraParams())) p.requiresGrad = which === 'emulator';
}
