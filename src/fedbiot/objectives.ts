// Each method as its authors defined it: the emulator alignment objective (loss weights and public
// data) and the clients' proximal weight. A config may force one objective on every method
// (`algorithm.align.objective`, for ablations) and override any single weight; summary.json and the
// demo table say what each run used. Sources: docs/algorithm.md, "Reference hyper-parameters".
import type { AlignLossOptions } from './align.js';

export const ALIGN_OBJECTIVES = ['fedbiot', 'fedot', 'offsite-tuning'] as const;
export type AlignObjectiveName = (typeof ALIGN_OBJECTIVES)[number];

export interface AlignObjective {
  /** Weight of the hidden-state (NMSE) term. */
  hiddenWeight: number;
  /** Weight of KL(full || compressed) on the logits. */
  lambda: number;
  /** Weight of the next-token (LM) loss of the compressed model on the public data. */
  mu: number;
  /** What the server distils on when `data.public.source` is not given. */
  publicSource: 'tasks' | 'corpus';
}

export const OBJECTIVES: Readonly<Record<AlignObjectiveName, AlignObjective>> = {
  // FedBiOT's server trainer: NMSE at the emulator output + kd_loss_weight (0.9) * KL, no LM term,
  // on the server's held-out instruction data.
  fedbiot: { hiddenWeight: 1, lambda: 0.9, mu: 0, publicSource: 'tasks' },
  // FedOT (FS-LLM's federated Offsite-Tuning, KDTrainer): kd_loss_weight (0.9) * NMSE +
  // lm_loss_weight (0.1) * LM, no KL, aligned once on held-out instruction data.
  fedot: { hiddenWeight: 0.9, lambda: 0, mu: 0.1, publicSource: 'tasks' },
  // Offsite-Tuning (Xiao et al.): lm_weight (1) * LM + kd_weight (30) * NMSE, distilled once on a
  // general text corpus (the Pile there, packaged corpus text here).
  'offsite-tuning': { hiddenWeight: 30, lambda: 0, mu: 1, publicSource: 'corpus' },
};

export type MethodName = 'fedbiot' | 'fedot' | 'offsite' | 'fedavg-full' | 'local';

/** The method's own alignment objective; null for a method without an emulator. */
export function defaultObjective(method: MethodName): AlignObjectiveName | null {
  switch (method) {
    case 'fedbiot':
    case 'local': // FedBiOT's split and pre-alignment, without federation
      return 'fedbiot';
    case 'fedot':
      return 'fedot';
    case 'offsite':
      return 'offsite-tuning';
    case 'fedavg-full':
      return null;
  }
}

/** FedBiOT's proximal weight in the reference's configs (`emu_align.train.lm_loss_weight`, default 0.1). */
export const REFERENCE_PROXIMAL = 0.1;

/**
 * Named proximal settings. `reference`: as the reference code trains, whose term is computed on
 * detached weights (`merged_lora_state_dict` reads `state_dict()`), so it carries no gradient and
 * leaves the update unchanged: no term. `paper`: the term as the algorithm states it,
 * epsilon * ||A - A(t)||^2 with its gradient, at the reference's configured weight.
 */
export const PROXIMAL_RULES = ['reference', 'paper'] as const;
export type ProximalRule = (typeof PROXIMAL_RULES)[number];

export interface ResolvedProximal {
  /** The weight local training uses (0 = no term). */
  weight: number;
  /** For tables and logs: the weight, and the rule that gave it when one did, e.g. "0 (reference)". */
  label: string;
}

/**
 * The clients' proximal term: the weight the config gives, or the named rule's. Without either,
 * FedBiOT trains as its reference does (`reference`: the term has no effect) and the others, plain
 * FedAvg, have none.
 */
export function resolveProximal(method: MethodName, configured?: number | ProximalRule): ResolvedProximal {
  const value = configured ?? (method === 'fedbiot' ? 'reference' : 0);
  if (typeof value === 'number') return { weight: value, label: String(value) };
  const weight = value === 'paper' ? REFERENCE_PROXIMAL : 0;
  return { weight, label: `${weight} (${value})` };
}

export interface ResolvedAlignment {
  objective: AlignObjectiveName | null;
  loss: Required<Pick<AlignLossOptions, 'hiddenWeight' | 'lambda' | 'mu'>>;
  publicSource: 'tasks' | 'corpus' | 'file';
}

/**
 * The alignment a run uses: the forced objective or the method's own, with any weight the config
 * gives explicitly taking precedence, and the public data source unless the config names one.
 */
export function resolveAlignment(
  method: MethodName,
  align: { objective?: AlignObjectiveName; hiddenWeight?: number; lambda?: number; mu?: number },
  publicSource?: 'tasks' | 'corpus' | 'file',
): ResolvedAlignment {
  const name = align.objective ?? defaultObjective(method);
  const o = OBJECTIVES[name ?? 'fedbiot'];
  return {
    objective: name,
    loss: {
      hiddenWeight: align.hiddenWeight ?? o.hiddenWeight,
      lambda: align.lambda ?? o.lambda,
      mu: align.mu ?? o.mu,
    },
    publicSource: publicSource ?? o.publicSource,
  };
}

/** A short formula for tables and logs, e.g. "nmse + 0.9 kl" or "30 nmse + lm". */
export function describeAlignLoss(
  hiddenLoss: AlignLossOptions['hiddenLoss'],
  w: { hiddenWeight: number; lambda: number; mu: number },
  reduction: 'sum' | 'mean' = 'sum',
): string {
  const term = (weight: number, name: string) => (weight === 1 ? name : `${Number(weight.toPrecision(6))} ${name}`);
  const hiddenName = hiddenLoss === 'layerwise-nmse' ? `layerwise-nmse(${reduction})` : hiddenLoss;
  const parts: string[] = [];
  if (w.hiddenWeight > 0) parts.push(term(w.hiddenWeight, hiddenName));
  if (w.lambda > 0) parts.push(term(w.lambda, 'kl'));
  if (w.mu > 0) parts.push(term(w.mu, 'lm'));
  return parts.length ? parts.join(' + ') : 'none';
}
