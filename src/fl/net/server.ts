// `fedbiot server`: the FedBiOT server over the network. It follows runSimulation's order of
// operations (evaluate base, pre-align, then per round: align, sample, broadcast, collect, FedAvg,
// checkpoint) but the clients are remote processes. Durable state lives in STATE/ (SQLite database,
// checkpoints, accepted uploads, the compressed model clients download, metrics.jsonl).
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { configSchema, type RunConfig } from '../../config/schema.js';
import { ServerAlgorithm } from '../../fedbiot/algorithms.js';
import { evaluateModel } from '../../fedbiot/evaluate.js';
import type { ClientUpdate } from '../../fedbiot/aggregate.js';
import type { LoraState } from '../../fedbiot/lora-state.js';
import { encodeExamples } from '../../data/encode.js';
import { BatchIterator, resolvePadId, type BatchIteratorState } from '../../data/batch.js';
import { getTemplate } from '../../data/templates.js';
import { deriveSeed, mulberry32, shuffle } from '../../util/rng.js';
import { saveAdapterAsPeft } from '../../models/hf-model.js';
import { buildExperiment, type Experiment } from '../experiment.js';
import { buildEvalSpec, clientDataSeed, roundEvalSpec, settingsFromConfig, toTokenBatch, type EvalResult } from '../simulation.js';
import { saveCheckpoint, loadState, saveState, writeAtomic } from '../checkpoint.js';
import { ServerDb } from './db.js';
import { bearer, nonce as newNonce } from './auth.js';
import { readArtifact, writeCompressedModel } from './artifact.js';
import { checkUpload } from './validate.js';
import { encodePayload, PROTOCOL, type Artifact, type JoinInfo, type RoundStatus, type StatusInfo } from './protocol.js';
import { HttpError, readBody, sendError, sendJson } from './http.js';

export type ServerSettings = NonNullable<RunConfig['server']>;

export function serverSettings(cfg: RunConfig): ServerSettings {
  return cfg.server ?? configSchema.shape.server.unwrap().parse({});
}

export function openDb(cfg: RunConfig | null, stateDir: string): ServerDb {
  return new ServerDb(cfg?.server?.dbPath ?? path.join(stateDir, 'server.db'));
}

interface Extra {
  publicIterator: BatchIteratorState;
  emulatorVersion: number;
  base: EvalResult;
  emulator: EvalResult | null;
}

interface OpenRound {
  round: number;
  nonce: string;
  sampled: string[];
  deadline: number;
  phase: 'open' | 'closing';
  reference: LoraState;
}

type Log = (line: string) => void;

const byName = (a: string, b: string) => a.localeCompare(b, 'en', { numeric: true });

export class FedServer {
  private readonly net: ServerSettings;
  private readonly db: ServerDb;
  private algo!: ServerAlgorithm;
  private exp!: Experiment;
  private artifact!: Artifact;
  private httpServer: http.Server | null = null;
  private current: OpenRound | null = null;
  private phase: 'starting' | 'aligning' | 'waiting-clients' | 'open' | 'closing' | 'done' = 'starting';
  private completedRounds = 0;
  private readonly lastSeen = new Map<string, number>();
  private readonly modelDir: string;
  private readonly ckptDir: string;
  private finishedAt: number | null = null;
  url = '';

  constructor(private readonly cfg: RunConfig, private readonly stateDir: string, private readonly log: Log = (l) => process.stdout.write(`${l}\n`)) {
    this.net = serverSettings(cfg);
    fs.mkdirSync(stateDir, { recursive: true });
    this.db = openDb(cfg, stateDir);
    this.modelDir = path.join(stateDir, 'model');
    this.ckptDir = path.join(stateDir, 'checkpoints');
  }

  /** Prepares (or resumes), serves, runs every round, and returns when the run is over. */
  async run(): Promise<void> {
    const cfg = this.cfg;
    const settings = settingsFromConfig(cfg);
    if (settings.name === 'fedavg-full' || settings.name === 'local') {
      throw new Error(`algorithm ${settings.name} cannot be deployed: fedavg-full would ship the full model, and local has no server (use fedbiot, fedot or offsite)`);
    }
    const cfgKey = JSON.stringify({ ...cfg, server: undefined, rounds: undefined, eval: undefined });
    const prevKey = this.db.getMeta('config');
    if (prevKey && prevKey !== cfgKey) throw new Error(`state ${this.stateDir} belongs to a run with a different configuration; use a fresh --state folder`);
    this.db.setMeta('config', cfgKey);

    const exp = (this.exp = await buildExperiment(cfg));
    for (const w of exp.warnings) this.log(`warning: ${w}`);
    const tok = exp.tokenizer;
    const template = cfg.data.template ? getTemplate(cfg.data.template, cfg.model.path) : undefined;
    const pub = encodeExamples(exp.public, tok, { maxLength: cfg.data.maxLength, template }).items;
    if (pub.length === 0) throw new Error('public data: no example left after encoding');
    const publicIt = new BatchIterator(pub, { batchSize: cfg.algorithm.align.batchSize, padId: resolvePadId(tok), seed: deriveSeed(cfg.seed, 'public') });
    const algo = (this.algo = new ServerAlgorithm(exp.base, settings, () => toTokenBatch(publicIt.next()!), cfg.seed));
    const evalSpec = buildEvalSpec(exp, exp.test);
    const split = algo.split!;

    // Resume from the last completed round (SQLite is the authority), or prepare from scratch.
    let extra: Extra;
    const last = this.db.lastCompleted();
    const prepared = this.db.getMeta('prepared');
    if (last || prepared) {
      const sub = last ? last.checkpoint! : 'round-0000';
      extra = JSON.parse(last ? last.extra! : prepared!) as Extra;
      algo.setAdapter(loadState(path.join(this.ckptDir, sub, 'adapter.safetensors')));
      algo.setEmulator(loadState(path.join(this.ckptDir, sub, 'emulator.safetensors')), extra.emulatorVersion);
      publicIt.setState(extra.publicIterator);
      this.completedRounds = last ? last.round + 1 : 0;
      this.log(`resuming: ${this.completedRounds} of ${cfg.rounds} rounds completed`);
    } else {
      this.log('evaluating the base model');
      const base = await evaluateModel(algo.fullModel(), evalSpec);
      this.log(`pre-alignment: ${settings.preAlignSteps} steps`);
      const pre = algo.prepare();
      const emulator = await evaluateModel(algo.clientModel(), evalSpec);
      extra = { publicIterator: publicIt.getState(), emulatorVersion: algo.currentEmulatorVersion, base, emulator };
      saveCheckpoint(this.ckptDir, { completedRounds: 0, emulatorVersion: algo.currentEmulatorVersion, adapter: algo.adapterState(), emulator: algo.emulatorState(), clients: new Map(), extra });
      this.db.setMeta('prepare-metrics', JSON.stringify({ round: -1, algorithm: settings.name, phase: 'prepare', align_loss: pre, eval: { base, emulator } }));
      this.db.setMeta('prepared', JSON.stringify(extra));
    }
    this.writeMetrics();

    const art = readArtifact(this.modelDir);
    this.artifact = art ?? writeCompressedModel(split, this.modelDir, { modelPath: cfg.model.path });
    const size = this.artifact.files.reduce((a, f) => a + f.size, 0);
    this.log(`compressed model ${this.artifact.sha256.slice(0, 16)}: ${this.artifact.files.length} files, ${size} bytes (${art ? 'reused' : 'written'})`);

    await this.listen();
    try {
      for (let round = this.completedRounds; round < cfg.rounds; round++) await this.runRound(round, publicIt, extra, evalSpec);
      if (this.db.getMeta('final-metrics') === null) {
        this.log('final evaluation (AdapEmu and AdapFu)');
        const final = { adapemu: await evaluateModel(algo.clientModel(), evalSpec), adapfu: await evaluateModel(algo.fullModel(), evalSpec) };
        saveAdapterAsPeft(algo.adapterState(), path.join(this.stateDir, 'adapter'), { r: settings.adapterLora.r, alpha: settings.adapterLora.alpha, dropout: settings.adapterLora.dropout, baseModel: exp.modelSource });
        this.db.setMeta('final-metrics', JSON.stringify({ round: cfg.rounds - 1, algorithm: settings.name, phase: 'final', eval: final }));
        const rounds = this.db.rounds().map((r) => JSON.parse(r.metrics ?? '{}') as { bytes_down?: number; bytes_up?: number });
        const down = rounds.reduce((a, r) => a + (r.bytes_down ?? 0), 0);
        const up = rounds.reduce((a, r) => a + (r.bytes_up ?? 0), 0);
        writeAtomic(path.join(this.stateDir, 'summary.json'), JSON.stringify({ algorithm: settings.name, rounds: cfg.rounds, base: extra.base, emulator: extra.emulator, adapemu: final.adapemu, adapfu: final.adapfu, bytes_down_total: down, bytes_up_total: up, bytes_total: down + up, bytes_join: this.db.joinBytes() }, null, 2));
        this.writeMetrics();
      }
      this.phase = 'done';
      this.current = null;
      this.finishedAt = Date.now();
      this.log(`run complete: ${cfg.rounds} rounds; adapter in ${path.join(this.stateDir, 'adapter')}; answering status for ${this.net.lingerSeconds} s`);
      await this.linger();
    } finally {
      await this.close();
    }
  }

  private async runRound(round: number, publicIt: BatchIterator, extra: Extra, evalSpec: ReturnType<typeof buildEvalSpec>): Promise<void> {
    const cfg = this.cfg;
    const algo = this.algo;
    const rt0 = performance.now();
    this.phase = 'aligning';
    await new Promise((r) => setImmediate(r));
    const align = algo.beginRound(round);
    let row = this.db.round(round);
    if (!row) {
      this.phase = 'waiting-clients';
      let warned = false;
      const need = round === 0 ? Math.max(this.net.minClients, this.net.startClients ?? 0) : this.net.minClients;
      for (;;) {
        const active = this.activeClients();
        if (active.length >= need) break;
        if (!warned) this.log(`round ${round + 1}: waiting for clients (${active.length} of ${need} needed)`);
        warned = true;
        await new Promise((r) => setTimeout(r, 100));
      }
      const available = this.activeClients();
      let sampled = available;
      const perRound = cfg.clients.perRound;
      if (perRound !== undefined) {
        const k = perRound < 1 ? Math.max(1, Math.round(perRound * available.length)) : Math.min(available.length, Math.floor(perRound));
        sampled = shuffle(mulberry32(deriveSeed(cfg.seed, `sample-${round}`)), [...available]).slice(0, k).sort(byName);
      }
      this.db.openRound(round, newNonce(), sampled);
      row = this.db.round(round)!;
    }
    let sampled = JSON.parse(row.sampled) as string[];
    const deadlineMs = this.net.roundDeadlineSeconds * 1000;
    let deadline = Date.now() + deadlineMs;
    this.current = { round, nonce: row.nonce, sampled, deadline, phase: 'open', reference: algo.adapterState() };
    this.phase = 'open';
    this.log(`round ${round + 1}/${cfg.rounds} open: sampled ${sampled.join(',')}`);
    // Quorum policy: the round closes as soon as every sampled (and not revoked) client uploaded, or
    // at its deadline if at least minClients did. Short of that, the deadline is extended (at most
    // maxExtensions times) and more available clients are sampled; after the last extension the
    // round closes with whatever it has (or is skipped, keeping the adapter, when nothing came).
    let extensions = row.extensions; // a restarted server goes on counting where it stopped
    let quorum: 'all' | 'met' | 'below' | 'none' = 'all';
    const revokedNoted = new Set<string>();
    for (;;) {
      const valid = this.db.activeClientNames();
      for (const c of sampled) {
        if (!valid.has(c) && !revokedNoted.has(c)) {
          revokedNoted.add(c);
          this.log(`round ${round + 1}: client ${c} was revoked; it is no longer waited for${this.db.hasUpload(round, c) ? ' and its upload is ignored' : ''}`);
        }
      }
      const expected = sampled.filter((c) => valid.has(c));
      const got = this.db.uploads(round).filter((u) => expected.includes(u.client));
      const missing = () => expected.filter((c) => !got.some((u) => u.client === c));
      if (got.length === expected.length && got.length > 0) break;
      if (Date.now() >= deadline) {
        if (got.length >= Math.min(this.net.minClients, expected.length) && got.length > 0) {
          quorum = 'met';
          this.log(`round ${round + 1}: deadline reached with ${got.length} of ${sampled.length} uploads; missing ${missing().join(',')}`);
          break;
        }
        if (extensions >= this.net.maxRoundExtensions) {
          quorum = got.length > 0 ? 'below' : 'none';
          this.log(got.length > 0
            ? `round ${round + 1}: closing with ${got.length} upload(s), fewer than minClients=${this.net.minClients}, after ${extensions} extension(s); missing ${missing().join(',')}`
            : `round ${round + 1}: no upload after ${extensions} extension(s); skipping aggregation, the adapter stays as it was`);
          break;
        }
        extensions++;
        deadline = Date.now() + deadlineMs;
        const more = this.activeClients().filter((c) => !sampled.includes(c));
        const want = Math.max(0, this.net.minClients - got.length);
        const added = shuffle(mulberry32(deriveSeed(cfg.seed, `sample-${round}-extension-${extensions}`)), more).slice(0, want).sort(byName);
        if (added.length > 0) {
          sampled = [...sampled, ...added];
          this.current.sampled = sampled;
        }
        this.db.extendRound(round, sampled, extensions);
        this.current.deadline = deadline;
        this.log(`round ${round + 1}: deadline reached with ${got.length} upload(s), fewer than minClients=${this.net.minClients}; extension ${extensions} of ${this.net.maxRoundExtensions}: ${this.net.roundDeadlineSeconds} s more${added.length ? `, also sampled ${added.join(',')}` : ', no other client available'}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    // Closing is synchronous from here: no upload can slip in between the count and FedAvg.
    this.current.phase = 'closing';
    this.phase = 'closing';
    const valid = this.db.activeClientNames();
    const uploads = this.db.uploads(round).filter((u) => sampled.includes(u.client) && valid.has(u.client));
    const order = sampled.filter((s) => uploads.some((u) => u.client === s));
    const updates: ClientUpdate[] = order.map((name) => {
      const u = uploads.find((x) => x.client === name)!;
      return { client: name, samples: u.samples, state: loadState(path.join(this.stateDir, u.file)) };
    });
    if (updates.length > 0) algo.aggregate(updates);
    const traffic = this.db.traffic(round);
    const trainLoss: Record<string, number> = {};
    for (const u of uploads) trainLoss[u.client] = (JSON.parse(u.metrics) as { meanLoss: number }).meanLoss;
    const entry: Record<string, unknown> = {
      round, algorithm: cfg.algorithm.name, clients: order, sampled, missing: sampled.filter((s) => !order.includes(s)), train_loss: trainLoss,
      samples: Object.fromEntries(uploads.map((u) => [u.client, u.samples])),
      align_loss: align ? { nmse: align.hidden, kl: align.kl, ce: align.ce, total: align.loss } : null,
      bytes_down: Object.values(traffic).reduce((a, t) => a + t.down, 0),
      bytes_up: Object.values(traffic).reduce((a, t) => a + t.up, 0),
      bytes_per_client: traffic,
      seconds: (performance.now() - rt0) / 1000,
      extensions, quorum,
      ...(updates.length === 0 ? { skipped: true } : {}),
    };
    if (round !== cfg.rounds - 1 && cfg.eval.every > 0 && (round + 1) % cfg.eval.every === 0) {
      const spec = roundEvalSpec(evalSpec, cfg);
      entry.eval = { adapemu: await evaluateModel(algo.clientModel(), spec), adapfu: await evaluateModel(algo.fullModel(), spec) };
    }
    extra.publicIterator = publicIt.getState();
    extra.emulatorVersion = algo.currentEmulatorVersion;
    saveCheckpoint(this.ckptDir, { completedRounds: round + 1, emulatorVersion: algo.currentEmulatorVersion, adapter: algo.adapterState(), emulator: algo.emulatorState(), clients: new Map(), extra });
    this.db.completeRound(round, entry, `round-${String(round + 1).padStart(4, '0')}`, extra);
    this.completedRounds = round + 1;
    this.current = null;
    this.writeMetrics();
    const losses = Object.values(trainLoss);
    this.log(`round ${round + 1}/${cfg.rounds} ${updates.length === 0 ? 'skipped (no upload)' : 'complete'}: ${order.length}/${sampled.length} clients, train loss ${(losses.reduce((a, b) => a + b, 0) / Math.max(1, losses.length)).toFixed(4)}, down ${entry.bytes_down} B, up ${entry.bytes_up} B`);
  }

  /** metrics.jsonl, regenerated from the database (so a crash never duplicates a line). */
  private writeMetrics(): void {
    const lines: string[] = [];
    const pre = this.db.getMeta('prepare-metrics');
    if (pre) lines.push(pre);
    for (const r of this.db.rounds()) if (r.status === 'completed' && r.metrics) lines.push(r.metrics);
    const fin = this.db.getMeta('final-metrics');
    if (fin) lines.push(fin);
    writeAtomic(path.join(this.stateDir, 'metrics.jsonl'), lines.map((l) => `${l}\n`).join(''));
  }

  /** Clients heard from within activeSeconds whose tokens are still valid. */
  private activeClients(): string[] {
    const now = Date.now();
    const win = this.net.activeSeconds * 1000;
    const valid = this.db.activeClientNames();
    return [...this.lastSeen].filter(([n, t]) => now - t <= win && valid.has(n)).map(([n]) => n).sort(byName);
  }

  /** After the last round: answer status (and tell polling clients "done") for lingerSeconds. */
  private async linger(): Promise<void> {
    const until = Date.now() + this.net.lingerSeconds * 1000;
    while (Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  }

  private listen(): Promise<void> {
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
      this.handle(req, res).catch((e: unknown) => {
        const err = e instanceof HttpError ? e : new HttpError(500, 'internal', (e as Error).message);
        if (err.status === 500) this.log(`error: ${req.method} ${req.url}: ${err.message}`);
        if (!res.headersSent) sendError(res, err.status, err.code, err.message);
        else res.destroy();
      });
    };
    const tls = this.net.tls;
    const srv = tls ? https.createServer({ cert: fs.readFileSync(tls.cert), key: fs.readFileSync(tls.key) }, handler) : http.createServer(handler);
    srv.keepAliveTimeout = 30_000;
    srv.requestTimeout = 300_000;
    this.httpServer = srv;
    return new Promise((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(this.net.port, this.net.host, () => {
        const a = srv.address() as AddressInfo;
        const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
        this.url = `${tls ? 'https' : 'http'}://${host}:${a.port}`;
        writeAtomic(path.join(this.stateDir, 'server.json'), JSON.stringify({ url: this.url, port: a.port, pid: process.pid }, null, 2));
        this.log(`listening on ${this.url}`);
        resolve();
      });
    });
  }

  async close(): Promise<void> {
    const srv = this.httpServer;
    this.httpServer = null;
    if (srv) await new Promise<void>((r) => {
      srv.close(() => r());
      srv.closeAllConnections();
    });
    this.db.close();
  }

  private auth(req: http.IncomingMessage): { name: string; role: 'client' | 'admin' } {
    const tok = bearer(req.headers.authorization);
    const row = tok ? this.db.clientByToken(tok) : null;
    if (!row) {
      const revoked = tok ? this.db.revokedByToken(tok) : null;
      const what = `${req.method} ${req.url?.split('?')[0]} from ${revoked ? `revoked client ${revoked} at ` : ''}${req.socket.remoteAddress}`;
      const reason = !tok ? 'missing bearer token' : revoked ? `the token of client '${revoked}' was revoked` : 'unknown or revoked token';
      this.db.refuse(null, revoked, 'unauthorized', what);
      this.log(`refused ${what}: unauthorized: ${reason}`);
      throw new HttpError(401, 'unauthorized', reason);
    }
    if (row.role === 'client') {
      const prev = this.lastSeen.get(row.name) ?? 0;
      const now = Date.now();
      this.lastSeen.set(row.name, now);
      if (now - prev > 5000) this.db.touch(row.name, now);
    }
    return { name: row.name, role: row.role };
  }

  private refuse(round: number | null, client: string, status: number, code: string, reason: string): never {
    this.db.refuse(round, client, code, reason);
    this.log(`refused upload from ${client}${round !== null ? ` for round ${round + 1}` : ''}: ${code}: ${reason}`);
    throw new HttpError(status, code, reason);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const p = url.pathname;
    const m = req.method ?? 'GET';
    if (m === 'GET' && p === '/v1/health') return sendJson(res, 200, { ok: true, phase: this.phase });
    if (m === 'GET' && p === '/v1/status') return this.status(req, res);
    const who = this.auth(req);
    if (who.role !== 'client') throw new HttpError(403, 'forbidden', 'this endpoint is for clients');
    if (m === 'POST' && p === '/v1/join') return sendJson(res, 200, this.joinInfo(who.name));
    const file = /^\/v1\/model\/files\/([^/]+)$/.exec(p);
    if (m === 'GET' && file) return this.sendModelFile(req, res, who.name, decodeURIComponent(file[1]!));
    if (m === 'GET' && p === '/v1/round') return sendJson(res, 200, this.roundStatus(who.name));
    const pay = /^\/v1\/round\/(\d+)\/payload$/.exec(p);
    if (m === 'GET' && pay) return this.sendPayload(res, who.name, Number(pay[1]), Number(url.searchParams.get('emulatorVersion') ?? '-1'));
    const up = /^\/v1\/round\/(\d+)\/update$/.exec(p);
    if (m === 'POST' && up) return this.receiveUpdate(req, res, who.name, Number(up[1]));
    throw new HttpError(404, 'not-found', `no endpoint ${m} ${p}`);
  }

  private joinInfo(client: string): JoinInfo {
    const c = this.cfg;
    const s = settingsFromConfig(c);
    return {
      protocol: PROTOCOL, client, rounds: c.rounds, pollSeconds: this.net.pollSeconds, model: this.artifact,
      training: {
        dataSeed: clientDataSeed(c.seed, client), batchSize: c.algorithm.local.batchSize, maxLength: c.data.maxLength,
        template: c.data.template ?? null, format: c.data.format, local: s.local, adapterLora: s.adapterLora, emulatorLora: s.emulatorLora,
      },
    };
  }

  private roundStatus(client: string): RoundStatus {
    const rounds = this.cfg.rounds;
    if (this.phase === 'done') {
      return { state: 'done', round: rounds, rounds };
    }
    const cur = this.current;
    if (cur && cur.phase === 'open' && cur.sampled.includes(client)) {
      if (this.db.hasUpload(cur.round, client)) return { state: 'uploaded', round: cur.round, rounds };
      return { state: 'train', round: cur.round, rounds, nonce: cur.nonce, deadline: cur.deadline };
    }
    return { state: 'wait', round: this.completedRounds, rounds };
  }

  private sendModelFile(req: http.IncomingMessage, res: http.ServerResponse, client: string, name: string): void {
    const f = this.artifact.files.find((x) => x.name === name);
    if (!f) throw new HttpError(404, 'not-found', `no model file '${name}'`);
    const file = path.join(this.modelDir, f.name);
    let start = 0;
    let end = f.size - 1;
    let status = 200;
    const range = req.headers.range;
    if (range) {
      const r = /^bytes=(\d+)-(\d*)$/.exec(range.trim());
      if (!r) throw new HttpError(416, 'bad-range', `unsupported Range '${range}'`);
      start = Number(r[1]);
      end = r[2] ? Math.min(Number(r[2]), f.size - 1) : f.size - 1;
      if (start > end || start >= f.size) {
        res.writeHead(416, { 'content-range': `bytes */${f.size}` });
        res.end();
        return;
      }
      status = 206;
    }
    const len = end - start + 1;
    res.writeHead(status, {
      'content-type': 'application/octet-stream', 'content-length': len, 'accept-ranges': 'bytes', etag: `"${f.sha256}"`,
      ...(status === 206 ? { 'content-range': `bytes ${start}-${end}/${f.size}` } : {}),
    });
    const stream = fs.createReadStream(file, { start, end });
    let sent = 0;
    stream.on('data', (c) => (sent += c.length));
    stream.on('close', () => this.db.addTraffic(-1, client, 'join', sent));
    stream.on('error', () => res.destroy());
    stream.pipe(res);
  }

  private sendPayload(res: http.ServerResponse, client: string, round: number, emulatorVersion: number): void {
    const cur = this.current;
    if (!cur || cur.round !== round || cur.phase !== 'open') throw new HttpError(409, 'wrong-round', `round ${round + 1} is not open`);
    if (!cur.sampled.includes(client)) throw new HttpError(403, 'not-sampled', `client ${client} is not sampled in round ${round + 1}`);
    const p = this.algo.payload(round, Number.isInteger(emulatorVersion) ? emulatorVersion : -1);
    const body = encodePayload({ round, nonce: cur.nonce, adapter: p.adapter, emulator: p.emulator, emulatorVersion: p.emulatorVersion });
    this.db.addTraffic(round, client, 'down', body.length);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
    res.end(body);
  }

  private async receiveUpdate(req: http.IncomingMessage, res: http.ServerResponse, client: string, round: number): Promise<void> {
    const body = await readBody(req, this.net.maxUploadBytes).catch((e: unknown) => {
      if (e instanceof HttpError) this.refuse(round, client, e.status, e.code, e.message);
      throw e;
    });
    if (this.db.hasUpload(round, client)) this.refuse(round, client, 409, 'duplicate', `client ${client} already uploaded for round ${round + 1}`);
    const cur = this.current;
    if (!cur || cur.round !== round || cur.phase !== 'open') {
      const done = round < this.completedRounds || (cur !== null && round === cur.round);
      this.refuse(round, client, 409, done ? 'round-closed' : 'wrong-round', done ? `round ${round + 1} is closed: late uploads are refused` : `round ${round + 1} is not open`);
    }
    if (!cur.sampled.includes(client)) this.refuse(round, client, 403, 'not-sampled', `client ${client} is not sampled in round ${round + 1}`);
    const c = checkUpload(body, cur.reference, { normBound: this.net.normBound });
    if (!c.ok) this.refuse(round, client, 422, c.code, c.reason);
    if (c.round !== round) this.refuse(round, client, 409, 'wrong-round', `the body is for round ${c.round + 1} (metadata "round"), the URL for round ${round + 1}`);
    if (c.nonce !== cur.nonce) this.refuse(round, client, 409, 'bad-nonce', `metadata "nonce" does not match round ${round + 1}'s (a replay or a stale round)`);
    const file = path.join('uploads', `round-${String(round).padStart(4, '0')}`, `${client}.safetensors`);
    saveState(path.join(this.stateDir, file), c.state);
    if (!this.db.addUpload({ round, client, samples: c.samples, file, bytes: body.length, metrics: JSON.stringify(c.metrics), received_at: Date.now() })) {
      this.refuse(round, client, 409, 'duplicate', `client ${client} already uploaded for round ${round + 1}`);
    }
    this.db.addTraffic(round, client, 'up', body.length);
    this.log(`round ${round + 1}: upload from ${client} accepted (${c.samples} samples, loss ${c.metrics.meanLoss.toFixed(4)})`);
    sendJson(res, 200, { accepted: true, round });
  }

  private status(req: http.IncomingMessage, res: http.ServerResponse): void {
    const tok = bearer(req.headers.authorization);
    const row = tok ? this.db.clientByToken(tok) : null;
    if (tok && !row) throw new HttpError(401, 'unauthorized', 'unknown or revoked token');
    const info: StatusInfo = {
      protocol: PROTOCOL, algorithm: this.cfg.algorithm.name, rounds: this.cfg.rounds, completedRounds: this.completedRounds,
      phase: this.phase, currentRound: this.current?.round ?? null,
    };
    if (this.phase === 'done') {
      // Where the results are is told to admins only (it is a path on the server).
      info.finished = { at: this.finishedAt ?? Date.now(), round: this.completedRounds, closesAt: (this.finishedAt ?? Date.now()) + this.net.lingerSeconds * 1000, ...(row?.role === 'admin' ? { results: this.stateDir } : {}) };
    }
    if (row?.role === 'admin') {
      info.clients = this.db.clients().filter((c) => c.role === 'client').map((c) => ({ name: c.name, role: c.role, lastSeen: this.lastSeen.get(c.name) ?? c.last_seen, uploads: this.db.uploadCount(c.name), ...(c.revoked_at !== null ? { revokedAt: c.revoked_at } : {}) }));
      info.roundsDetail = this.db.rounds().map((r) => ({ round: r.round, status: r.status, sampled: JSON.parse(r.sampled) as string[], uploads: this.db.uploads(r.round).map((u) => u.client), metrics: r.metrics ? (JSON.parse(r.metrics) as unknown) : null }));
    }
    sendJson(res, 200, info);
  }
}
