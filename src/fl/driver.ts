// The federation driver: the one place that owns a run's order of operations, for the simulation
// (all clients in this process, src/fl/simulation.ts) and for deployment (remote clients over
// HTTP, src/fl/net/server.ts). Flower's shape: one loop, two transports.
//
//   prepare   evaluate the base model, pre-align the emulator (strategy's schedule), evaluate it,
//             checkpoint "round 0"                                  (or resume from a checkpoint)
//   open      the transport starts (network: writes the compressed model, listens)
//   round r   align (strategy's schedule) -> transport.exchange: sample (the driver's rule), send
//             each sampled client its encoded payload, collect checked updates -> aggregate ->
//             metrics entry -> evaluation when due -> checkpoint (then the transport records it)
//   finish    final evaluation (AdapEmu, AdapFu), adapter as PEFT, summary.json
//
// What differs between the transports lives in them: how clients become available and are reached,
// quorum and deadlines, SQLite (network); batches and step timing of in-process clients (simulation).
//
// Extension points (DriverHooks):
//   aggregate  replaces FedAvg over the checked, weighted updates (robust aggregation, differential
//              privacy noise, the unmasking step of secure aggregation);
//   codec      encodes every LoRA state that crosses the wire, both ways, in both transports
//              (compression); see src/fl/payload.ts;
//   onEvent    receives the run's events (prepared, round-open, update, round-end, finished) as they
//              happen (dashboards, metrics exporters). Events are observations: a throwing listener
//              is reported in the log and does not stop the run.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { RunConfig } from '../config/schema.js';
import { ServerAlgorithm, type AlgorithmSettings, type Strategy } from '../fedbiot/algorithms.js';
import { heldBytes } from '../models/stored-weights.js';
import { CompressedServer, type CompressedServerSnapshot } from './compression.js';
import { methodAsRun, settingsFromConfig, type MethodAsRun } from '../fedbiot/settings.js';
import { evaluateModel, type EvalSpec } from '../fedbiot/evaluate.js';
import { fedAvg } from '../fedbiot/aggregate.js';
import { cloneState, type LoraState } from '../fedbiot/lora-state.js';
import {
  RoundAggregator,
  type AggregateResult,
  type AggregatorState,
  type PrivacyRecord,
} from '../privacy/aggregator.js';
import { aggregationPlan } from '../privacy/settings.js';
import { makeManifest } from '../fedbiot/split.js';
import type { LlamaModel } from '../nn/llama.js';
import type { TokenBatch } from '../nn/lm.js';
import type { SecureRoundResult } from '../secagg/round.js';
import { encodeExamples, encodePrompt } from '../data/encode.js';
import { BatchIterator, collate, resolvePadId, toTokenBatch, type BatchIteratorState } from '../data/batch.js';
import { getTemplate } from '../data/templates.js';
import type { Example } from '../data/types.js';
import { saveAdapterAsPeft } from '../models/hf-model.js';
import { modelHash } from '../models/hash.js';
import { writeAtomic } from '../io/byte-source.js';
import { clearTensorPool } from '../tensor/engine.js';
import { deriveSeed, mulberry32, shuffle } from '../util/rng.js';
import { fmtBytes } from '../util/format.js';
import { silentProgress, type Progress } from '../util/progress.js';
import { loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { taskScorer, type ServerData } from './experiment.js';
import { encodePayload, f32Codec, type PayloadCodec } from './payload.js';
import { checkCompressedUpload, checkUpload, type Checked } from './net/validate.js';
import { clientDownloadBytes } from './net/artifact.js';

export interface EvalResult {
  [metric: string]: number;
}

/** summary.json: one layout for simulated and deployed runs. */
export interface Summary {
  algorithm: string;
  /** 'simulation' or 'network'. */
  transport: string;
  rounds: number;
  base: EvalResult;
  emulator: EvalResult | null;
  adapemu: EvalResult;
  adapfu: EvalResult;
  /** Round traffic (payloads down, updates up): body bytes as sent, HTTP headers aside. */
  bytes_total: number;
  bytes_down_total: number;
  bytes_up_total: number;
  /** What one client downloads to join: the files of the model it holds. */
  bytes_join_per_client: number;
  /**
   * Bytes moved again or in vain, outside the counts above: payloads fetched again, upload bodies
   * not accepted, model bytes beyond one copy per client (0 in simulation).
   */
  bytes_resent_total: number;
  /** How the run defined its method: alignment loss, its public data, proximal weight, layer drop. */
  method: MethodAsRun;
  client: {
    model_params: number;
    trainable_params: number;
    mean_step_seconds: number;
    /** Measured in the simulation only (a server cannot see its clients' memory): null when deployed. */
    peak_memory_mb: number | null;
  };
  seconds: number;
  /** With privacy: the epsilon spent over all rounds (null: infinite) at this delta. */
  privacy?: { epsilon: number | null; delta: number };
  /**
   * With an emulator: the emulator-to-full gap after each evaluated round (round -1: after
   * pre-alignment, before any tuning), every round with `eval.drift`.
   */
  drift?: DriftPoint[];
}

/**
 * The emulator-to-full gap of a round: mean response NLL on the evaluation data (the clients'
 * task, held out) of the adapter plugged into the emulator (AdapEmu) and into the full model
 * (AdapFu). The gap grows when the adapter drifts to where the emulator no longer stands in for the
 * full model; re-aligning the emulator with the current adapter (FedBiOT) is meant to hold it down.
 */
export interface DriftPoint {
  round: number;
  adapemu_nll: number;
  adapfu_nll: number;
  /** adapemu_nll - adapfu_nll. */
  gap: number;
}

/** The drift point of an evaluation of both views; null when either NLL is missing. */
export function driftPoint(round: number, emu: EvalResult | null | undefined, fu: EvalResult | null | undefined) {
  const e = emu?.nll;
  const f = fu?.nll;
  if (e === undefined || f === undefined || !Number.isFinite(e) || !Number.isFinite(f)) return null;
  return { round, adapemu_nll: e, adapfu_nll: f, gap: e - f } satisfies DriftPoint;
}

/** One checked update as the driver aggregates it. */
export interface ReceivedUpdate {
  client: string;
  /** The data size the client reported. */
  reported: number;
  /** The weight the transport vouches for (a known share size); null when it knows none. */
  trusted: number | null;
  state: LoraState;
  meanLoss: number;
  /** Seconds of local training per step, when known. */
  stepSeconds: number | null;
}

/** FedAvg weights and states, as an aggregation hook receives them. */
export interface WeightedUpdate {
  client: string;
  weight: number;
  state: LoraState;
}

export type Aggregator = (
  updates: readonly WeightedUpdate[],
  ctx: { round: number; reference: LoraState },
) => LoraState;

export const fedAvgAggregator: Aggregator = (updates) =>
  fedAvg(updates.map((u) => ({ client: u.client, samples: u.weight, state: u.state })));

export type FederationEvent =
  | { type: 'prepared'; entry: Record<string, unknown> }
  | { type: 'round-open'; round: number; sampled: readonly string[] }
  | { type: 'update'; round: number; client: string; bytes: number }
  | { type: 'round-end'; round: number; entry: Record<string, unknown> }
  | { type: 'finished'; summary: Summary };

export interface DriverHooks {
  aggregate?: Aggregator;
  codec?: PayloadCodec;
  onEvent?: (e: FederationEvent) => void;
}

/** What the driver hands a transport for one round. */
export interface RoundExchange {
  round: number;
  /** The adapter the round starts from (what sampled clients receive). */
  start: LoraState;
  /** The round's sample from the available clients (the driver's one rule). */
  sample(available: readonly string[]): string[];
  /** Up to `want` more clients for deadline extension `extension`, drawn from `others`. */
  sampleMore(others: readonly string[], want: number, extension: number): string[];
  /** The encoded payload for a client whose emulator copy has version `emulatorVersion` (-1: none). */
  payloadFor(client: string, nonce: string, emulatorVersion: number): { body: Buffer; emulatorVersion: number };
  /**
   * Checks an update body against the round's adapter (names, shapes, finite values, norm bound).
   * With `compressed`, the body is a compressed delta and `meta` its UpdateMeta (round, nonce, samples).
   */
  check(body: Uint8Array, meta?: unknown): Checked;
  /** The strategy's choice: false when clients keep their own adapter (nothing travels after joining). */
  shared: boolean;
  /** With `compression` configured (and a shared adapter): the round's compressed streams, used instead of payloadFor / check. */
  compressed: CompressedServer | null;
  emit(e: FederationEvent): void;
}

/** A round under secure aggregation over the network: what the server learned (the survivors' sum only). */
export interface SecureOutcome
  extends Pick<SecureRoundResult, 'sum' | 'divisor' | 'survivors' | 'dropped' | 'bytesUp' | 'bytesDown'> {
  seconds: number;
  /** The survivors' training reports (no states: the server never sees one). */
  reports: Omit<ReceivedUpdate, 'state' | 'trusted'>[];
}

export interface RoundOutcome {
  sampled: string[];
  /** Checked updates, in sampled order (empty under secure aggregation: see `secure`). */
  updates: ReceivedUpdate[];
  /** Secure aggregation over the network: the round's unmasked sum instead of updates. */
  secure?: SecureOutcome;
  /**
   * Body bytes per client this round, by one definition for every transport: the payload the
   * client received and the update the server accepted, each counted once (HTTP headers aside).
   */
  traffic: Record<string, { down: number; up: number }>;
  /** Bytes of the round moved again or in vain (a payload fetched twice, an upload cut off); 0 when none. */
  resent?: number;
  /** Transport-specific fields of the round's metrics entry (quorum, extensions, ...). */
  extra?: Record<string, unknown>;
}

export interface TransportContext {
  cfg: RunConfig;
  exp: ServerData;
  server: ServerAlgorithm;
  strategy: Strategy;
  progress: Progress;
  codec: PayloadCodec;
  /** The round's aggregation step; transports call its client half (local DP, clipping) on updates. */
  aggregator: RoundAggregator;
}

export interface Transport {
  readonly kind: 'simulation' | 'network';
  /** Rounds completed per the transport's own record (null: use the checkpoint's latest.json). */
  resumePoint?(): number | null;
  /** Restores the transport's part of a checkpoint (its JSON and its arrays, see snapshotArrays). */
  restore?(state: unknown, arrays: Record<string, LoraState>): void;
  /** The transport's part of a checkpoint. */
  snapshot?(): unknown;
  /** The transport's arrays for a checkpoint (the simulated clients' compressed streams), by name. */
  snapshotArrays?(): Record<string, LoraState>;
  /** Called once the server half is prepared (or resumed). */
  open(ctx: TransportContext): Promise<void>;
  /** One round's exchange; null when the run was asked to stop (nothing of the round is kept). */
  exchange(x: RoundExchange): Promise<RoundOutcome | null>;
  /** The round (or, with round -1, the preparation) is checkpointed under `checkpoint`. */
  recorded?(round: number, entry: Record<string, unknown>, checkpoint: string): void;
  /** Bytes one client downloads to join. */
  joinBytes(ctx: TransportContext): number;
  /** Model download bytes beyond one copy per client (resumed or repeated downloads). */
  resentJoinBytes?(): number;
  /** The largest working memory one client's local training used, when the transport can see it. */
  peakActivationBytes?(): number;
  /** After the summary is written (network: keeps answering for a while). */
  finish?(): Promise<void>;
  close(): Promise<void>;
}

export interface RunOptions {
  outDir: string;
  /** Continue from the last checkpoint (the network transport always resumes from its database). */
  resume?: boolean;
  progress?: Progress;
  /** The base model's evaluation when already known (same model and test set): skips recomputing it. */
  baseEval?: EvalResult;
  hooks?: DriverHooks;
  /** Simulated secure aggregation: these clients vanish after the share phase of every round (tests). */
  dropAfterShares?: readonly string[];
}

interface DriverState {
  publicIterator: BatchIteratorState;
  bytesDown: number;
  bytesUp: number;
  /** Absent in checkpoints written before it was counted. */
  bytesResent?: number;
  base: EvalResult;
  emulator: EvalResult | null;
  stepSeconds: number[];
  transport?: unknown;
  /** The aggregation step's state (clip norm, privacy accountant). */
  aggregator?: AggregatorState;
  /** The emulator-to-full gap so far (runs with an emulator). */
  drift?: DriftPoint[];
  /** The compressed streams' versions (their held states are the checkpoint's `stream-*` states). */
  compression?: { adapter: number; emulator: number | null; emulatorSource: number | null };
}

/** The compressed streams as a checkpoint holds them: versions in the record, held states as files. */
function streamsToCheckpoint(s: CompressedServerSnapshot): {
  versions: NonNullable<DriverState['compression']>;
  states: Record<string, LoraState>;
} {
  return {
    versions: {
      adapter: s.adapter.version,
      emulator: s.emulator?.version ?? null,
      emulatorSource: s.emulator?.source ?? null,
    },
    states: { 'stream-adapter': s.adapter.held, ...(s.emulator ? { 'stream-emulator': s.emulator.held } : {}) },
  };
}

/** The transport's arrays among a checkpoint's states carry this prefix. */
const TRANSPORT_PREFIX = 'transport-';

/** Prefixes the transport's array names ('to' a checkpoint) or picks and unprefixes them ('from' one). */
function transportArrays(states: Record<string, LoraState>, dir: 'to' | 'from'): Record<string, LoraState> {
  const out: Record<string, LoraState> = {};
  for (const [k, v] of Object.entries(states)) {
    if (dir === 'to') out[`${TRANSPORT_PREFIX}${k}`] = v;
    else if (k.startsWith(TRANSPORT_PREFIX)) out[k.slice(TRANSPORT_PREFIX.length)] = v;
  }
  return out;
}

function streamsFromCheckpoint(
  v: NonNullable<DriverState['compression']>,
  states: Record<string, LoraState>,
): CompressedServerSnapshot | null {
  const adapter = states['stream-adapter'];
  if (!adapter) return null;
  const emulator = states['stream-emulator'];
  return {
    adapter: { version: v.adapter, held: adapter },
    emulator:
      emulator && v.emulator !== null ? { version: v.emulator, held: emulator, source: v.emulatorSource ?? -1 } : null,
  };
}

/** Sorts client names the way people number them ("2" before "10"). */
export const byName = (a: string, b: string): number => a.localeCompare(b, 'en', { numeric: true });

/** The clients sampled for a round: all available, or a seeded draw of `clients.perRound`. */
export function sampleClients(cfg: RunConfig, round: number, available: readonly string[]): string[] {
  const all = [...available].sort(byName);
  const perRound = cfg.clients.perRound;
  if (perRound === undefined) return all;
  const k = perRound < 1 ? Math.max(1, Math.round(perRound * all.length)) : Math.min(all.length, Math.floor(perRound));
  return shuffle(mulberry32(deriveSeed(cfg.seed, `sample-${round}`)), all)
    .slice(0, k)
    .sort(byName);
}

export function buildEvalSpec(exp: ServerData, examples: readonly Example[]): EvalSpec {
  const tok = exp.tokenizer;
  const maxLen = exp.cfg.data.maxLength;
  const template = exp.cfg.data.template ? getTemplate(exp.cfg.data.template, exp.cfg.model.path) : undefined;
  const ex = examples.slice(0, exp.cfg.eval.maxExamples);
  const { items } = encodeExamples(ex, tok, { maxLength: maxLen, template });
  const padId = resolvePadId(tok);
  const nllBatches: TokenBatch[] = [];
  for (let i = 0; i < items.length; i += 8) nllBatches.push(toTokenBatch(collate(items.slice(i, i + 8), { padId })));
  const gen = exp.cfg.eval.generate;
  const stopIds = tok.eosId !== undefined ? [tok.eosId] : [];
  return {
    nllBatches,
    cases: gen
      ? ex.map((e) => ({
          promptIds: encodePrompt(e, tok, { template, maxLength: Math.max(8, maxLen - exp.cfg.eval.maxNewTokens) }),
        }))
      : [],
    maxNewTokens: exp.cfg.eval.maxNewTokens,
    stopIds,
    decode: (ids) => tok.decode(ids, { skipSpecial: true }),
    scorer: gen ? taskScorer(exp.task, ex) : null,
  };
}

/** The evaluation between rounds: NLL only, unless generation each round was asked for. */
export function roundEvalSpec(spec: EvalSpec, cfg: RunConfig): EvalSpec {
  return cfg.eval.generateEachRound ? spec : { ...spec, cases: [], scorer: null };
}

/** Encodes a set of examples for training or alignment; warnings go to the log, none left is an error. */
export function encodeForTraining(
  exp: ServerData,
  examples: readonly Example[],
  what: string,
  log: (l: string) => void,
) {
  const template = exp.cfg.data.template ? getTemplate(exp.cfg.data.template, exp.cfg.model.path) : undefined;
  const r = encodeExamples(examples, exp.tokenizer, { maxLength: exp.cfg.data.maxLength, template });
  for (const w of r.report.warnings) log(`${what}: ${w}`);
  if (r.items.length === 0) throw new Error(`${what}: no example left after encoding`);
  return r.items;
}

/** Runs (or resumes) one federated run to its end; null when the transport stopped it early. */
export async function runFederation(exp: ServerData, transport: Transport, o: RunOptions): Promise<Summary | null> {
  const cfg = exp.cfg;
  const progress = o.progress ?? silentProgress;
  const codec = o.hooks?.codec ?? f32Codec;
  const aggregate = o.hooks?.aggregate ?? fedAvgAggregator;
  const emit = (e: FederationEvent) => {
    try {
      o.hooks?.onEvent?.(e);
    } catch (err) {
      progress.log(`warning: a round-event listener failed on '${e.type}': ${(err as Error).message}`);
    }
  };
  const t0 = performance.now();
  fs.mkdirSync(o.outDir, { recursive: true });
  const metricsPath = path.join(o.outDir, 'metrics.jsonl');
  const ckptDir = path.join(o.outDir, 'checkpoints');
  writeAtomic(path.join(o.outDir, 'config.resolved.json'), JSON.stringify(cfg, null, 2));

  const pubItems = encodeForTraining(exp, exp.public, 'public data', progress.log.bind(progress));
  const publicIt = new BatchIterator(pubItems, {
    batchSize: cfg.algorithm.align.batchSize,
    padId: resolvePadId(exp.tokenizer),
    seed: deriveSeed(cfg.seed, 'public'),
  });
  const settings = settingsFromConfig(cfg);
  const method = methodAsRun(cfg, settings);
  progress.log(
    `${settings.name}: alignment ${method.align_loss}${method.align_objective ? ` (${method.align_objective}, on ${method.public_data})` : ''}, proximal ${method.proximal_rule}`,
  );
  const server = new ServerAlgorithm(exp.base, settings, () => toTokenBatch(publicIt.next()!), cfg.seed);
  const strategy = server.strategy;
  if (server.split)
    writeAtomic(
      path.join(o.outDir, 'split.json'),
      JSON.stringify(makeManifest(server.split.plan, server.split.placement, modelHash(exp.base)), null, 2),
    );
  const evalSpec = buildEvalSpec(exp, exp.test);
  // privacy / secureAggregation / aggregation settings (src/privacy): the round's aggregation step.
  const plan = aggregationPlan(cfg);
  const ctx: TransportContext = {
    cfg,
    exp,
    server,
    strategy,
    progress,
    codec,
    aggregator: new RoundAggregator(plan, cfg.seed),
  };

  // Where to start: the transport's record (network: its database), else the latest checkpoint.
  let state: DriverState;
  let startRound = 0;
  /** `local`: each client's own adapter. */
  let ownAdapters = new Map<string, LoraState>();
  const fromTransport = transport.resumePoint?.() ?? null;
  const ck =
    fromTransport !== null
      ? loadCheckpoint<DriverState>(ckptDir, fromTransport)
      : o.resume
        ? loadCheckpoint<DriverState>(ckptDir)
        : null;
  if (fromTransport !== null && !ck)
    throw new Error(`${ckptDir}: the checkpoint of round ${fromTransport} is missing; the state folder is damaged`);
  if (o.resume && !ck) progress.log('no checkpoint found: starting from the beginning');
  if (ck) {
    server.setAdapter(ck.adapter);
    if (ck.emulator) server.setEmulator(ck.emulator, ck.emulatorVersion);
    ownAdapters = ck.clients;
    state = ck.extra;
    publicIt.setState(state.publicIterator);
    if (state.transport !== undefined) transport.restore?.(state.transport, transportArrays(ck.states, 'from'));
    ctx.aggregator = new RoundAggregator(plan, cfg.seed, state.aggregator);
    startRound = ck.completedRounds;
    truncateMetrics(metricsPath, startRound);
    progress.log(`resuming: ${startRound} of ${cfg.rounds} rounds completed`);
  } else {
    if (fs.existsSync(metricsPath)) fs.rmSync(metricsPath);
    if (!o.baseEval) progress.log('evaluating the base model');
    const base = o.baseEval ?? (await evaluateModel(server.fullModel(), evalSpec));
    let preAlign = null;
    const steps = strategy.preAlignSteps(settings);
    if (steps > 0 && server.hasEmulator) {
      progress.start('pre-alignment', steps);
      preAlign = server.prepare((_, v) => progress.tick({ nmse: v.hidden.toFixed(4), kl: v.kl.toFixed(4) }));
      progress.stop();
    }
    const emulator = server.hasEmulator ? await evaluateModel(server.clientModel(), evalSpec) : null;
    state = {
      publicIterator: publicIt.getState(),
      bytesDown: 0,
      bytesUp: 0,
      bytesResent: 0,
      base,
      emulator,
      stepSeconds: [],
      transport: transport.snapshot?.(),
    };
    // Before tuning the adapter's LoRA is zero: AdapEmu is the emulator and AdapFu the base model.
    const d0 = server.hasEmulator ? driftPoint(-1, emulator, base) : null;
    if (d0) state.drift = [d0];
    const entry = {
      round: -1,
      algorithm: settings.name,
      phase: 'prepare',
      align_loss: preAlign,
      eval: { base, emulator },
    };
    appendMetrics(metricsPath, entry);
    const name = saveCheckpoint(ckptDir, {
      completedRounds: 0,
      emulatorVersion: server.currentEmulatorVersion,
      adapter: server.adapterState(),
      emulator: server.emulatorState(),
      clients: ownAdapters,
      extra: state,
    });
    transport.recorded?.(-1, entry, name);
    emit({ type: 'prepared', entry });
  }

  await transport.open(ctx);
  try {
    const shared = strategy.adapters === 'global';
    const compressing = cfg.compression.codec !== 'none' || cfg.compression.topk !== null;
    const compressed =
      compressing && shared
        ? new CompressedServer(cfg.compression, server.adapterState(), server.emulatorState())
        : null;
    // A resumed run goes on with the streams' versions: what clients hold stays valid.
    const saved = ck && state.compression ? streamsFromCheckpoint(state.compression, ck.states) : null;
    if (compressed && saved) compressed.restore(saved);
    for (let round = startRound; round < cfg.rounds; round++) {
      const rt0 = performance.now();
      const align = server.beginRound(round);
      // The round's global adapter, captured before any client trains: simulated clients train the
      // server's own adapter layers in place, so each must start again from this snapshot.
      const globalAdapter = server.adapterState();
      compressed?.beginRound(globalAdapter, server.emulatorState(), server.currentEmulatorVersion);
      let population = 0;
      const x: RoundExchange = {
        round,
        shared,
        compressed,
        start: globalAdapter,
        sample: (available) => {
          population = available.length;
          const s = sampleClients(cfg, round, available);
          emit({ type: 'round-open', round, sampled: s });
          return s;
        },
        sampleMore: (others, want, extension) =>
          shuffle(mulberry32(deriveSeed(cfg.seed, `sample-${round}-extension-${extension}`)), [...others].sort(byName))
            .slice(0, want)
            .sort(byName),
        payloadFor: (client, nonce, emulatorVersion) => {
          const p = server.payload(round, emulatorVersion);
          // `local`: each client continues from its own adapter; the server's is never shared.
          const adapter = shared ? globalAdapter : (ownAdapters.get(client) ?? server.initialAdapterState());
          return {
            body: encodePayload(
              { round, nonce, adapter, emulator: p.emulator, emulatorVersion: p.emulatorVersion },
              codec,
            ),
            emulatorVersion: p.emulatorVersion,
          };
        },
        check: (body, meta) =>
          compressed
            ? checkCompressedUpload(body, meta, (b) => compressed.readUpdate(b, `round ${round + 1} update`), {
                normBound: cfg.server?.normBound,
              })
            : checkUpload(body, globalAdapter, { normBound: cfg.server?.normBound }),
        emit,
      };
      const out = await transport.exchange(x);
      if (!out) {
        progress.log(`stopped during round ${round + 1}; rerun with --resume to continue from round ${round + 1}`);
        return null;
      }
      let privacy: PrivacyRecord | null = null;
      let secure: AggregateResult['secure'] | null = null;
      if (shared && out.secure) {
        const r = ctx.aggregator.aggregateSum(
          { round, start: globalAdapter, population },
          out.secure.sum,
          out.secure.divisor,
          out.secure.survivors.length,
        );
        server.setAdapter(r.adapter);
        privacy = r.privacy;
        secure = {
          survivors: out.secure.survivors.length,
          dropped: out.secure.dropped,
          bytes_up: out.secure.bytesUp,
          bytes_down: out.secure.bytesDown,
          seconds: out.secure.seconds,
        };
        state.aggregator = ctx.aggregator.state();
      } else if (shared) {
        if (out.updates.length > 0 && o.hooks?.aggregate)
          server.setAdapter(aggregate(weigh(cfg, out.updates, progress, round), { round, reference: globalAdapter }));
        else if (out.updates.length > 0) {
          const weighted = weigh(cfg, out.updates, progress, round).map((u) => ({
            client: u.client,
            samples: u.weight,
            state: u.state,
          }));
          const r = await ctx.aggregator.aggregateRound(
            { round, start: globalAdapter, population },
            weighted,
            o.dropAfterShares,
          );
          server.setAdapter(r.adapter);
          privacy = r.privacy;
          secure = r.secure ?? null;
        }
        state.aggregator = ctx.aggregator.state();
      } else {
        for (const u of out.updates) ownAdapters.set(u.client, cloneState(u.state));
        server.setAdapter(globalAdapter);
      }
      // Clients that keep their own adapter talk to no server after joining: no round traffic.
      const traffic = shared
        ? out.traffic
        : Object.fromEntries(Object.keys(out.traffic).map((c) => [c, { down: 0, up: 0 }]));
      const down = Object.values(traffic).reduce((a, t) => a + t.down, 0);
      const up = Object.values(traffic).reduce((a, t) => a + t.up, 0);
      state.bytesDown += down;
      state.bytesUp += up;
      const resent = shared ? (out.resent ?? 0) : 0;
      state.bytesResent = (state.bytesResent ?? 0) + resent;
      // Who contributed and how training went: the updates, or under secure aggregation the survivors' reports.
      const reports = out.secure?.reports ?? out.updates;
      for (const u of reports) if (u.stepSeconds !== null) state.stepSeconds.push(u.stepSeconds);
      const order = reports.map((u) => u.client);
      const trainLoss = Object.fromEntries(reports.map((u) => [u.client, u.meanLoss]));
      const entry: Record<string, unknown> = {
        round,
        algorithm: settings.name,
        clients: order,
        sampled: out.sampled,
        missing: out.sampled.filter((s) => !order.includes(s)),
        train_loss: trainLoss,
        samples: Object.fromEntries(reports.map((u) => [u.client, u.reported])),
        align_loss: align ? { nmse: align.hidden, kl: align.kl, ce: align.ce, total: align.loss } : null,
        bytes_down: down,
        bytes_up: up,
        bytes_per_client: traffic,
        bytes_resent: resent,
        seconds: (performance.now() - rt0) / 1000,
        ...(plan.rule !== 'fedavg' || plan.clipNorm !== null ? { aggregation: cfg.aggregation } : {}),
        ...(privacy ? { privacy } : {}),
        ...(secure ? { secure_aggregation: secure } : {}),
        ...out.extra,
        ...(shared && reports.length === 0 ? { skipped: true } : {}),
      };
      if (round !== cfg.rounds - 1 && cfg.eval.every > 0 && (round + 1) % cfg.eval.every === 0) {
        entry.eval = await evalViews(server, roundEvalSpec(evalSpec, cfg), shared ? null : ownAdapters);
      } else if (round !== cfg.rounds - 1 && cfg.eval.drift && server.hasEmulator) {
        // The drift measure every round: NLL of both views only (no generation).
        entry.eval = await evalViews(server, { ...evalSpec, cases: [], scorer: null }, shared ? null : ownAdapters);
      }
      const views = entry.eval as { adapemu: EvalResult; adapfu: EvalResult } | undefined;
      const d = server.hasEmulator && views ? driftPoint(round, views.adapemu, views.adapfu) : null;
      if (d) {
        entry.drift = d;
        (state.drift ??= []).push(d);
      }
      appendMetrics(metricsPath, entry);
      const losses = Object.values(trainLoss);
      const meanLoss = losses.reduce((a, b) => a + b, 0) / Math.max(1, losses.length);
      const epsText = privacy ? `, epsilon ${privacy.epsilon === null ? 'infinite' : privacy.epsilon.toFixed(3)}` : '';
      progress.log(
        `round ${round + 1}/${cfg.rounds} ${shared && reports.length === 0 ? 'skipped (no upload)' : 'complete'}: ${order.length}/${out.sampled.length} clients, train loss ${meanLoss.toFixed(4)}${align ? `, align nmse ${align.hidden.toFixed(4)} kl ${align.kl.toFixed(4)}` : ''}, down ${fmtBytes(down)}, up ${fmtBytes(up)}${epsText}`,
      );
      state.publicIterator = publicIt.getState();
      state.transport = transport.snapshot?.();
      const streams = compressed ? streamsToCheckpoint(compressed.snapshot()) : null;
      if (streams) state.compression = streams.versions;
      const name = saveCheckpoint(ckptDir, {
        completedRounds: round + 1,
        emulatorVersion: server.currentEmulatorVersion,
        adapter: server.adapterState(),
        emulator: server.emulatorState(),
        clients: ownAdapters,
        states: { ...streams?.states, ...transportArrays(transport.snapshotArrays?.() ?? {}, 'to') },
        extra: state,
      });
      transport.recorded?.(round, entry, name);
      emit({ type: 'round-end', round, entry });
    }

    progress.log('final evaluation (AdapEmu and AdapFu)');
    const final = await evalViews(server, evalSpec, shared ? null : ownAdapters);
    const lastDrift = server.hasEmulator ? driftPoint(cfg.rounds - 1, final.adapemu, final.adapfu) : null;
    const drift = [...(state.drift ?? []).filter((p) => p.round < cfg.rounds - 1), ...(lastDrift ? [lastDrift] : [])];
    appendMetrics(metricsPath, {
      round: cfg.rounds - 1,
      algorithm: settings.name,
      phase: 'final',
      eval: final,
      ...(lastDrift ? { drift: lastDrift } : {}),
    });
    const product = shared ? server.adapterState() : (ownAdapters.values().next().value ?? server.adapterState());
    saveAdapterAsPeft(product, path.join(o.outDir, 'adapter'), {
      r: settings.adapterLora.r,
      alpha: settings.adapterLora.alpha,
      dropout: settings.adapterLora.dropout,
      baseModel: exp.modelSource,
    });
    const modelP = modelParams(server.clientModel());
    const trainable = server
      .adapterLayerList()
      .flatMap((l) => l.loraParams())
      .reduce((a, t) => a + t.size, 0);
    const summary: Summary = {
      algorithm: settings.name,
      transport: transport.kind,
      rounds: cfg.rounds,
      base: state.base,
      emulator: state.emulator,
      adapemu: final.adapemu,
      adapfu: final.adapfu,
      bytes_total: state.bytesDown + state.bytesUp,
      bytes_down_total: state.bytesDown,
      bytes_up_total: state.bytesUp,
      bytes_join_per_client: transport.joinBytes(ctx),
      bytes_resent_total: (state.bytesResent ?? 0) + (transport.resentJoinBytes?.() ?? 0),
      method,
      client: {
        model_params: modelP,
        trainable_params: trainable,
        mean_step_seconds: state.stepSeconds.reduce((a, b) => a + b, 0) / Math.max(1, state.stepSeconds.length),
        peak_memory_mb: transport.peakActivationBytes
          ? clientMemoryMb(
              heldBytes(server.clientModel()),
              trainable,
              settings.local.optimizer,
              transport.peakActivationBytes(),
            )
          : null,
      },
      seconds: (performance.now() - t0) / 1000,
    };
    if (drift.length > 0) summary.drift = drift;
    if (plan.privacy) {
      const eps = ctx.aggregator.epsilon();
      summary.privacy = { epsilon: eps !== null && Number.isFinite(eps) ? eps : null, delta: plan.privacy.delta };
    }
    writeAtomic(path.join(o.outDir, 'summary.json'), JSON.stringify(summary, null, 2));
    emit({ type: 'finished', summary });
    await transport.finish?.();
    return summary;
  } finally {
    await transport.close();
    clearTensorPool(); // the next run (the demo runs several) has shapes of its own
  }
}

/**
 * The FedAvg weights of a round. 'equal' weighs every update alike. 'samples' uses the size each
 * client is known to hold: the transport's trusted count, with the reported one capped at it; a
 * round in which any client has no trusted count falls back to equal weights (a reported count
 * alone is never trusted). Secure aggregation over the network fixes these weights in its roster,
 * before any update exists.
 */
export function fedAvgWeights(
  cfg: RunConfig,
  clients: readonly { client: string; reported: number; trusted: number | null }[],
  log: (line: string) => void,
  round: number,
): number[] {
  if (cfg.algorithm.weighting === 'equal') return clients.map(() => 1);
  const unknown = clients.filter((u) => u.trusted === null).map((u) => u.client);
  if (unknown.length > 0) {
    log(
      `round ${round + 1}: no registered data size for client(s) ${unknown.join(',')}: weighing this round's updates equally`,
    );
    return clients.map(() => 1);
  }
  return clients.map((u) => Math.min(u.reported, u.trusted!));
}

function weigh(
  cfg: RunConfig,
  updates: readonly ReceivedUpdate[],
  progress: Progress,
  round: number,
): WeightedUpdate[] {
  const w = fedAvgWeights(cfg, updates, progress.log.bind(progress), round);
  return updates.map((u, i) => ({ client: u.client, weight: w[i]!, state: u.state }));
}

/**
 * A client's peak memory in training: its weights as held (f32, or a stored format: f16, Q8_0 /
 * Q4_0 for a quantized emulator), the trainable LoRA's gradient and optimiser state (f32), and the
 * working memory (activations kept for backward, scratch) measured on the engine's buffer pool
 * during local training. The JavaScript runtime itself is not counted.
 */
function clientMemoryMb(
  weightBytes: number,
  trainable: number,
  opt: AlgorithmSettings['local']['optimizer'],
  activationBytes: number,
): number {
  const slots = opt.kind === 'adamw' ? 2 : (opt.momentum ?? 0) > 0 ? 1 : 0;
  return (weightBytes + trainable * (1 + slots) * 4 + activationBytes) / 1024 ** 2;
}

/** Distinct parameters (by storage) of a model: what a client must hold. */
function modelParams(m: LlamaModel): number {
  const seen = new Set<Float32Array>();
  let n = 0;
  const add = (d: Float32Array) => {
    if (!seen.has(d)) {
      seen.add(d);
      n += d.length;
    }
  };
  // embedding and head may be kept in a stored format (no f32 array); a tied head is counted once
  for (const w of new Set([m.embedTokens, m.lmHead])) n += w.shape[0]! * w.shape[1]!;
  add(m.finalNorm.data);
  for (const l of m.layers) {
    for (const t of l.baseTensors().values()) add(t.data);
    for (const t of l.loraParams()) add(t.data);
  }
  return n;
}

/** AdapEmu and AdapFu; with clients' own adapters (local), the mean over clients of each one's views. */
async function evalViews(
  server: ServerAlgorithm,
  spec: EvalSpec,
  own: Map<string, LoraState> | null,
): Promise<{ adapemu: EvalResult; adapfu: EvalResult }> {
  const run = async () => {
    const adapfu = await evaluateModel(server.fullModel(), spec);
    // Without an emulator (fedavg-full) the clients hold the full model: both views are one model.
    return { adapemu: server.hasEmulator ? await evaluateModel(server.clientModel(), spec) : adapfu, adapfu };
  };
  if (!own || own.size === 0) return run();
  const saved = server.adapterState();
  const acc: { adapemu: EvalResult; adapfu: EvalResult } = { adapemu: {}, adapfu: {} };
  for (const s of own.values()) {
    server.setAdapter(s);
    const r = await run();
    for (const view of ['adapemu', 'adapfu'] as const)
      for (const [k, v] of Object.entries(r[view])) acc[view][k] = (acc[view][k] ?? 0) + v / own.size;
  }
  server.setAdapter(saved);
  return acc;
}

function appendMetrics(file: string, entry: Record<string, unknown>): void {
  fs.appendFileSync(file, JSON.stringify(entry) + '\n');
}

/** On resume: keeps the preparation line and the entries of completed rounds (a crash may have left more). */
function truncateMetrics(file: string, completedRounds: number): void {
  if (!fs.existsSync(file)) return;
  const keep = fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .filter((l) => {
      const e = JSON.parse(l) as { round?: number; phase?: string };
      return (
        e.phase === 'prepare' || (e.phase === undefined && typeof e.round === 'number' && e.round < completedRounds)
      );
    });
  writeAtomic(file, keep.map((l) => `${l}\n`).join(''));
}

/** Bytes of the model files a client downloads to join, measured by writing them to a temporary folder. */
export function measuredJoinBytes(ctx: TransportContext): number {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fedbiot-join-'));
  try {
    return clientDownloadBytes(ctx.server, path.join(dir, 'model'), ctx.exp.cfg.model.path);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
