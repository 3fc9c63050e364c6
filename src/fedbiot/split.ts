// How a full model of L layers is cut into an adapter and an emulator.
//
// FedBiOT: adapter = the last `a` layers; the block below (layers 0 .. L-a-1) is compressed by
// uniform layer drop into the emulator. Offsite-Tuning / FedOT: adapter = first p + last q layers,
// the middle block is compressed. Uniform drop with rate beta keeps k = round(n * (1 - beta)) of the
// block's n layers; the i-th kept one is block[floor(i * (n - 1) / (k - 1))], so the first and last
// block layers always stay.

export type AdapterPlacement = { kind: 'last'; last: number } | { kind: 'first-last'; first: number; last: number };

export interface SplitPlan {
  numLayers: number;
  dropRate: number;
  /** Source indices of the adapter layers below the block (empty for FedBiOT). */
  adapterBottom: number[];
  /** Source indices of the compressed block in the full model. */
  block: number[];
  /** Source indices kept for the emulator (a subset of block, in order). */
  emulator: number[];
  /** Source indices of the adapter layers above the block. */
  adapterTop: number[];
}

/** Indices (into a block of n layers) kept by uniform layer drop with rate beta. */
export function uniformDropIndices(n: number, beta: number): number[] {
  if (!Number.isInteger(n) || n < 0) throw new Error(`layer drop: block size must be a non-negative integer, got ${n}`);
  if (!(beta >= 0 && beta < 1)) throw new Error(`layer drop: drop rate must be in [0, 1), got ${beta}`);
  if (n === 0) return [];
  const k = Math.max(1, Math.round(n * (1 - beta)));
  if (k === 1) return [0];
  return Array.from({ length: k }, (_, i) => Math.floor((i * (n - 1)) / (k - 1)));
}

export function planSplit(numLayers: number, placement: AdapterPlacement, dropRate: number): SplitPlan {
  const bottom = placement.kind === 'first-last' ? placement.first : 0;
  const top = placement.last;
  if (!Number.isInteger(bottom) || !Number.isInteger(top) || bottom < 0 || top < 1) {
    throw new Error(`split: adapter layer counts must be integers (first >= 0, last >= 1), got first=${bottom} last=${top}`);
  }
  if (bottom + top >= numLayers) {
    throw new Error(`split: the adapter (${bottom} + ${top} layers) must leave at least one of the model's ${numLayers} layers for the emulator`);
  }
  const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);
  const block = range(bottom, numLayers - top);
  const kept = uniformDropIndices(block.length, dropRate).map((i) => block[i]!);
  return { numLayers, dropRate, adapterBottom: range(0, bottom), block, emulator: kept, adapterTop: range(numLayers - top, numLayers) };
}

/** The manifest stored beside a compressed model: which source layer each compressed layer is. */
export interface SplitManifest {
  format: 'fedbiot-split/1';
  modelHash: string;
  numLayers: number;
  dropRate: number;
  placement: AdapterPlacement;
  /** For each layer of the compressed model, in order: its role and source index. */
  layers: { index: number; role: 'adapter' | 'emulator'; source: number }[];
}

export function makeManifest(plan: SplitPlan, placement: AdapterPlacement, modelHash: string): SplitManifest {
  const layers: SplitManifest['layers'] = [];
  const push = (role: 'adapter' | 'emulator', src: number[]) => src.forEach((s) => layers.push({ index: layers.length, role, source: s }));
  push('adapter', plan.adapterBottom);
  push('emulator', plan.emulator);
  push('adapter', plan.adapterTop);
  return { format: 'fedbiot-split/1', modelHash, numLayers: plan.numLayers, dropRate: plan.dropRate, placement, layers };
}
