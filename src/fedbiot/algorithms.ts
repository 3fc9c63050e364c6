// The algorithms: each one a Strategy (what is trained where, the data layout, the alignment
// schedule, what travels, deployable or not), and the transport-agnostic server and client halves
// (Flower-style strategy / client) that the federation driver (src/fl/driver.ts) calls, in one
// process for the simulation and on either side of the wire for a deployment. Aggregation itself
// is the driver's (FedAvg by default, replaceable through its aggregate hook).
//
//   fedbiot      adapter = last a layers; emulator aligned before round 0 and E_s steps every round.
//   fedot        adapter = first 2 + last 2; emulator aligned once before FL; FedAvg.
//   offsite      as fedot, but one client holds all the data (Offsite-Tuning).
//   fedavg-full  LoRA on every layer of the full model at every client (upper bound, full cost).
//   local        FedBiOT's split, but every client trains alone (no aggregation).
import { storeModelWeights } from '../models/stored-weights.js';
import type { LlamaModel, DecoderLayer } from '../nn/llama.js';
import type { Tensor } from '../tensor/tensor.js';
import type { TokenBatch } from '../nn/lm.js';
import type { OptimizerOptions } from '../nn/optim.js';
import type { AlignObjectiveName } from './objectives.js';
import {
  buildSplit,
  setTrainable,
  adapterLayers,
  storeEmulatorWeight,
  type EmulatorWeights,
  type LoraConfig,
  type SplitModels,
} from './compress.js';
import { runAlignment, type AlignLossOptions, type AlignLossValues } from './align.js';
import { localTrain, type LocalTrainOptions } from './local.js';
import { captureLora, loadLora, cloneState, type LoraState } from './lora-state.js';
import type { AdapterPlacement, LayerDropRule } from './split.js';
import { deriveSeed, mulberry32 } from '../util/rng.js';

export const ALGORITHMS = ['fedbiot', 'fedot', 'offsite', 'fedavg-full', 'local'] as const;
export type AlgorithmName = (typeof ALGORITHMS)[number];

/** An algorithm's settings, resolved from a config by settingsFromConfig (src/fedbiot/settings.ts). */
export interface AlgorithmSettings {
  name: AlgorithmName;
  /** FedBiOT / local: the adapter is the last `adapterLayers` layers. */
  adapterLayers: number;
  /** FedOT / offsite: first + last layers form the adapter. */
  offsiteLayers: { first: number; last: number };
  dropRate: number;
  /** Kept-layer index rule of the layer drop (default: the reference's). */
  layerDrop?: LayerDropRule;
  /** How the frozen weights clients receive are held (default 'stored': as loaded; see compress.ts). */
  emulatorWeights?: EmulatorWeights;
  /** QLoRA-style: how the whole frozen model is held, before the split (default 'stored': as loaded). */
  fullWeights?: EmulatorWeights;
  /** Whose alignment objective `align` carries (reported in summary.json); null without an emulator. */
  alignObjective?: AlignObjectiveName | null;
  adapterLora: LoraConfig;
  emulatorLora: LoraConfig;
  preAlignSteps: number;
  /** Alignment steps at the start of every round after the first (the strategy decides which rounds). */
  alignStepsPerRound: number;
  align: AlignLossOptions & { optimizer: OptimizerOptions; maxGradNorm?: number };
  local: LocalTrainOptions;
}

/**
 * One algorithm, whole: where its adapter sits, how its data is dealt, its alignment schedule, what
 * travels each way, how the server combines what comes back, and whether it can be deployed. The
 * driver (src/fl/driver.ts) reads these instead of testing algorithm names.
 */
export interface Strategy {
  readonly name: AlgorithmName;
  /** Where the adapter sits in the full model; null: LoRA on every layer, no emulator (fedavg-full). */
  placement(s: AlgorithmSettings): AdapterPlacement | null;
  /** 'per-client': each client its own share; 'single-client': one client holds all the data (offsite). */
  readonly data: 'per-client' | 'single-client';
  /** Alignment steps before round 0. */
  preAlignSteps(s: AlgorithmSettings): number;
  /** Alignment steps at the start of round `round` (> 0). */
  alignSteps(s: AlgorithmSettings, round: number): number;
  /**
   * 'global': every client starts a round from the global adapter and the server aggregates the
   * uploads into the next one; 'own': each client keeps its own adapter and nothing is shared
   * after joining (local), so no round traffic exists.
   */
  readonly adapters: 'global' | 'own';
  /** Down: the adapter LoRA (+ the emulator LoRA when the client's copy is older). Up: the adapter LoRA. */
  readonly sends: { down: readonly ('adapter' | 'emulator')[]; up: readonly 'adapter'[] };
  /** null when a server may run it over the network; otherwise why not. */
  readonly notDeployable: string | null;
}

const lastLayers = (s: AlgorithmSettings): AdapterPlacement => ({ kind: 'last', last: s.adapterLayers });
const firstLast = (s: AlgorithmSettings): AdapterPlacement => ({
  kind: 'first-last',
  first: s.offsiteLayers.first,
  last: s.offsiteLayers.last,
});
const DOWN_UP = { down: ['adapter', 'emulator'], up: ['adapter'] } as const;

export const STRATEGIES: Readonly<Record<AlgorithmName, Strategy>> = {
  fedbiot: {
    name: 'fedbiot',
    placement: lastLayers,
    data: 'per-client',
    adapters: 'global',
    sends: DOWN_UP,
    notDeployable: null,
    preAlignSteps: (s) => s.preAlignSteps,
    alignSteps: (s, round) => (round > 0 ? s.alignStepsPerRound : 0),
  },
  fedot: {
    name: 'fedot',
    placement: firstLast,
    data: 'per-client',
    adapters: 'global',
    sends: DOWN_UP,
    notDeployable: null,
    preAlignSteps: (s) => s.preAlignSteps,
    alignSteps: () => 0,
  },
  offsite: {
    name: 'offsite',
    placement: firstLast,
    data: 'single-client',
    adapters: 'global',
    sends: DOWN_UP,
    notDeployable: null,
    preAlignSteps: (s) => s.preAlignSteps,
    alignSteps: () => 0,
  },
  'fedavg-full': {
    name: 'fedavg-full',
    placement: () => null,
    data: 'per-client',
    adapters: 'global',
    sends: { down: ['adapter'], up: ['adapter'] },
    notDeployable: 'fedavg-full would ship the full model to every client',
    preAlignSteps: () => 0,
    alignSteps: () => 0,
  },
  local: {
    name: 'local',
    placement: lastLayers,
    data: 'per-client',
    adapters: 'own',
    sends: { down: [], up: [] },
    notDeployable: 'local has no server after joining (each client trains alone)',
    preAlignSteps: (s) => s.preAlignSteps,
    alignSteps: () => 0,
  },
};

export function strategyOf(name: AlgorithmName): Strategy {
  return STRATEGIES[name];
}

/** What the server sends to a client at the start of a round. */
export interface RoundPayload {
  round: number;
  adapter: LoraState;
  /** The emulator LoRA after this round's alignment; null when it did not change since `emulatorVersion`. */
  emulator: LoraState | null;
  emulatorVersion: number;
}

/** The server's half: owns the full model, aligns, aggregates, decides what is broadcast. */
export class ServerAlgorithm {
  readonly split: SplitModels | null;
  /** For fedavg-full: the full model with LoRA on every layer. */
  readonly fullLoraModel: LlamaModel | null;
  readonly strategy: Strategy;
  private emulatorVersion = 0;
  private initialAdapter: LoraState;
  lastAlign: AlignLossValues | null = null;

  constructor(
    public readonly base: LlamaModel,
    public readonly settings: AlgorithmSettings,
    private readonly publicBatches: () => TokenBatch,
    public readonly seed: number,
  ) {
    this.strategy = strategyOf(settings.name);
    const placement = this.strategy.placement(settings);
    // QLoRA-style: every frozen matrix quantized (or 16-bit) once, the LoRA trained over it
    const full = settings.fullWeights ?? 'stored';
    if (full !== 'stored') storeModelWeights(base, (w, name) => storeEmulatorWeight(w, full, name));
    if (placement) {
      this.split = buildSplit(
        base,
        placement,
        settings.dropRate,
        { adapter: settings.adapterLora, emulator: settings.emulatorLora },
        seed,
        settings.layerDrop,
        settings.emulatorWeights,
      );
      this.fullLoraModel = null;
    } else {
      this.split = null;
      base.attachLora(settings.adapterLora, deriveSeed(seed, 'adapter-lora'));
      this.fullLoraModel = base;
    }
    if (this.split) setTrainable(this.split, 'none');
    else for (const p of base.loraParams()) p.requiresGrad = false;
    this.initialAdapter = captureLora(this.adapterLayerList());
  }

  /** The layers whose LoRA the clients train. */
  adapterLayerList(): DecoderLayer[] {
    return this.split ? adapterLayers(this.split) : this.base.layers;
  }

  /** The model the clients hold: compressed, or the full model for fedavg-full. */
  clientModel(): LlamaModel {
    return this.split ? this.split.compressed : this.fullLoraModel!;
  }

  /** The model the adapter is evaluated on as the product (AdapFu). */
  fullModel(): LlamaModel {
    return this.split ? this.split.full : this.fullLoraModel!;
  }

  get hasEmulator(): boolean {
    return this.split !== null;
  }

  /** Pre-alignment before round 0 (FedBiOT, FedOT, offsite, local). */
  prepare(onStep?: (step: number, v: AlignLossValues) => void): AlignLossValues | null {
    const steps = this.strategy.preAlignSteps(this.settings);
    if (!this.split || steps <= 0) return null;
    this.lastAlign = runAlignment(
      this.split,
      this.publicBatches,
      { ...this.settings.align, steps, dropoutSeed: deriveSeed(this.seed, 'align-dropout-0') },
      onStep,
    );
    this.emulatorVersion++;
    return this.lastAlign;
  }

  /** Start of round t: the strategy's alignment schedule (FedBiOT re-aligns the emulator to the aggregated adapter, t > 0). */
  beginRound(round: number, onStep?: (step: number, v: AlignLossValues) => void): AlignLossValues | null {
    const steps = this.strategy.alignSteps(this.settings, round);
    if (!this.split || steps <= 0) return null;
    this.lastAlign = runAlignment(
      this.split,
      this.publicBatches,
      { ...this.settings.align, steps, dropoutSeed: deriveSeed(this.seed, `align-dropout-${round}`) },
      onStep,
    );
    this.emulatorVersion++;
    return this.lastAlign;
  }

  /** What a client receives; the emulator LoRA only when the client's copy is older. */
  payload(round: number, clientEmulatorVersion: number): RoundPayload {
    const emulator =
      this.split && clientEmulatorVersion < this.emulatorVersion ? captureLora(this.split.emulator) : null;
    return { round, adapter: captureLora(this.adapterLayerList()), emulator, emulatorVersion: this.emulatorVersion };
  }

  get currentEmulatorVersion(): number {
    return this.emulatorVersion;
  }

  emulatorState(): LoraState | null {
    return this.split ? captureLora(this.split.emulator) : null;
  }

  adapterState(): LoraState {
    return captureLora(this.adapterLayerList());
  }

  initialAdapterState(): LoraState {
    return cloneState(this.initialAdapter);
  }

  setAdapter(state: LoraState): void {
    loadLora(this.adapterLayerList(), state, 'adapter');
  }

  setEmulator(state: LoraState, version: number): void {
    if (!this.split) return;
    loadLora(this.split.emulator, state, 'emulator');
    this.emulatorVersion = version;
  }
}

export interface ClientResult {
  state: LoraState;
  losses: number[];
  meanLoss: number;
  tokens: number;
  seconds: number;
}

/** The client's half: holds the client model (compressed, or full for fedavg-full) and trains the adapter. */
export class ClientAlgorithm {
  emulatorVersion = 0;

  constructor(
    private readonly model: LlamaModel,
    private readonly adapter: DecoderLayer[],
    private readonly emulator: DecoderLayer[],
    private readonly options: LocalTrainOptions,
  ) {}

  /** Applies a round's payload (adapter, and the emulator LoRA when sent). */
  apply(p: RoundPayload): void {
    if (p.emulator) {
      loadLora(this.emulator, p.emulator, `round ${p.round} emulator`);
      this.emulatorVersion = p.emulatorVersion;
    }
    loadLora(this.adapter, p.adapter, `round ${p.round} adapter`);
  }

  /** Local training; dropoutSeed seeds the adapter LoRA's dropout masks (when its dropout is > 0). */
  train(next: () => TokenBatch, onStep?: (step: number, loss: number) => void, dropoutSeed = 0): ClientResult {
    const params: Tensor[] = this.adapter.flatMap((l) => l.loraParams());
    const emu: Tensor[] = this.emulator.flatMap((l) => l.loraParams());
    for (const p of emu) p.requiresGrad = false;
    for (const p of params) p.requiresGrad = true;
    const dropout = mulberry32(dropoutSeed);
    for (const l of this.adapter) l.setLoraDropout(dropout);
    const t0 = performance.now();
    try {
      const r = localTrain(this.model, params, next, this.options, onStep);
      return {
        state: captureLora(this.adapter),
        losses: r.losses,
        meanLoss: r.meanLoss,
        tokens: r.tokens,
        seconds: (performance.now() - t0) / 1000,
      };
    } finally {
      for (const p of params) p.requiresGrad = false;
      for (const l of this.adapter) l.setLoraDropout(null);
    }
  }
}

/** A client half that works on the server's own split (simulation: one model in memory). */
export function simulatedClient(server: ServerAlgorithm): ClientAlgorithm {
  return new ClientAlgorithm(
    server.clientModel(),
    server.split ? server.split.compressedAdapter : server.adapterLayerList(),
    server.split?.emulator ?? [],
    server.settings.local,
  );
}
