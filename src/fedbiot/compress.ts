// Builds the two views of one base model that FedBiOT works with:
//   full       = bottom adapter + original block (frozen, no LoRA) + top adapter   (server only)
//   compressed = bottom adapter + emulator (kept layers, own LoRA) + top adapter    (shipped to clients)
// The adapter layers are the very same objects in both, so the adapter LoRA trained on the
// compressed model is plugged into the full model for free (AdapFu), and the emulator's kept layers
// share their frozen base weights with the original layers (no copy in memory).
import { widened, type DecoderLayer, type LinearName } from '../nn/llama.js';
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
  /**
   * The adapter layers as the compressed model holds them: the same LoRA tensors as adapterBottom
   * and adapterTop, over frozen weights in the emulator's format (the very same layers under 'stored').
   */
  compressedAdapter: DecoderLayer[];
  block: DecoderLayer[];
  emulator: DecoderLayer[];
}

/**
 * How the frozen weights the clients receive are stored where the compressed model runs (clients,
 * and the server's alignment and AdapEmu): 'stored' as the checkpoint stores them (e.g. F16), 'f32'
 * uncompressed, f16, or GGUF's Q8_0 / Q4_0 blocks that the gemm widens while packing and the
 * embedding widens row by row on lookup (no f32 copy). A matrix whose rows do not fill 32-value
 * blocks is quantized too, the last block of each row partial (src/kernels/weights.ts).
 */
export const EMULATOR_WEIGHTS = ['stored', 'f32', 'f16', 'q8_0', 'q4'] as const;
export type EmulatorWeights = (typeof EMULATOR_WEIGHTS)[number];

/** A frozen weight in the emulator's storage format ('stored': as it is; 'f32': widened). */
export function storeEmulatorWeight(w: Weight, format: EmulatorWeights, name: string): Weight {
  if (format === 'stored') return w;
  if (format === 'f32') return widened(w);
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
  emulatorWeights: EmulatorWeights = 'stored',
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
  const store = (name: string, w: Weight) => storeEmulatorWeight(w, emulatorWeights, name);
  const emulator = plan.emulator.map((src, i) => base.layers[src]!.withWeights(`emulator.layers.${i}`, store));
  base.attachLora(lora.adapter, deriveSeed(seed, 'adapter-lora'), [...adapterBottom, ...adapterTop]);
  if (lora.emulator) base.attachLora(lora.emulator, deriveSeed(seed, 'emulator-lora'), emulator);
  const full = base.withLayers([...adapterBottom, ...block, ...adapterTop]);
  // Every frozen tensor the clients receive is held in the emulator's format: the emulator's
  // linears, the adapter layers' frozen weights (their LoRA shared with the full model's layers,
  // which keep the checkpoint's weights) and the embedding table and LM head. Norms stay f32.
  const held = (l: DecoderLayer) =>
    emulatorWeights === 'stored' ? l : l.withWeights(l.prefix, store).shareLoraWith(l);
  const heldBottom = adapterBottom.map(held);
  const heldTop = adapterTop.map(held);
  const compressed = base.withLayers([...heldBottom, ...emulator, ...heldTop]);
  const tied = base.lmHead === base.embedTokens;
  compressed.embedTokens = store('model.embed_tokens.weight', base.embedTokens);
  compressed.lmHead = tied ? compressed.embedTokens : store('lm_head.weight', base.lmHead);
  return {
    plan,
    placement,
    full,
    compressed,
    adapterBottom,
    adapterTop,
    compressedAdapter: [...heldBottom, ...heldTop],
    block,
    emulator,
  };
}

/** Marks which LoRA trains: the adapter's (clients) or the emulator's (server alignment). */
export function setTrainable(s: SplitModels, which: 'adapter' | 'emulator' | 'none'): void {
  for (const p of adapterLayers(s).flatMap((l) => l.loraParams())) p.requiresGrad = which === 'adapter';
  for (const p of s.emulator.flatMap((l) => l.loraParams())) p.requiresGrad = which === 'emulator';
}
