// An algorithm's settings resolved from a validated config: the schema's values, with the defaults
// that depend on the method (its own alignment loss, its proximal weight: src/fedbiot/objectives.ts)
// filled in. The alignment schedule (which rounds align) is the strategy's (algorithms.ts).
import type { RunConfig } from '../config/schema.js';
import { strategyOf, type AlgorithmSettings } from './algorithms.js';
import { describeAlignLoss, resolveAlignment, resolveProximal } from './objectives.js';

export function settingsFromConfig(cfg: RunConfig): AlgorithmSettings {
  const a = cfg.algorithm;
  // Each method as its authors defined it, unless the config says otherwise (src/fedbiot/objectives.ts).
  const alignment = resolveAlignment(a.name, a.align, cfg.data.public.source);
  return {
    name: a.name,
    adapterLayers: a.adapterLayers,
    offsiteLayers: a.offsiteLayers,
    dropRate: a.dropRate,
    adapterLora: { ...a.adapterLora },
    emulatorLora: { ...a.emulatorLora },
    preAlignSteps: a.preAlignSteps,
    alignStepsPerRound: a.alignStepsPerRound,
    layerDrop: a.layerDrop,
    emulatorWeights: a.emulator.weights,
    fullWeights: a.full.weights,
    alignObjective: alignment.objective,
    align: {
      hiddenLoss: a.align.hiddenLoss,
      layerwiseReduction: a.align.layerwiseReduction,
      ...alignment.loss,
      optimizer: a.align.optimizer,
      maxGradNorm: a.align.maxGradNorm,
    },
    local: {
      steps: a.local.steps,
      optimizer: a.local.optimizer,
      gradAccum: a.local.gradAccum,
      microBatch: a.local.microBatch,
      recompute: a.local.recompute,
      proximal: resolveProximal(a.name, a.local.proximal).weight,
      maxGradNorm: a.local.maxGradNorm,
    },
  };
}

/** How a run defined its method (summary.json `method`): which alignment loss and proximal weight it used. */
export interface MethodAsRun {
  /** Whose alignment objective (fedbiot, fedot, offsite-tuning); null without an emulator. */
  align_objective: string | null;
  /** The loss formula, e.g. "nmse + 0.9 kl"; "none" without alignment. */
  align_loss: string;
  /** What the server aligned on (tasks, corpus, file); "-" without alignment. */
  public_data: string;
  /** The clients' proximal weight (0 = no term). */
  proximal: number;
  /** The weight and the rule that gave it, e.g. "0 (reference)" (src/fedbiot/objectives.ts). */
  proximal_rule: string;
  layer_drop: string;
  /** Re-alignment steps per round after the first (FedBiOT's bi-level part); 0 without. */
  realign_steps: number;
}

export function methodAsRun(cfg: RunConfig, s: AlgorithmSettings): MethodAsRun {
  const st = strategyOf(s.name);
  const aligns = st.placement(s) !== null && st.preAlignSteps(s) + st.alignSteps(s, 1) > 0;
  return {
    align_objective: aligns ? (s.alignObjective ?? null) : null,
    align_loss: aligns
      ? describeAlignLoss(
          s.align.hiddenLoss,
          { hiddenWeight: s.align.hiddenWeight ?? 1, lambda: s.align.lambda, mu: s.align.mu },
          s.align.layerwiseReduction,
        )
      : 'none',
    public_data: aligns ? resolveAlignment(s.name, cfg.algorithm.align, cfg.data.public.source).publicSource : '-',
    proximal: s.local.proximal,
    proximal_rule: resolveProximal(s.name, cfg.algorithm.local.proximal).label,
    layer_drop: s.name === 'fedavg-full' ? '-' : (s.layerDrop ?? 'reference'),
    realign_steps: st.placement(s) !== null ? st.alignSteps(s, 1) : 0,
  };
}
