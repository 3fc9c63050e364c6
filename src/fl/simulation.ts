// Simulation: the server and N clients in one process, driven round by round. The algorithm code
// is the same as in deployment (ServerAlgorithm / ClientAlgorithm); here the "transport" is a
// function call, and the bytes that would cross the wire are counted.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RunConfig } from '../config/schema.js';
import { ServerAlgorithm, simulatedClient, type AlgorithmSettings, type RoundPayload } from '../fedbiot/algorithms.js';
import { defaultProximal, describeAlignLoss, resolveAlignment } from '../fedbiot/objectives.js';
import { stateBytes, cloneState, type LoraState } from '../fedbiot/lora-state.js';
import { evaluateModel, type EvalSpec } from '../fedbiot/evaluate.js';
import type { ClientUpdate } from '../fedbiot/aggregate.js';
import type { TokenBatch } from '../nn/lm.js';
import type { LlamaModel } from '../nn/llama.js';
import { encodeExamples, encodePrompt } from '../data/encode.js';
import { BatchIterator, collate, resolvePadId, type Batch, type BatchIteratorState } from '../data/batch.js';
import { getTemplate } from '../data/templates.js';
import type { Example } from '../data/types.js';
import { deriveSeed, mulberry32, shuffle } from '../util/rng.js';
import { saveCheckpoint, loadCheckpoint, writeAtomic } from './checkpoint.js';
import { taskScorer, type Experiment } from './experiment.js';
import { saveAdapterAsPeft } from '../models/hf-model.js';
import { fmtBytes } from '../util/format.js';
import { modelHash } from '../models/hash.js';
import { makeManifest } from '../fedbiot/split.js';
import { clearTensorPool, liveTensorBytes, peakTensorBytes, resetPeakTensorBytes } from '../tensor/engine.js';

export interface Progress {
  start(label: string, total: number): void;
  tick(info?: Record<string, string | number>): void;
  stop(): void;
  log(line: string): void;
}

export const silentProgress: Progress = { start() {}, tick() {}, stop() {}, log() {} };

export function toTokenBatch(b: Batch): TokenBatch {
  return { B: b.batchSize, T: b.seqLen, ids: b.inputIds, labels: b.labels, attention: b.attentionMask };
}

/**
 * A client's seeds. The networked server sends clientDataSeed to each client at join, and the
 * client derives its dropout seeds from it, so a simulated client and a networked one with the
 * same name draw the same batches and masks.
 */
export function clientDataSeed(runSeed: number, client: string): number {
  return deriveSeed(runSeed, `client-${client}`);
}

export function clientDropoutSeed(dataSeed: number, round: number): number {
  return deriveSeed(dataSeed, `dropout-${round}`);
}

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
    preAlignSteps: a.name === 'fedavg-full' ? 0 : a.preAlignSteps,
    alignStepsPerRound: a.name === 'fedbiot' ? a.alignStepsPerRound : 0,
    layerDrop: a.layerDrop,
    alignObjective: alignment.objective,
    align: { hiddenLoss: a.align.hiddenLoss, layerwiseReduction: a.align.layerwiseReduction, ...alignment.loss, optimizer: a.align.optimizer, maxGradNorm: a.align.maxGradNorm },
    local: { steps: a.local.steps, optimizer: a.local.optimizer, gradAccum: a.local.gradAccum, proximal: a.local.proximal ?? defaultProximal(a.name), maxGradNorm: a.local.maxGradNorm },
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
  proximal: number;
  layer_drop: string;
}

export function methodAsRun(cfg: RunConfig, s: AlgorithmSettings): MethodAsRun {
  const aligns = s.name !== 'fedavg-full' && s.preAlignSteps + s.alignStepsPerRound > 0;
  return {
    align_objective: aligns ? s.alignObjective ?? null : null,
    align_loss: aligns ? describeAlignLoss(s.align.hiddenLoss, { hiddenWeight: s.align.hiddenWeight ?? 1, lambda: s.align.lambda, mu: s.align.mu }, s.align.layerwiseReduction) : 'none',
    public_data: aligns ? resolveAlignment(s.name, cfg.algorithm.align, cfg.data.public.source).publicSource : '-',
    proximal: s.local.proximal,
    layer_drop: s.name === 'fedavg-full' ? '-' : s.layerDrop ?? 'reference',
  };
}

export interface EvalResult {
  [metric: string]: number;
}

export interface Summary {
  algorithm: string;
  rounds: number;
  base: EvalResult;
  emulator: EvalResult | null;
  adapemu: EvalResult;
  adapfu: EvalResult;
  bytes_total: number;
  bytes_down_total: number;
  bytes_up_total: number;
  bytes_join_per_client: number;
  client: { model_params: number; trainable_params: number; mean_step_seconds: number; peak_memory_mb: number };
  method: MethodAsRun;
  seconds: number;
}

interface RunExtra {
  iterators: Record<string, BatchIteratorState>;
  publicIterator: BatchIteratorState;
  clientEmulatorVersion: Record<string, number>;
  bytesDown: number;
  bytesUp: number;
  base: EvalResult;
  emulator: EvalResult | null;
  stepSeconds: number[];
  /** The largest working memory (pooled tensors) measured during one client's local training. */
  peakActivationBytes?: number;
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

export function buildEvalSpec(exp: Experiment, examples: readonly Example[]): EvalSpec {
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
    cases: gen ? ex.map((e) => ({ promptIds: encodePrompt(e, tok, { template, maxLength: Math.max(8, maxLen - exp.cfg.eval.maxNewTokens) }) })) : [],
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

export interface SimulationOptions {
  outDir: string;
  resume?: boolean;
  progress?: Progress;
  /** Checked between clients: when it returns true the run stops after saving nothing partial. */
  shouldStop?: () => boolean;
  /** The base model's evaluation when already known (same model and test set): skips recomputing it. */
  baseEval?: EvalResult;
}

export async function runSimulation(exp: Experiment, o: SimulationOptions): Promise<Summary | null> {
  const cfg = exp.cfg;
  const progress = o.progress ?? silentProgress;
  const t0 = performance.now();
  fs.mkdirSync(o.outDir, { recursive: true });
  const metricsPath = path.join(o.outDir, 'metrics.jsonl');
  const ckptDir = path.join(o.outDir, 'checkpoints');
  writeAtomic(path.join(o.outDir, 'config.resolved.json'), JSON.stringify(cfg, null, 2));

  const tok = exp.tokenizer;
  const padId = resolvePadId(tok);
  const template = cfg.data.template ? getTemplate(cfg.data.template, cfg.model.path) : undefined;
  const encode = (ex: readonly Example[], what: string) => {
    const r = encodeExamples(ex, tok, { maxLength: cfg.data.maxLength, template });
    for (const w of r.report.warnings) progress.log(`${what}: ${w}`);
    if (r.items.length === 0) throw new Error(`${what}: no example left after encoding`);
    return r.items;
  };
  const pubItems = encode(exp.public, 'public data');
  const publicIt = new BatchIterator(pubItems, { batchSize: cfg.algorithm.align.batchSize, padId, seed: deriveSeed(cfg.seed, 'public') });
  const clientNames = exp.clients.map((_, i) => String(i));
  const clientIts = new Map<string, BatchIterator>();
  const clientSizes = new Map<string, number>();
  exp.clients.forEach((idx, i) => {
    if (idx.length === 0) return;
    const items = encode(idx.map((j) => exp.train[j]!), `client ${i}`);
    clientIts.set(String(i), new BatchIterator(items, { batchSize: cfg.algorithm.local.batchSize, padId, seed: clientDataSeed(cfg.seed, String(i)) }));
    clientSizes.set(String(i), items.length);
  });

  const settings = settingsFromConfig(cfg);
  const baseHash = modelHash(exp.base);
  const server = new ServerAlgorithm(exp.base, settings, () => toTokenBatch(publicIt.next()!), cfg.seed);
  if (server.split) writeAtomic(path.join(o.outDir, 'split.json'), JSON.stringify(makeManifest(server.split.plan, server.split.placement, baseHash), null, 2));
  const client = simulatedClient(server);
  const evalSpec = buildEvalSpec(exp, exp.test);
  const isLocal = settings.name === 'local';
  const method = methodAsRun(cfg, settings);
  progress.log(`${settings.name}: alignment ${method.align_loss}${method.align_objective ? ` (${method.align_objective}, on ${method.public_data})` : ''}, proximal ${method.proximal}`);

  let extra: RunExtra;
  let startRound = 0;
  let clientStates = new Map<string, LoraState>();
  const ck = o.resume ? loadCheckpoint<RunExtra>(ckptDir) : null;
  if (o.resume && !ck) progress.log('no checkpoint found: starting from the beginning');
  if (ck) {
    server.setAdapter(ck.adapter);
    if (ck.emulator) server.setEmulator(ck.emulator, ck.emulatorVersion);
    clientStates = ck.clients;
    extra = ck.extra;
    publicIt.setState(extra.publicIterator);
    for (const [k, s] of Object.entries(extra.iterators)) clientIts.get(k)?.setState(s);
    startRound = ck.completedRounds;
    progress.log(`resuming after round ${startRound}`);
  } else {
    if (fs.existsSync(metricsPath)) fs.rmSync(metricsPath);
    const evaluate = (m: LlamaModel) => evaluateModel(m, evalSpec);
    if (!o.baseEval) progress.log('evaluating the base model');
    const base = o.baseEval ?? (await evaluate(server.fullModel()));
    let preAlign = null;
    if (settings.preAlignSteps > 0 && server.hasEmulator) {
      progress.start('pre-alignment', settings.preAlignSteps);
      preAlign = server.prepare((_, v) => progress.tick({ nmse: v.hidden.toFixed(4), kl: v.kl.toFixed(4) }));
      progress.stop();
    }
    const emulator = server.hasEmulator ? await evaluate(server.clientModel()) : null;
    extra = { iterators: {}, publicIterator: publicIt.getState(), clientEmulatorVersion: {}, bytesDown: 0, bytesUp: 0, base, emulator, stepSeconds: [] };
    appendMetrics(metricsPath, { round: -1, algorithm: settings.name, phase: 'prepare', align_loss: preAlign, eval: { base, emulator } });
  }

  const perRound = cfg.clients.perRound;
  for (let round = startRound; round < cfg.rounds; round++) {
    const rt0 = performance.now();
    const align = server.beginRound(round);
    // Client sampling, seeded per round.
    const available = clientNames.filter((c) => clientIts.has(c));
    let sampled = available;
    if (perRound !== undefined) {
      const k = perRound < 1 ? Math.max(1, Math.round(perRound * available.length)) : Math.min(available.length, Math.floor(perRound));
      sampled = shuffle(mulberry32(deriveSeed(cfg.seed, `sample-${round}`)), [...available]).slice(0, k).sort((a, b) => Number(a) - Number(b));
    }
    const updates: ClientUpdate[] = [];
    const trainLoss: Record<string, number> = {};
    let bytesDown = 0;
    let bytesUp = 0;
    progress.start(`round ${round + 1}/${cfg.rounds}`, sampled.length * settings.local.steps);
    // The round's global adapter, captured before any client trains: simulated clients train the
    // server's own adapter layers in place, so each must start again from this snapshot.
    const globalAdapter = server.adapterState();
    for (const name of sampled) {
      if (o.shouldStop?.()) {
        progress.stop();
        progress.log(`stopped during round ${round + 1}; rerun with --resume to continue from round ${round + 1}`);
        return null;
      }
      const payload: RoundPayload = { ...server.payload(round, extra.clientEmulatorVersion[name] ?? 0), adapter: globalAdapter };
      // In `local`, each client continues from its own adapter; the server's is never shared.
      if (isLocal) payload.adapter = clientStates.get(name) ?? server.initialAdapterState();
      // `local` clients never talk to a server after joining: nothing travels in their rounds.
      if (!isLocal) bytesDown += stateBytes(payload.adapter) + (payload.emulator ? stateBytes(payload.emulator) : 0);
      client.apply(payload);
      extra.clientEmulatorVersion[name] = payload.emulatorVersion;
      const it = clientIts.get(name)!;
      const live0 = liveTensorBytes();
      resetPeakTensorBytes();
      const dropoutSeed = clientDropoutSeed(clientDataSeed(cfg.seed, name), round);
      const res = client.train(() => toTokenBatch(it.next()!), (_, loss) => progress.tick({ client: name, loss: loss.toFixed(4) }), dropoutSeed);
      extra.stepSeconds.push(res.seconds / Math.max(1, settings.local.steps));
      extra.peakActivationBytes = Math.max(extra.peakActivationBytes ?? 0, peakTensorBytes() - live0);
      trainLoss[name] = res.meanLoss;
      if (!isLocal) bytesUp += stateBytes(res.state);
      updates.push({ client: name, samples: clientSizes.get(name)!, state: res.state });
      if (isLocal) clientStates.set(name, cloneState(res.state));
    }
    progress.stop();
    if (!isLocal) server.aggregate(updates);
    extra.bytesDown += bytesDown;
    extra.bytesUp += bytesUp;
    const entry: Record<string, unknown> = {
      round, algorithm: settings.name, clients: sampled, train_loss: trainLoss,
      align_loss: align ? { nmse: align.hidden, kl: align.kl, ce: align.ce, total: align.loss } : null,
      bytes_down: bytesDown, bytes_up: bytesUp, seconds: (performance.now() - rt0) / 1000,
    };
    const last = round === cfg.rounds - 1;
    if (!last && cfg.eval.every > 0 && (round + 1) % cfg.eval.every === 0) {
      entry.eval = await evalViews(server, roundEvalSpec(evalSpec, cfg), isLocal, clientStates);
    }
    appendMetrics(metricsPath, entry);
    const meanLoss = Object.values(trainLoss).reduce((a, b) => a + b, 0) / Math.max(1, sampled.length);
    progress.log(`round ${round + 1}/${cfg.rounds}: train loss ${meanLoss.toFixed(4)}${align ? `, align nmse ${align.hidden.toFixed(4)} kl ${align.kl.toFixed(4)}` : ''}, down ${fmtBytes(bytesDown)}, up ${fmtBytes(bytesUp)}`);
    for (const [k, it] of clientIts) extra.iterators[k] = it.getState();
    extra.publicIterator = publicIt.getState();
    saveCheckpoint(ckptDir, { completedRounds: round + 1, emulatorVersion: server.currentEmulatorVersion, adapter: server.adapterState(), emulator: server.emulatorState(), clients: clientStates, extra });
  }

  progress.log('final evaluation (AdapEmu and AdapFu)');
  const final = await evalViews(server, evalSpec, isLocal, clientStates);
  appendMetrics(metricsPath, { round: cfg.rounds - 1, algorithm: settings.name, phase: 'final', eval: final });
  const adapterDir = path.join(o.outDir, 'adapter');
  saveAdapterAsPeft(isLocal ? clientStates.values().next().value ?? server.adapterState() : server.adapterState(), adapterDir, {
    r: settings.adapterLora.r, alpha: settings.adapterLora.alpha, dropout: settings.adapterLora.dropout, baseModel: exp.modelSource,
  });
  const clientModel = server.clientModel();
  const modelP = modelParams(clientModel);
  const trainable = server.adapterLayerList().flatMap((l) => l.loraParams()).reduce((a, t) => a + t.size, 0);
  const joinBytes = modelP * 4;
  const summary: Summary = {
    algorithm: settings.name,
    rounds: cfg.rounds,
    base: extra.base,
    emulator: extra.emulator,
    adapemu: final.adapemu,
    adapfu: final.adapfu,
    bytes_total: extra.bytesDown + extra.bytesUp,
    bytes_down_total: extra.bytesDown,
    bytes_up_total: extra.bytesUp,
    bytes_join_per_client: joinBytes,
    client: {
      model_params: modelP,
      trainable_params: trainable,
      mean_step_seconds: extra.stepSeconds.reduce((a, b) => a + b, 0) / Math.max(1, extra.stepSeconds.length),
      peak_memory_mb: clientMemoryMb(modelP, trainable, settings, extra.peakActivationBytes ?? 0),
    },
    method,
    seconds: (performance.now() - t0) / 1000,
  };
  writeAtomic(path.join(o.outDir, 'summary.json'), JSON.stringify(summary, null, 2));
  clearTensorPool(); // the next run (the demo runs several) has shapes of its own
  return summary;
}

/**
 * A client's peak memory in training: its weights, the trainable LoRA with its gradient and
 * optimiser state, and the working memory (activations kept for backward, scratch) measured on the
 * engine's buffer pool during local training. All f32; the JavaScript runtime itself is not counted.
 */
function clientMemoryMb(params: number, trainable: number, settings: AlgorithmSettings, activationBytes: number): number {
  const opt = settings.local.optimizer;
  const slots = opt.kind === 'adamw' ? 2 : (opt.momentum ?? 0) > 0 ? 1 : 0;
  return ((params + trainable * (1 + slots)) * 4 + activationBytes) / 1024 ** 2;
}

async function evalViews(server: ServerAlgorithm, spec: EvalSpec, isLocal: boolean, clientStates: Map<string, LoraState>): Promise<{ adapemu: EvalResult; adapfu: EvalResult }> {
  const saved = server.adapterState();
  const run = async () => {
    const adapfu = await evaluateModel(server.fullModel(), spec);
    // Without an emulator (fedavg-full) the clients hold the full model: both views are one model.
    return { adapemu: server.hasEmulator ? await evaluateModel(server.clientModel(), spec) : adapfu, adapfu };
  };
  if (!isLocal || clientStates.size === 0) return run();
  // local: the mean over clients of each client's own adapter.
  const acc: { adapemu: EvalResult; adapfu: EvalResult } = { adapemu: {}, adapfu: {} };
  for (const s of clientStates.values()) {
    server.setAdapter(s);
    const r = await run();
    for (const view of ['adapemu', 'adapfu'] as const) for (const [k, v] of Object.entries(r[view])) acc[view][k] = (acc[view][k] ?? 0) + v / clientStates.size;
  }
  server.setAdapter(saved);
  return acc;
}

function appendMetrics(file: string, entry: Record<string, unknown>): void {
  fs.appendFileSync(file, JSON.stringify(entry) + '\n');
}
