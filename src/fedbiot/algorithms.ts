// The algorithms, as transport-agnostic server and client halves (Flower-style strategy / client).
// Simulation calls them in one process; the network runtime calls the same methods on either side
// of the wire.
//
//   fedbiot      adapter = last a layers; emulator aligned before round 0 and E_s steps every round.
//   fedot        adapter = first 2 + last 2; emulator aligned once before FL; FedAvg.
//   offsite      as fedot, but one client holds all the data (Offsite-Tuning).
//   fedavg-full  LoRA on every layer of the full model at every client (upper bound, full cost).
//   local        FedBiOT's split, but every client trains alone (no aggregation).
import type { LlamaModel, DecoderLayer } from '../nn/llama.js';
import type { Tensor } from '../tensor/tensor.js';
import type { OptimizerOptions } from '../nn/optim.js';
import type { TokenBatch } from '../nn/lm.js';
import { buildSplit, setTrainable, adapterLayers, type LoraConfig, type SplitModels } from './compress.js';
import { runAlignment, type AlignLossOptions, type AlignLossValues } from './align.js';
import { localTrain, type LocalTrainOptions } from './local.js';
import { fedAvg, type ClientUpdate } from './aggregate.js';
import { captureLora, loadLora, cloneState, stateBytes, type LoraState } from './lora-state.js';
import type { AdapterPlacement, LayerDropRule } from './split.js';
import { defaultObjective, defaultProximal, OBJECTIVES, type AlignObjectiveName } from './objectives.js';
import { deriveSeed, mulberry32 } from '../util/rng.js';

export const ALGORITHMS = ['fedbiot', 'fedot', 'offsite', 'fedavg-full', 'local'] as const;
export type AlgorithmName = (typeof ALGORITHMS)[number];

export interface AlgorithmSettings {
  name: AlgorithmName;
  /** FedBiOT / local: the adapter is the last `adapterLayers` layers. */
  adapterLayers: number;
  /** FedOT / offsite: first + last layers form the adapter. */
  offsiteLayers: { first: number; last: number };
  dropRate: number;
  /** Kept-layer index rule of the layer drop (default: the reference's). */
  layerDrop?: LayerDropRule;
  /** Whose alignment objective `align` carries (reported in summary.json); null without an emulator. */
  alignObjective?: AlignObjectiveName | null;
  adapterLora: LoraConfig;
  emulatorLora: LoraConfig;
  preAlignSteps: number;
  /** Alignment steps at the start of every round after the first (FedBiOT only). */
  alignStepsPerRound: number;
  align: AlignLossOptions & { optimizer: OptimizerOptions; maxGradNorm?: number };
  local: LocalTrainOptions;
}

/** What the server sends to a client at the start of a round. */
export interface RoundPayload {
  round: number;
  adapter: LoraState;
  /** The emulator LoRA after this round's alignment; null when it did not change since `emulatorVersion`. */
  emulator: LoraState | null;
  emulatorVersion: number;
}

export function placementOf(s: AlgorithmSettings): AdapterPlacement | null {
  switch (s.name) {
    case 'fedbiot':
    case 'local':
      return { kind: 'last', last: s.adapterLayers };
    case 'fedot':
    case 'offsite':
      return { kind: 'first-last', first: s.offsiteLayers.first, last: s.offsiteLayers.last };
    case 'fedavg-full':
      return null;
  }
}

/** The server's half: owns the full model, aligns, aggregates, decides what is broadcast. */
export class ServerAlgorithm {
  readonly split: SplitModels | null;
  /** For fedavg-full: the full model with LoRA on every layer. */
  readonly fullLoraModel: LlamaModel | null;
  private emulatorVersion = 0;
  private initialAdapter: LoraState;
  lastAlign: AlignLossValues | null = null;

  constructor(public readonly base: LlamaModel, public readonly settings: AlgorithmSettings, private readonly publicBatches: () => TokenBatch, public readonly seed: number) {
    const placement = placementOf(settings);
    if (placement) {
      this.split = buildSplit(base, placement, settings.dropRate, { adapter: settings.adapterLora, emulator: settings.emulatorLora }, seed, settings.layerDrop);
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
    if (!this.split || this.settings.preAlignSteps <= 0) return null;
    this.lastAlign = runAlignment(this.split, this.publicBatches, { ...this.settings.align, steps: this.settings.preAlignSteps, dropoutSeed: deriveSeed(this.seed, 'align-dropout-0') }, onStep);
    this.emulatorVersion++;
    return this.lastAlign;
  }

  /** Start of round t: FedBiOT re-aligns the emulator to the aggregated adapter (t > 0). */
  beginRound(round: number, onStep?: (step: number, v: AlignLossValues) => void): AlignLossValues | null {
    if (!this.split || this.settings.name !== 'fedbiot' || round === 0 || this.settings.alignStepsPerRound <= 0) return null;
    this.lastAlign = runAlignment(this.split, this.publicBatches, { ...this.settings.align, steps: this.settings.alignStepsPerRound, dropoutSeed: deriveSeed(this.seed, `align-dropout-${round}`) }, onStep);
    this.emulatorVersion++;
    return this.lastAlign;
  }

  /** What a client receives; the emulator LoRA only when the client's copy is older. */
  payload(round: number, clientEmulatorVersion: number): RoundPayload {
    const emulator = this.split && clientEmulatorVersion < this.emulatorVersion ? captureLora(this.split.emulator) : null;
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

  /** FedAvg of the reported adapters becomes the new global adapter. */
  aggregate(updates: readonly ClientUpdate[]): LoraState {
    const avg = fedAvg(updates);
    this.setAdapter(avg);
    return avg;
  }

  adapterBytes(): number {
    return stateBytes(this.adapterState());
  }

  emulatorBytes(): number {
    const e = this.emulatorState();
    return e ? stateBytes(e) : 0;
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
      return { state: captureLora(this.adapter), losses: r.losses, meanLoss: r.meanLoss, tokens: r.tokens, seconds: (performance.now() - t0) / 1000 };
    } finally {
      for (const p of params) p.requiresGrad = false;
      for (const l of this.adapter) l.setLoraDropout(null);
    }
  }
}

/** A client half that works on the server's own split (simulation: one model in memory). */
export function simulatedClient(server: ServerAlgorithm): ClientAlgorithm {
  return new ClientAlgorithm(server.clientModel(), server.adapterLayerList(), server.split?.emulator ?? [], server.settings.local);
}

/** Paper-like defaults, scaled down; every field can be overridden by the config. */
export function defaultSettings(name: AlgorithmName): AlgorithmSettings {
  const sgd = (lr: number): OptimizerOptions => ({ kind: 'sgd', lr });
  const objective = OBJECTIVES[defaultObjective(name) ?? 'fedbiot'];
  const base: AlgorithmSettings = {
    name,
    adapterLayers: 2,
    offsiteLayers: { first: 2, last: 2 },
    dropRate: 0.2,
    adapterLora: { r: 8, alpha: 16, dropout: 0, targets: ['q_proj', 'v_proj'] },
    emulatorLora: { r: 8, alpha: 16, dropout: 0, targets: ['q_proj', 'v_proj'] },
    preAlignSteps: 500,
    alignStepsPerRound: 10,
    layerDrop: 'reference',
    alignObjective: defaultObjective(name),
    align: { hiddenLoss: 'nmse', hiddenWeight: objective.hiddenWeight, lambda: objective.lambda, mu: objective.mu, optimizer: sgd(1e-3) },
    local: { steps: 30, optimizer: sgd(1e-3), gradAccum: 1, proximal: defaultProximal(name) },
  };
  if (name === 'fedot' || name === 'offsite') base.alignStepsPerRound = 0;
  if (name === 'fedavg-full') {
    base.preAlignSteps = 0;
    base.alignStepsPerRound = 0;
  }
  return base;
}
