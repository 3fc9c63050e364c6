// Simulation: the federation driver (driver.ts) with an in-process transport. The clients are
// ClientAlgorithm halves working on the server's own split; every payload and update is encoded
// and decoded exactly as on the network (payload.ts), so the bytes counted are the bytes a
// deployment would send, and an update passes the same checks.
import { type ClientAlgorithm, simulatedClient } from '../fedbiot/algorithms.js';
import { toTokenBatch, type BatchIterator, type BatchIteratorState } from '../data/batch.js';
import { prepareClientData } from '../data/client-data.js';
import { getTemplate } from '../data/templates.js';
import { liveTensorBytes, peakTensorBytes, resetPeakTensorBytes } from '../tensor/engine.js';
import { nonce as newNonce } from './net/auth.js';
import { decodePayload, encodeUpdate } from './payload.js';
import { clientDataSeed, clientDropoutSeed, compressedUploadSeed } from './seeds.js';
import {
  measuredJoinBytes,
  runFederation,
  type ReceivedUpdate,
  type RoundExchange,
  type RoundOutcome,
  type RunOptions,
  type Summary,
  type Transport,
  type TransportContext,
} from './driver.js';
import { clientShares, type Experiment } from './experiment.js';
import { CompressedClient } from './compression.js';
import { cloneState, stateAddScaled, stateDiff, type LoraState } from '../fedbiot/lora-state.js';

export interface SimulationOptions extends RunOptions {
  /** Checked between clients: when it returns true the run stops after saving nothing partial. */
  shouldStop?: () => boolean;
  /** Benchmarks of robust aggregation: this client's update is multiplied by `scale` (a poisoned upload). */
  poison?: { client: string; scale: number };
}

interface SimState {
  iterators: Record<string, BatchIteratorState>;
  /** The emulator version each simulated client holds (-1: none yet). */
  emulatorVersions: Record<string, number>;
  peakActivationBytes: number;
}

/** Checkpoint arrays of the compressed clients: CODEC_PREFIX + client name. */
const CODEC_PREFIX = 'codec-client-';

/** All clients in this process, trained one after the other on the server's own model. */
export class InProcessTransport implements Transport {
  readonly kind = 'simulation';
  private ctx!: TransportContext;
  private client!: ClientAlgorithm;
  private readonly iterators = new Map<string, BatchIterator>();
  private readonly sizes = new Map<string, number>();
  private readonly warnings: string[] = [];
  private state: SimState = { iterators: {}, emulatorVersions: {}, peakActivationBytes: 0 };
  /** With compression: each client's received states and error feedback (checkpointed with each round). */
  private readonly compressedClients = new Map<string, CompressedClient>();
  /** Restored clients' arrays, made into CompressedClients once the run's layouts are known. */
  private restoredCodec = new Map<string, LoraState>();

  constructor(
    exp: Experiment,
    private readonly shouldStop?: () => boolean,
    private readonly poison?: SimulationOptions['poison'],
  ) {
    const cfg = exp.cfg;
    const template = cfg.data.template ? getTemplate(cfg.data.template, cfg.model.path) : undefined;
    // The simulation deals one dataset into shares; each simulated client prepares its share the way
    // a networked client prepares its own file (src/data/client-data.ts).
    clientShares(exp).forEach((examples, i) => {
      if (examples.length === 0) return;
      const name = String(i);
      const data = prepareClientData(
        examples,
        exp.tokenizer,
        {
          maxLength: cfg.data.maxLength,
          template,
          batchSize: cfg.algorithm.local.batchSize,
          seed: clientDataSeed(cfg.seed, name),
        },
        `simulated client ${name}`,
      );
      this.iterators.set(name, data.iterator);
      this.sizes.set(name, data.size);
      this.warnings.push(...data.warnings);
    });
  }

  snapshot(): SimState {
    for (const [k, it] of this.iterators) this.state.iterators[k] = it.getState();
    return structuredClone(this.state);
  }

  /** Each compressed client's holdings and error feedback, as a networked client saves them. */
  snapshotArrays(): Record<string, LoraState> {
    const out: Record<string, LoraState> = {};
    for (const [name, cc] of this.compressedClients) out[`${CODEC_PREFIX}${name}`] = cc.toArrays();
    return out;
  }

  restore(s: unknown, arrays: Record<string, LoraState>): void {
    this.state = structuredClone(s as SimState);
    for (const [k, it] of Object.entries(this.state.iterators)) this.iterators.get(k)?.setState(it);
    this.compressedClients.clear();
    this.restoredCodec = new Map(
      Object.entries(arrays)
        .filter(([k]) => k.startsWith(CODEC_PREFIX))
        .map(([k, v]) => [k.slice(CODEC_PREFIX.length), v]),
    );
  }

  async open(ctx: TransportContext): Promise<void> {
    this.ctx = ctx;
    for (const w of this.warnings) ctx.progress.log(`warning: ${w}`);
    this.client = simulatedClient(ctx.server);
  }

  async exchange(x: RoundExchange): Promise<RoundOutcome | null> {
    const { cfg, progress } = this.ctx;
    const sampled = x.sample([...this.iterators.keys()]);
    const updates: ReceivedUpdate[] = [];
    const traffic: Record<string, { down: number; up: number }> = {};
    const nonce = newNonce();
    const emulator = x.compressed ? this.ctx.server.emulatorState() : null;
    progress.start(`round ${x.round + 1}/${cfg.rounds}`, sampled.length * cfg.algorithm.local.steps);
    for (const name of sampled) {
      // Let the event loop turn between clients: a Ctrl-C is seen, and a dashboard keeps answering.
      await new Promise((r) => setImmediate(r));
      if (this.shouldStop?.()) {
        progress.stop();
        return null;
      }
      let body: Buffer;
      let cc: CompressedClient | null = null;
      /** The adapter the round starts from as this client holds it (compressed: the received copy). */
      let start = x.start;
      if (x.compressed) {
        // compressed streams: each client holds its own received states and error feedback
        const server = x.compressed;
        const saved = this.restoredCodec.get(name);
        this.restoredCodec.delete(name);
        cc =
          this.compressedClients.get(name) ??
          (saved
            ? CompressedClient.fromArrays(
                cfg.compression,
                server.adapterLayout,
                server.emulatorLayout,
                saved,
                `checkpointed codec state of simulated client ${name}`,
              )
            : new CompressedClient(cfg.compression, server.adapterLayout, server.emulatorLayout));
        this.compressedClients.set(name, cc);
        body = server.payloadFor(cc.versions.adapter, cc.versions.emulator);
        const r = cc.receive(body, `round ${x.round + 1} payload for client ${name}`);
        // the emulator LoRA this client holds, every round: the shared model's layers carry the
        // server's own aligned copy between rounds, a networked client's carry what it received
        const emulator = cc.heldEmulator;
        start = cloneState(r.adapter);
        this.client.apply({
          round: x.round,
          adapter: cloneState(r.adapter),
          emulator: emulator ? cloneState(emulator) : null,
          emulatorVersion: this.ctx.server.currentEmulatorVersion,
        });
      } else {
        body = x.payloadFor(name, nonce, this.state.emulatorVersions[name] ?? -1).body;
        const p = decodePayload(body);
        this.client.apply(p);
        if (p.emulator) this.state.emulatorVersions[name] = p.emulatorVersion;
      }
      const it = this.iterators.get(name)!;
      const live0 = liveTensorBytes();
      resetPeakTensorBytes();
      const res = this.client.train(
        () => toTokenBatch(it.next()!),
        (_, loss) => progress.tick({ client: name, loss: loss.toFixed(4) }),
        clientDropoutSeed(clientDataSeed(cfg.seed, name), x.round),
      );
      this.state.peakActivationBytes = Math.max(this.state.peakActivationBytes, peakTensorBytes() - live0);
      const size = this.sizes.get(name)!;
      let upload = res.state;
      if (this.poison?.client === name) upload = stateAddScaled(start, stateDiff(upload, start), this.poison.scale);
      // Local DP (and clipping under secure aggregation) happens on the client, before upload.
      const agg = this.ctx.aggregator;
      if (agg.clientTransforms) upload = agg.prepareUpload(start, upload, agg.simulatedClientNoise(name, x.round));
      // the body (and, compressed, the header's UpdateMeta) a networked client sends
      const up = cc
        ? cc.upload(upload, compressedUploadSeed(clientDataSeed(cfg.seed, name), x.round))
        : encodeUpdate({ round: x.round, nonce, samples: size, state: upload }, this.ctx.codec);
      const c = x.check(up, cc ? { round: x.round, nonce, samples: size } : undefined);
      if (!c.ok)
        throw new Error(
          `simulated client ${name}, round ${x.round + 1}: its update was refused: ${c.code}: ${c.reason}`,
        );
      const state: LoraState = c.state;
      const reported = c.samples;
      traffic[name] = { down: body.length, up: up.length };
      x.emit({ type: 'update', round: x.round, client: name, bytes: up.length });
      updates.push({
        client: name,
        reported,
        trusted: size,
        state,
        meanLoss: res.meanLoss,
        stepSeconds: res.seconds / Math.max(1, cfg.algorithm.local.steps),
      });
    }
    progress.stop();
    // simulated clients load what they receive into the server's own emulator layers: give the
    // server back its aligned emulator LoRA (compressed copies differ from it)
    if (emulator) this.ctx.server.setEmulator(emulator, this.ctx.server.currentEmulatorVersion);
    return { sampled, updates, traffic };
  }

  joinBytes(ctx: TransportContext): number {
    return measuredJoinBytes(ctx);
  }

  peakActivationBytes(): number {
    return this.state.peakActivationBytes;
  }

  async close(): Promise<void> {}
}

/** One federated experiment with every client in this process. */
export async function runSimulation(exp: Experiment, o: SimulationOptions): Promise<Summary | null> {
  return runFederation(exp, new InProcessTransport(exp, o.shouldStop, o.poison), o);
}

export type { Summary, EvalResult } from './driver.js';
export { settingsFromConfig, methodAsRun, type MethodAsRun } from '../fedbiot/settings.js';
