// How a full model of L layers is cut into an adapter and an emulator.
//
// FedBiOT: adapter = the last `a` layers; the block below (layers 0 .. L-a-1) is compressed by
// uniform layer drop into the emulator. Offsite-Tuning / FedOT: adapter = first p + last q layers,
// the middle block is compressed. Uniform drop with rate beta keeps k = round(n * (1 - beta)) of the
// block's n layers; the i-th kept one is block[floor(i * (n - 1) / (k - 1))], so the first and last
// block layers always stay. Two readings of "round" and "floor" exist (`LayerDropRule`): the spec's
// exact arithmetic, and the reference implementation's Python floats (the default).

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

/**
 * How the kept layers are chosen.
 *   spec       k = round half up of n (1 - beta); index floor(i (n-1) / (k-1)) in exact integer arithmetic.
 *   reference  as HarliWu/FedBiOT's model_drop_layer computes it in Python: k = round(n * (1 - beta))
 *              with Python's round (halves to even, on the binary value of the float product), index
 *              int(i * stride) with the float stride (n-1)/(k-1). n = 9, beta = 0.5 keeps [0, 2, 5, 8]
 *              here and [0, 2, 4, 6, 8] under the spec rule.
 * Where the reference cannot run (k <= 1: a division by zero or an empty emulator) both rules keep
 * the block's first layer.
 */
export const LAYER_DROP_RULES = ['spec', 'reference'] as const;
export type LayerDropRule = (typeof LAYER_DROP_RULES)[number];

/** Python 3's round() of a float to an integer: ties go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f; // exact for the magnitudes of layer counts
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** Indices (into a block of n layers) kept by uniform layer drop with rate beta. */
export function uniformDropIndices(n: number, beta: number, rule: LayerDropRule = 'reference'): number[] {
  if (!Number.isInteger(n) || n < 0) throw new Error(`layer drop: block size must be a non-negative integer, got ${n}`);
  if (!(beta >= 0 && beta < 1)) throw new Error(`layer drop: drop rate must be in [0, 1), got ${beta}`);
  if (!(LAYER_DROP_RULES as readonly string[]).includes(rule))
    throw new Error(`layer drop: rule must be one of ${LAYER_DROP_RULES.join(', ')}, got '${rule}'`);
  if (n === 0) return [];
  const k = Math.max(1, rule === 'reference' ? roundHalfEven(n * (1 - beta)) : Math.round(n * (1 - beta)));
  if (k === 1) return [0];
  if (rule === 'reference') {
    const stride = (n - 1) / (k - 1);
    return Array.from({ length: k }, (_, i) => Math.trunc(i * stride));
  }
  return Array.from({ length: k }, (_, i) => Math.floor((i * (n - 1)) / (k - 1)));
}

export function planSplit(
  numLayers: number,
  placement: AdapterPlacement,
  dropRate: number,
  rule: LayerDropRule = 'reference',
): SplitPlan {
  const bottom = placement.kind === 'first-last' ? placement.first : 0;
  const top = placement.last;
  if (!Number.isInteger(bottom) || !Number.isInteger(top) || bottom < 0 || top < 1) {
    throw new Error(
      `split: adapter layer counts must be integers (first >= 0, last >= 1), got first=${bottom} last=${top}`,
    );
  }
  if (bottom + top >= numLayers) {
    throw new Error(
      `split: the adapter (${bottom} + ${top} layers) must leave at least one of the model's ${numLayers} layers for the emulator`,
    );
  }
  const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);
  const block = range(bottom, numLayers - top);
  const kept = uniformDropIndices(block.length, dropRate, rule).map((i) => block[i]!);
  return {
    numLayers,
    dropRate,
    adapterBottom: range(0, bottom),
    block,
    emulator: kept,
    adapterTop: range(numLayers - top, numLayers),
  };
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
  const push = (role: 'adapter' | 'emulator', src: number[]) =>
    src.forEach((s) => layers.push({ index: layers.length, role, source: s }));
  push('adapter', plan.adapterBottom);
  push('emulator', plan.emulator);
  push('adapter', plan.adapterTop);
  return {
    format: 'fedbiot-split/1',
    modelHash,
    numLayers: plan.numLayers,
    dropRate: plan.dropRate,
    placement,
    layers,
  };
}
