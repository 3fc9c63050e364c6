// `fedbiot client`: joins a server, downloads (and caches) the compressed model, then loops: wait
// for a round it is sampled for, receive the adapter LoRA (and the emulator LoRA when newer), train
// locally on its own data with ClientAlgorithm, upload its adapter LoRA with n_i and metrics.
// Network errors are retried with backoff; refusals are logged with the server's reason.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ClientAlgorithm } from '../../fedbiot/algorithms.js';
import type { FormatOption } from '../../data/loaders.js';
import { loadClientData, prepareClientData } from '../../data/client-data.js';
import type { BatchIteratorState } from '../../data/batch.js';
import { getTemplate } from '../../data/templates.js';
import { toTokenBatch } from '../../data/batch.js';
import { writeAtomic } from '../../io/byte-source.js';
import { clientDropoutSeed, compressedUploadSeed } from '../seeds.js';
import { clientNoiseStream, transformUpload } from '../../privacy/aggregator.js';
import { Prg } from '../../util/prg.js';
import { decodePayload, encodeUpdate } from '../payload.js';
import { CompressedClient, checkLayouts } from '../compression.js';
import { layoutOf, localOffer } from '../../codec/index.js';
import { captureLora, cloneState, type LoraState } from '../../fedbiot/lora-state.js';
import { loadClientModel } from './artifact.js';
import { secureClientRound } from './secagg.js';
import {
  DEFAULT_CHUNK_BYTES,
  downloadArtifact,
  modelCacheDir,
  type DownloadOptions,
  type DownloadReport,
} from './download.js';
import { silentProgress, type Progress } from '../../util/progress.js';
import {
  certificateProblem,
  FatalNetError,
  HttpError,
  makeTransport,
  request,
  replyReason,
  sleep,
  type ClientTransport,
} from './http.js';
import {
  joinInfoSchema,
  METRICS_HEADER,
  roundStatusSchema,
  UPDATE_HEADER,
  type JoinInfo,
  type JoinRequest,
  type RoundStatus,
  type UpdateMeta,
  type UploadMetrics,
} from './protocol.js';

export interface ClientOptions {
  server: string;
  token: string;
  /** The client's own training data (JSONL/JSON records) and their form. */
  data: string;
  format?: FormatOption;
  cache: string;
  ca?: string;
  /** Give up when the server has been unreachable this long (default 600 s). */
  patienceSeconds?: number;
  download?: DownloadOptions;
  /**
   * Keys the local-DP noise from this seed (as the simulation does with the run seed) instead of a
   * fresh random key: reproducible experiments. The noise protects only while the seed is secret.
   */
  noiseSeed?: number;
  /** Waits this long before each local training (simulates a slow device; tests). */
  trainDelayMs?: number;
  log?: (line: string) => void;
  /** Bars for the model download and each round's local training (a terminal's, or plain lines). */
  progress?: Progress;
}

export class RefusedError extends Error {
  constructor(
    public readonly status: number,
    public readonly code: string,
    reason: string,
  ) {
    super(reason);
  }
}

/**
 * The client's progress, written atomically after each round's training and before its upload: the
 * data position and the trained update go to disk together, so a client killed before (or while)
 * uploading sends that update when it comes back instead of training the round again on batches
 * it already used.
 */
interface ClientStateFile {
  artifact: string;
  client: string;
  lastRound: number;
  iterator: BatchIteratorState | null;
  /** The update of lastRound not yet confirmed by the server: its body file (in the cache) and metrics. */
  pending?: { round: number; file: string; metrics: UploadMetrics; meta?: UpdateMeta } | null;
  /** With compression: the file (in the cache) of what this client holds and its error feedback after lastRound. */
  codec?: string | null;
}

/** Retries `f` on network errors (not on HTTP refusals) until `patience` ms without success. */
async function retrying<T>(
  what: string,
  patienceMs: number,
  log: (l: string) => void,
  f: () => Promise<T>,
  fatal?: (e: unknown) => string | null,
): Promise<T> {
  const t0 = Date.now();
  let wait = 200;
  let warned = false;
  for (;;) {
    try {
      return await f();
    } catch (e) {
      if (e instanceof RefusedError) throw e;
      const why = fatal?.(e);
      if (why) throw new FatalNetError(`${what}: ${why}`);
      if (Date.now() - t0 > patienceMs)
        throw new Error(`${what}: server unreachable for ${Math.round(patienceMs / 1000)} s: ${(e as Error).message}`);
      if (!warned) log(`${what}: ${(e as Error).message}; retrying`);
      warned = true;
      await sleep(wait);
      wait = Math.min(wait * 2, 5000);
    }
  }
}

export async function joinServer(t: ClientTransport): Promise<JoinInfo> {
  const offer: JoinRequest = { codecs: localOffer() };
  const r = await request(t, 'POST', 'v1/join', {
    body: Buffer.from(JSON.stringify(offer)),
    headers: { 'content-type': 'application/json' },
  });
  if (r.status !== 200) {
    const why = replyReason(r);
    throw new RefusedError(r.status, why.code, `join refused: ${why.reason}`);
  }
  return joinInfoSchema.parse(JSON.parse(r.body.toString('utf8')));
}

export async function fetchModel(
  o: Pick<ClientOptions, 'server' | 'token' | 'cache' | 'ca' | 'download'>,
): Promise<{ join: JoinInfo; dir: string; report: DownloadReport }> {
  const t = makeTransport(o.server, o.token, { ca: o.ca });
  const join = await joinServer(t).catch((e: unknown) => {
    const why = certificateProblem(e, o.server, o.ca);
    throw why ? new FatalNetError(why) : e;
  });
  const dir = modelCacheDir(o.cache, join.model);
  const report = await downloadArtifact(t, join.model, dir, o.download);
  return { join, dir, report };
}

export async function runClient(o: ClientOptions): Promise<{ rounds: number[] }> {
  const log = o.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const patience = (o.patienceSeconds ?? 600) * 1000;
  const t = makeTransport(o.server, o.token, { ca: o.ca });
  const fatal = (e: unknown) => certificateProblem(e, o.server, o.ca);
  const retry = <T>(what: string, f: () => Promise<T>) => retrying(what, patience, log, f, fatal);
  // The client's own data, checked before anything is asked of the server.
  const own = loadClientData(o.data, o.format ?? 'auto');
  for (const w of own.warnings) log(`warning: ${w}`);
  const poll = () =>
    retry('poll', async () => {
      const r = await request(t, 'GET', 'v1/round');
      if (r.status !== 200) {
        const why = replyReason(r);
        throw new RefusedError(
          r.status,
          why.code,
          r.status === 401 ? `the server refused this client's token (${why.code}): ${why.reason}` : why.reason,
        );
      }
      return roundStatusSchema.parse(JSON.parse(r.body.toString('utf8')));
    });
  const join = await retry('join', () => joinServer(t));
  log(`joined as ${join.client}: ${join.rounds} rounds, model ${join.model.sha256.slice(0, 16)}`);
  // A client that joins a finished run learns it before downloading the model.
  const first = await poll();
  if (first.state === 'done') {
    log(`the run is complete (${first.rounds} rounds); nothing to do`);
    return { rounds: [] };
  }
  const dir = modelCacheDir(o.cache, join.model);
  const progress = o.progress ?? silentProgress;
  const chunk = Math.max(1, o.download?.chunkBytes ?? DEFAULT_CHUNK_BYTES);
  progress.start(
    'model download',
    join.model.files.reduce((a, f) => a + Math.ceil(f.size / chunk), 0),
  );
  const onChunk = (file: string, offset: number, size: number) => {
    progress.tick({ file, done: `${Math.round((offset / Math.max(1, size)) * 100)}%` });
    o.download?.onChunk?.(file, offset, size);
  };
  const rep = await retry('download', () =>
    downloadArtifact(t, join.model, dir, { log, ...o.download, onChunk }),
  ).finally(() => progress.stop());
  log(`model ready in ${dir}: fetched ${rep.fetched} bytes, resumed ${rep.resumed}, ${rep.cached} file(s) cached`);

  const tr = join.training;
  const cm = loadClientModel(dir, { adapter: tr.adapterLora, emulator: tr.emulatorLora });
  const template = tr.template ? getTemplate(tr.template, dir) : undefined;
  const data = prepareClientData(
    own.examples,
    cm.tokenizer,
    { maxLength: tr.maxLength, template, batchSize: tr.batchSize, seed: tr.dataSeed },
    o.data,
  );
  for (const w of data.warnings) log(`warning: ${w}`);
  const it = data.iterator;
  const size = data.size;
  const stateFile = path.join(o.cache, `client-${join.client}.json`);
  // Compressed round traffic (join.compression): the adapter and emulator LoRA arrive as deltas
  // against what this client holds, and its uploads carry error feedback; both persist with each
  // trained update (codecFile), so a restarted client stays on the server's chain.
  const agreed = join.compression;
  const adapterLayout = layoutOf(captureLora(cm.adapter));
  const emulatorLayout = cm.emulator.length > 0 ? layoutOf(captureLora(cm.emulator)) : null;
  if (agreed)
    checkLayouts(
      agreed.layouts,
      { adapter: adapterLayout.id, ...(emulatorLayout ? { emulator: emulatorLayout.id } : {}) },
      `join of ${join.client}`,
    );
  const compression = agreed ? { codec: agreed.codec, topk: agreed.topk } : null;
  let codec = compression ? new CompressedClient(compression, adapterLayout, emulatorLayout) : null;
  let codecFile: string | null = null;
  let lastRound = -1;
  let pending: ClientStateFile['pending'] = null;
  if (fs.existsSync(stateFile)) {
    const s = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as ClientStateFile;
    if (s.artifact === join.model.sha256 && s.client === join.client) {
      lastRound = s.lastRound;
      pending = s.pending ?? null;
      if (s.iterator) it.setState(s.iterator);
      if (compression && s.codec) {
        const file = path.join(o.cache, s.codec);
        codec = CompressedClient.fromBuffer(compression, adapterLayout, emulatorLayout, fs.readFileSync(file), file);
        codecFile = s.codec;
      }
      log(`continuing after round ${lastRound + 1}`);
    }
  }
  const saveProgress = () =>
    writeAtomic(
      stateFile,
      JSON.stringify({
        artifact: join.model.sha256,
        client: join.client,
        lastRound,
        iterator: it.getState(),
        pending,
        codec: codecFile,
      } satisfies ClientStateFile),
    );
  const upload = async (round: number, body: Buffer, metrics: UploadMetrics, meta?: UpdateMeta) => {
    for (;;) {
      const up = await retry('upload', () =>
        request(t, 'POST', `v1/round/${round}/update`, {
          body,
          headers: {
            [METRICS_HEADER]: JSON.stringify(metrics),
            ...(meta ? { [UPDATE_HEADER]: JSON.stringify(meta) } : {}),
          },
        }),
      );
      if (up.status === 200) {
        log(`round ${round + 1}: uploaded (loss ${metrics.meanLoss.toFixed(4)}, ${body.length} bytes)`);
        return;
      }
      const why = replyReason(up);
      // The server receives a bounded number of uploads at once: wait and send again.
      if (up.status === 503 && why.code === 'busy') {
        await sleep(500 + Math.floor(Math.random() * 500));
        continue;
      }
      // A retry after a lost reply finds the first attempt already stored.
      if (why.code === 'duplicate') log(`round ${round + 1}: uploaded (the server already had it)`);
      else log(`round ${round + 1}: upload refused: ${why.code}: ${why.reason}`);
      return;
    }
  };
  const settle = async () => {
    if (!pending) return;
    const file = path.join(o.cache, pending.file);
    if (fs.existsSync(file)) {
      log(`round ${pending.round + 1}: sending the update saved before the last exit`);
      await upload(pending.round, fs.readFileSync(file), pending.metrics, pending.meta);
      fs.rmSync(file, { force: true });
    }
    pending = null;
    saveProgress();
  };
  await settle();
  const algo = new ClientAlgorithm(cm.model, cm.adapter, cm.emulator, tr.local);
  algo.emulatorVersion = -1;
  log(`${size} training examples; waiting for rounds`);
  const done: number[] = [];
  for (;;) {
    const st: RoundStatus = await poll();
    if (st.state === 'done') {
      log(`the run is complete (${st.rounds} rounds); trained in ${done.length} round(s) this session`);
      return { rounds: done };
    }
    if (st.state !== 'train' || st.round <= lastRound) {
      await sleep(join.pollSeconds * 1000);
      continue;
    }
    const round = st.round;
    const query = codec
      ? `adapterVersion=${codec.versions.adapter}&emulatorVersion=${codec.versions.emulator}`
      : `emulatorVersion=${algo.emulatorVersion}`;
    const payloadReply = await retry('payload', () => request(t, 'GET', `v1/round/${round}/payload?${query}`));
    if (payloadReply.status !== 200) {
      const why = replyReason(payloadReply);
      log(`round ${round + 1}: payload refused: ${why.code}: ${why.reason}`);
      await sleep(join.pollSeconds * 1000);
      continue;
    }
    let nonce: string;
    let emulatorUpdated: boolean;
    /** The adapter the round starts from, as this client holds it. */
    let start: LoraState;
    if (codec) {
      const r = codec.receive(payloadReply.body, `round ${round + 1} payload`);
      start = cloneState(r.adapter);
      algo.apply({
        round,
        adapter: cloneState(r.adapter),
        emulator: r.emulator ? cloneState(r.emulator) : null,
        emulatorVersion: codec.versions.emulator,
      });
      nonce = st.nonce ?? '';
      emulatorUpdated = r.emulator !== null;
    } else {
      const p = decodePayload(payloadReply.body);
      algo.apply(p);
      nonce = p.nonce;
      start = p.adapter;
      emulatorUpdated = p.emulator !== null;
    }
    const trainRound = async () => {
      log(`round ${round + 1}: training (${tr.local.steps} steps${emulatorUpdated ? ', emulator updated' : ''})`);
      if (o.trainDelayMs) await sleep(o.trainDelayMs);
      progress.start(`round ${round + 1} training`, tr.local.steps);
      const res = algo.train(
        () => toTokenBatch(it.next()!),
        (_, loss) => progress.tick({ loss: loss.toFixed(4) }),
        clientDropoutSeed(tr.dataSeed, round),
      );
      progress.stop();
      // Local DP (or clipping under secure aggregation), as the server's join answer asks.
      const state = tr.privacy
        ? transformUpload(
            tr.privacy,
            start,
            res.state,
            o.noiseSeed !== undefined
              ? clientNoiseStream(o.noiseSeed, join.client, round)
              : new Prg(new Uint8Array(crypto.randomBytes(32))),
          )
        : res.state;
      const metrics: UploadMetrics = { meanLoss: res.meanLoss, tokens: res.tokens, seconds: res.seconds };
      return { state, metrics };
    };
    if (tr.secureAggregation) {
      // Secure aggregation: the round's phases (src/fl/net/secagg.ts); the server sees only the masked input.
      const debug = (v: string) => process.env[`FEDBIOT_DEBUG_EXIT_${v}`] === String(round);
      try {
        await secureClientRound({
          t,
          round,
          client: join.client,
          samples: size,
          secure: tr.secureAggregation,
          start,
          pollSeconds: join.pollSeconds,
          log,
          retry,
          train: trainRound,
          exitBeforeMasked: debug('BEFORE_UPLOAD'),
          exitAfterMasked: debug('AFTER_UPLOAD'),
        });
        done.push(round);
      } catch (e) {
        // A refused step (the round went on without this client) or a message that fails the
        // protocol's checks: this round is lost for this client, the next ones are not.
        if (!(e instanceof HttpError) && !(e as Error).message.startsWith('secure aggregation')) throw e;
        log(
          `round ${round + 1}: secure aggregation went on without this client: ${e instanceof HttpError ? `${e.code}: ` : ''}${(e as Error).message}`,
        );
      }
      lastRound = round;
      saveProgress();
      continue;
    }
    const { state: upload, metrics } = await trainRound();
    const meta: UpdateMeta = { round, nonce, samples: size };
    const body = codec
      ? codec.upload(upload, compressedUploadSeed(tr.dataSeed, round))
      : encodeUpdate({ ...meta, state: upload });
    // The update, the data position and (compressed) what the client holds with its error feedback
    // reach the disk together, before the upload: the state file, written last, points at them.
    const bodyFile = `client-${join.client}-update.bin`;
    writeAtomic(path.join(o.cache, bodyFile), body);
    const previousCodecFile = codecFile;
    if (codec) {
      codecFile = `client-${join.client}-codec-${round}.safetensors`;
      writeAtomic(path.join(o.cache, codecFile), codec.toBuffer());
    }
    lastRound = round;
    pending = { round, file: bodyFile, metrics, ...(codec ? { meta } : {}) };
    saveProgress();
    if (previousCodecFile && previousCodecFile !== codecFile)
      fs.rmSync(path.join(o.cache, previousCodecFile), { force: true });
    if (process.env.FEDBIOT_DEBUG_EXIT_BEFORE_UPLOAD === String(round)) {
      log(`round ${round + 1}: exiting before the upload (FEDBIOT_DEBUG_EXIT_BEFORE_UPLOAD)`);
      process.exit(3);
    }
    done.push(round);
    await settle();
  }
}
