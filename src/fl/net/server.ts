// `fedbiot server`: the federation driver (../driver.ts) with the network transport. The driver
// owns the run (preparation, rounds, evaluation, checkpoints, summary); this transport owns what a
// network adds: clients that come and go (availability), the quorum and deadline policy of a round,
// HTTP routing and authentication, the compressed model's download, and the SQLite database that is
// the authority on which rounds completed and which uploads were accepted. Durable state lives in
// STATE/ (database, checkpoints, accepted uploads, the compressed model, metrics.jsonl, summary.json).
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { serverSettings, type RunConfig, type ServerSettings } from '../../config/schema.js';
import { ALGORITHMS, strategyOf } from '../../fedbiot/algorithms.js';
import { writeAtomic } from '../../io/byte-source.js';
import { buildServerData, checkServerData } from '../experiment.js';
import { loadState, saveState } from '../checkpoint.js';
import { clientDataSeed } from '../seeds.js';
import {
  byName,
  fedAvgWeights,
  runFederation,
  type ReceivedUpdate,
  type RoundExchange,
  type RoundOutcome,
  type Summary,
  type Transport,
  type TransportContext,
} from '../driver.js';
import type { Progress } from '../../util/progress.js';
import { ServerDb } from './db.js';
import { bearer, nonce as newNonce } from './auth.js';
import { readArtifact, writeCompressedModel } from './artifact.js';
import {
  joinRequestSchema,
  METRICS_HEADER,
  PROTOCOL,
  UPDATE_HEADER,
  uploadMetricsSchema,
  type Artifact,
  type JoinInfo,
  type JoinRequest,
  type RoundStatus,
  type SecureJoin,
  type StatusInfo,
  type UploadMetrics,
} from './protocol.js';
import { closeAfterReply, HttpError, readBody, sendError, sendJson } from './http.js';
import { RefusalLog } from './refusal-log.js';
import { SECAGG_ACTIONS, SecureRoundServer, type SecAggAction } from './secagg.js';
import { openApiDocument } from './openapi.js';
import { federationToOps, replayMetrics } from '../ops-bridge.js';
import { createRunOps, type RunOps } from '../../ops/run-ops.js';
import { credential, OpsEndpoints } from '../../ops/http.js';
import { requestLogger, type Logger } from '../../ops/log.js';
import { uploadTransform } from '../../privacy/aggregator.js';
import { layoutOf, negotiate } from '../../codec/index.js';

export { serverSettings, type ServerSettings };

export function openDb(cfg: RunConfig | null, stateDir: string): ServerDb {
  return new ServerDb(cfg?.server?.dbPath ?? path.join(stateDir, 'server.db'));
}

interface OpenRound {
  round: number;
  nonce: string;
  sampled: string[];
  deadline: number;
  phase: 'open' | 'closing';
  exchange: RoundExchange;
}

type Log = (line: string) => void;
type Phase = 'starting' | 'aligning' | 'waiting-clients' | 'open' | 'closing' | 'done';

/** The network transport: remote clients over HTTP(S), rounds closed by quorum and deadline. */
export class NetworkTransport implements Transport {
  readonly kind = 'network';
  private readonly net: ServerSettings;
  readonly db: ServerDb;
  private ctx!: TransportContext;
  private artifact!: Artifact;
  private httpServer: http.Server | null = null;
  private current: OpenRound | null = null;
  /** The secure-aggregation phases of the current round (secureAggregation configured). */
  private secure: SecureRoundServer | null = null;
  phase: Phase = 'starting';
  private completedRounds = 0;
  private readonly lastSeen = new Map<string, number>();
  private readonly modelDir: string;
  private finishedAt: number | null = null;
  private uploadsInFlight = 0;
  private readonly refusals: RefusalLog;
  /** With `compression` (and a shared adapter): the layout ids of the compressed streams, agreed at join. */
  private codecLayouts: Record<string, number> | null = null;
  url = '';
  /** The run's events, dashboard state and Prometheus metrics (GET /dashboard, /metrics). */
  readonly ops: RunOps;
  private opsHttp: OpsEndpoints | null = null;

  /** `logger`: a structured logger for per-request lines (request ids; debug level, warn when refused). */
  constructor(
    private readonly cfg: RunConfig,
    private readonly stateDir: string,
    private readonly log: Log,
    private readonly logger: Logger | null = null,
  ) {
    this.net = serverSettings(cfg);
    this.ops = createRunOps({
      activeSeconds: this.net.activeSeconds,
      onError: (e) => log(`warning: a run-event listener failed: ${(e as Error).message}`),
    });
    fs.mkdirSync(stateDir, { recursive: true });
    this.db = openDb(cfg, stateDir);
    this.modelDir = path.join(stateDir, 'model');
    this.refusals = new RefusalLog(this.db, log);
    // Clients heard from before a restart stay known: a restarted server does not leave a
    // slow-to-reconnect client out of the next round's sample (it is available for activeSeconds).
    for (const c of this.db.clients())
      if (c.role === 'client' && c.revoked_at === null && c.last_seen !== null) this.lastSeen.set(c.name, c.last_seen);
  }

  resumePoint(): number | null {
    const last = this.db.lastCompleted();
    const r = last ? last.round + 1 : this.db.getMeta('prepared') !== null ? 0 : null;
    if (r !== null) this.completedRounds = r;
    return r;
  }

  recorded(round: number, entry: Record<string, unknown>, checkpoint: string): void {
    if (round < 0) {
      this.db.setMeta('prepared', checkpoint);
      return;
    }
    this.db.completeRound(round, entry, checkpoint, null);
    this.completedRounds = round + 1;
    this.current = null;
  }

  async open(ctx: TransportContext): Promise<void> {
    this.ctx = ctx;
    const c = this.cfg.compression;
    if ((c.codec !== 'none' || c.topk !== null) && ctx.strategy.adapters === 'global') {
      const emulator = ctx.server.emulatorState();
      // the driver's CompressedServer builds its streams from the same states, in the same order
      this.codecLayouts = {
        adapter: layoutOf(ctx.server.adapterState()).id,
        ...(emulator ? { emulator: layoutOf(emulator).id } : {}),
      };
    }
    const split = ctx.server.split!;
    const art = readArtifact(this.modelDir);
    this.artifact = art ?? writeCompressedModel(split, this.modelDir, { modelPath: this.cfg.model.path });
    const size = this.artifact.files.reduce((a, f) => a + f.size, 0);
    this.log(
      `compressed model ${this.artifact.sha256.slice(0, 16)}: ${this.artifact.files.length} files, ${size} bytes (${art ? 'reused' : 'written'})`,
    );
    const clients = this.db
      .clients()
      .filter((c) => c.role === 'client' && c.revoked_at === null)
      .map((c) => c.name);
    this.ops.events.emit({
      type: 'run',
      mode: 'server',
      algorithm: this.cfg.algorithm.name,
      rounds: this.cfg.rounds,
      completedRounds: this.completedRounds,
      clients,
    });
    replayMetrics(this.ops.events, path.join(this.stateDir, 'metrics.jsonl'));
    await this.listen();
  }

  joinBytes(): number {
    return this.artifact.files.reduce((a, f) => a + f.size, 0);
  }

  /** Model bytes served beyond one copy per client (a chunk fetched again, a cache lost). */
  resentJoinBytes(): number {
    const size = this.joinBytes();
    return Object.values(this.db.joinBytes()).reduce((a, b) => a + Math.max(0, b - size), 0);
  }

  async exchange(x: RoundExchange): Promise<RoundOutcome> {
    const round = x.round;
    let row = this.db.round(round);
    if (!row) {
      this.setPhase('waiting-clients', round);
      let warned = false;
      const need = round === 0 ? Math.max(this.net.minClients, this.net.startClients ?? 0) : this.net.minClients;
      for (;;) {
        const active = this.activeClients();
        if (active.length >= need) break;
        if (!warned) this.log(`round ${round + 1}: waiting for clients (${active.length} of ${need} needed)`);
        warned = true;
        await new Promise((r) => setTimeout(r, 100));
      }
      this.db.openRound(round, newNonce(), x.sample(this.activeClients()));
      row = this.db.round(round)!;
    }
    let sampled = JSON.parse(row.sampled) as string[];
    const deadlineMs = this.net.roundDeadlineSeconds * 1000;
    let deadline = Date.now() + deadlineMs;
    this.current = { round, nonce: row.nonce, sampled, deadline, phase: 'open', exchange: x };
    this.setPhase('open', round);
    this.log(`round ${round + 1}/${this.cfg.rounds} open: sampled ${sampled.join(',')}`);
    this.ops.events.emit({ type: 'round-open', round, sampled, deadline });
    if (this.ctx.aggregator.plan.secure) return this.secureExchange(x, sampled);
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
          this.log(
            `round ${round + 1}: client ${c} was revoked; it is no longer waited for${this.db.hasUpload(round, c) ? ' and its upload is ignored' : ''}`,
          );
        }
      }
      const expected = sampled.filter((c) => valid.has(c));
      const got = this.db.uploads(round).filter((u) => expected.includes(u.client));
      const missing = () => expected.filter((c) => !got.some((u) => u.client === c));
      if (got.length === expected.length && got.length > 0) break;
      if (Date.now() >= deadline) {
        if (got.length >= Math.min(this.net.minClients, expected.length) && got.length > 0) {
          quorum = 'met';
          this.log(
            `round ${round + 1}: deadline reached with ${got.length} of ${sampled.length} uploads; missing ${missing().join(',')}`,
          );
          break;
        }
        if (extensions >= this.net.maxRoundExtensions) {
          quorum = got.length > 0 ? 'below' : 'none';
          this.log(
            got.length > 0
              ? `round ${round + 1}: closing with ${got.length} upload(s), fewer than minClients=${this.net.minClients}, after ${extensions} extension(s); missing ${missing().join(',')}`
              : `round ${round + 1}: no upload after ${extensions} extension(s); skipping aggregation, the adapter stays as it was`,
          );
          break;
        }
        extensions++;
        deadline = Date.now() + deadlineMs;
        const more = this.activeClients().filter((c) => !sampled.includes(c));
        const added = x.sampleMore(more, Math.max(0, this.net.minClients - got.length), extensions);
        if (added.length > 0) {
          sampled = [...sampled, ...added];
          this.current.sampled = sampled;
        }
        this.db.extendRound(round, sampled, extensions);
        this.current.deadline = deadline;
        this.ops.events.emit({ type: 'round-open', round, sampled, deadline });
        this.log(
          `round ${round + 1}: deadline reached with ${got.length} upload(s), fewer than minClients=${this.net.minClients}; extension ${extensions} of ${this.net.maxRoundExtensions}: ${this.net.roundDeadlineSeconds} s more${added.length ? `, also sampled ${added.join(',')}` : ', no other client available'}`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    // Closing is synchronous from here: no upload can slip in between the count and aggregation.
    this.current.phase = 'closing';
    this.setPhase('closing', round);
    const valid = this.db.activeClientNames();
    const uploads = this.db.uploads(round).filter((u) => sampled.includes(u.client) && valid.has(u.client));
    const registered = new Map(this.db.clients().map((c) => [c.name, c.samples]));
    const steps = this.cfg.algorithm.local.steps;
    const updates: ReceivedUpdate[] = sampled.flatMap((name) => {
      const u = uploads.find((x) => x.client === name);
      if (!u) return [];
      const m = JSON.parse(u.metrics) as UploadMetrics;
      return [
        {
          client: name,
          reported: u.samples,
          trusted: registered.get(name) ?? null,
          state: loadState(path.join(this.stateDir, u.file)),
          meanLoss: m.meanLoss,
          stepSeconds: m.seconds / Math.max(1, steps),
        },
      ];
    });
    this.setPhase('aligning', round + 1 < this.cfg.rounds ? round + 1 : null);
    return {
      sampled,
      updates,
      traffic: this.db.traffic(round),
      resent: this.db.resent(round),
      extra: { extensions, quorum },
    };
  }

  async finish(): Promise<void> {
    this.setPhase('done');
    this.current = null;
    this.finishedAt = Date.now();
    this.log(
      `run complete: ${this.cfg.rounds} rounds; adapter in ${path.join(this.stateDir, 'adapter')}; answering status for ${this.net.lingerSeconds} s`,
    );
    const until = Date.now() + this.net.lingerSeconds * 1000;
    while (Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  }

  private setPhase(phase: Phase, round: number | null = null): void {
    this.phase = phase;
    this.ops.events.emit({ type: 'phase', phase, round });
  }

  async close(): Promise<void> {
    this.opsHttp?.close();
    this.refusals.flush();
    const srv = this.httpServer;
    this.httpServer = null;
    if (srv)
      await new Promise<void>((r) => {
        srv.close(() => r());
        srv.closeAllConnections();
      });
    if (this.db.db.open) this.db.close();
  }

  /** Clients heard from within activeSeconds whose tokens are still valid. */
  private activeClients(): string[] {
    const now = Date.now();
    const win = this.net.activeSeconds * 1000;
    const valid = this.db.activeClientNames();
    return [...this.lastSeen]
      .filter(([n, t]) => now - t <= win && valid.has(n))
      .map(([n]) => n)
      .sort(byName);
  }

  private listen(): Promise<void> {
    this.opsHttp = new OpsEndpoints({
      state: this.ops.state,
      events: this.ops.events,
      metrics: this.ops.metrics,
      metricsPublic: this.net.metricsPublic,
      isAdmin: (req) => {
        const tok = credential(req.headers.authorization);
        return tok !== null && this.db.clientByToken(tok)?.role === 'admin';
      },
      onRefused: (req, reason) => {
        this.ops.events.emit({ type: 'refusal', client: null, reason: 'unauthorized' });
        this.refusals.unauthenticated(
          null,
          `${req.method} ${req.url?.split('?')[0].slice(0, 100)} from ${req.socket.remoteAddress}`,
          reason,
        );
      },
    });
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
      const reqLog = this.logger ? requestLogger(this.logger, req, res) : null;
      this.handle(req, res).catch((e: unknown) => {
        const err = e instanceof HttpError ? e : new HttpError(500, 'internal', (e as Error).message);
        if (err.status === 500) {
          if (reqLog) reqLog.error({ method: req.method, path: req.url?.split('?')[0] }, `error: ${err.message}`);
          else this.log(`error: ${req.method} ${req.url?.split('?')[0]}: ${err.message}`);
        }
        if (res.headersSent) {
          res.destroy();
          return;
        }
        // A refusal of a body still arriving: answer, then close (the peer reads the reason, not ECONNRESET).
        if (!req.complete) closeAfterReply(req, res);
        if (err.status === 503) res.setHeader('retry-after', '1');
        sendError(res, err.status, err.code, err.message);
      });
    };
    const tls = this.net.tls;
    const srv = tls
      ? https.createServer({ cert: fs.readFileSync(tls.cert), key: fs.readFileSync(tls.key) }, handler)
      : http.createServer(handler);
    srv.keepAliveTimeout = 30_000;
    srv.requestTimeout = 300_000;
    this.httpServer = srv;
    return new Promise((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(this.net.port, this.net.host, () => {
        const a = srv.address() as AddressInfo;
        const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
        this.url = `${tls ? 'https' : 'http'}://${host}:${a.port}`;
        writeAtomic(
          path.join(this.stateDir, 'server.json'),
          JSON.stringify({ url: this.url, port: a.port, pid: process.pid }, null, 2),
        );
        this.log(`listening on ${this.url}`);
        resolve();
      });
    });
  }

  private auth(req: http.IncomingMessage): { name: string; role: 'client' | 'admin' } {
    const tok = bearer(req.headers.authorization);
    const row = tok ? this.db.clientByToken(tok) : null;
    if (!row) {
      const revoked = tok ? this.db.revokedByToken(tok) : null;
      const what = `${req.method} ${req.url?.split('?')[0].slice(0, 100)} from ${revoked ? `revoked client ${revoked} at ` : ''}${req.socket.remoteAddress}`;
      const reason = !tok
        ? 'missing bearer token'
        : revoked
          ? `the token of client '${revoked}' was revoked`
          : 'unknown or revoked token';
      this.refusals.unauthenticated(revoked, what, reason);
      this.ops.events.emit({ type: 'refusal', client: revoked, reason: 'unauthorized' });
      throw new HttpError(401, 'unauthorized', reason);
    }
    if (row.role === 'client') {
      const prev = this.lastSeen.get(row.name) ?? 0;
      const now = Date.now();
      this.lastSeen.set(row.name, now);
      this.ops.events.emit({ type: 'client-seen', client: row.name, at: now });
      if (now - prev > 5000) this.db.touch(row.name, now);
    }
    return { name: row.name, role: row.role };
  }

  private refuse(round: number | null, client: string, status: number, code: string, reason: string): never {
    this.db.refuse(round, client, code, reason);
    this.ops.events.emit({ type: 'refusal', client, reason: code });
    this.log(`refused upload from ${client}${round !== null ? ` for round ${round + 1}` : ''}: ${code}: ${reason}`);
    throw new HttpError(status, code, reason);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const p = url.pathname;
    const m = req.method ?? 'GET';
    if (m === 'GET' && p === '/v1/health') return sendJson(res, 200, { ok: true, phase: this.phase });
    if (m === 'GET' && p === '/v1/status') return this.status(req, res);
    if (m === 'GET' && p === '/v1/openapi.json') return sendJson(res, 200, openApiDocument(this.url));
    if (this.opsHttp && (await this.opsHttp.handle(req, res))) return;
    const who = this.auth(req);
    if (who.role !== 'client') throw new HttpError(403, 'forbidden', 'this endpoint is for clients');
    if (m === 'POST' && p === '/v1/join')
      return sendJson(res, 200, this.joinInfo(who.name, await readBody(req, 64 * 1024)));
    const file = /^\/v1\/model\/files\/([^/]+)$/.exec(p);
    if (m === 'GET' && file) return this.sendModelFile(req, res, who.name, decodeURIComponent(file[1]!));
    if (m === 'GET' && p === '/v1/round') return sendJson(res, 200, this.roundStatus(who.name));
    const pay = /^\/v1\/round\/(\d+)\/payload$/.exec(p);
    if (m === 'GET' && pay) return this.sendPayload(res, who.name, Number(pay[1]), url.searchParams);
    const sa = /^\/v1\/round\/(\d+)\/secagg\/([a-z]+)$/.exec(p);
    if (sa && (SECAGG_ACTIONS as readonly string[]).includes(sa[2]!))
      return this.secureRequest(req, res, who.name, Number(sa[1]), sa[2] as SecAggAction);
    const up = /^\/v1\/round\/(\d+)\/update$/.exec(p);
    if (m === 'POST' && up) return this.receiveUpdate(req, res, who.name, Number(up[1]));
    throw new HttpError(404, 'not-found', `no endpoint ${m} ${p}`);
  }

  private joinInfo(client: string, body: Buffer): JoinInfo {
    const c = this.cfg;
    const a = this.ctx.server.settings;
    let offer: JoinRequest['codecs'];
    try {
      offer = joinRequestSchema.parse(body.length > 0 ? JSON.parse(body.toString('utf8')) : {}).codecs;
    } catch (e) {
      throw new HttpError(
        400,
        'bad-request',
        `the join body is not a valid JoinRequest: ${(e as Error).message.slice(0, 300)}`,
      );
    }
    let compression: JoinInfo['compression'];
    if (this.codecLayouts) {
      if (!offer)
        throw new HttpError(
          422,
          'codec',
          `this run compresses its round traffic (codec ${c.compression.codec}${c.compression.topk !== null ? `, topk ${c.compression.topk}` : ''}); client ${client} offers no codec (an older client?)`,
        );
      try {
        compression = negotiate(c.compression, offer, this.codecLayouts, `client ${client}`);
      } catch (e) {
        throw new HttpError(422, 'codec', (e as Error).message);
      }
    }
    return {
      protocol: PROTOCOL,
      ...(compression ? { compression } : {}),
      client,
      rounds: c.rounds,
      pollSeconds: this.net.pollSeconds,
      model: this.artifact,
      training: {
        dataSeed: clientDataSeed(c.seed, client),
        batchSize: c.algorithm.local.batchSize,
        maxLength: c.data.maxLength,
        template: c.data.template ?? null,
        local: { ...c.algorithm.local, proximal: a.local.proximal },
        adapterLora: a.adapterLora,
        emulatorLora: a.emulatorLora,
        privacy: uploadTransform(this.ctx.aggregator.plan),
        secureAggregation: this.secureJoin(),
      },
    };
  }

  /** What clients need for secure aggregation (null without it). */
  private secureJoin(): SecureJoin | null {
    const plan = this.ctx.aggregator.plan;
    return plan.secure ? { ...plan.secure, uniform: plan.privacy !== null } : null;
  }

  /** A round under secure aggregation: the phases of ./secagg.ts take the place of plain uploads. */
  private async secureExchange(x: RoundExchange, sampled: string[]): Promise<RoundOutcome> {
    const round = x.round;
    const registered = new Map(this.db.clients().map((c) => [c.name, c.samples]));
    const sec = new SecureRoundServer({
      round,
      nonce: this.current!.nonce,
      start: x.start,
      secure: this.secureJoin()!,
      expected: () => {
        const valid = this.db.activeClientNames();
        return sampled.filter((c) => valid.has(c));
      },
      deadlineSeconds: this.net.roundDeadlineSeconds,
      weights: (cs) =>
        fedAvgWeights(
          this.cfg,
          cs.map((c) => ({ ...c, trusted: registered.get(c.client) ?? null })),
          this.log,
          round,
        ),
      db: this.db,
      stateDir: this.stateDir,
      steps: this.cfg.algorithm.local.steps,
      log: this.log,
      bytes: (client, direction, n) => this.ops.events.emit({ type: 'bytes', direction, bytes: n, client }),
      // Round traffic: the payload and the masked input (the update); the protocol's other
      // messages are counted in the round's secure_aggregation entry.
      accepted: (client, n) => {
        this.db.addTraffic(round, client, 'up', n);
        x.emit({ type: 'update', round, client, bytes: n });
      },
      refuse: (client, status, code, reason) => this.refuse(round, client, status, code, reason),
      stopping: () => this.httpServer === null,
    });
    this.secure = sec;
    const { outcome, reason } = await sec.run();
    this.current!.phase = 'closing';
    this.setPhase('aligning', round + 1 < this.cfg.rounds ? round + 1 : null);
    return {
      sampled,
      updates: [],
      ...(outcome ? { secure: outcome } : {}),
      traffic: this.db.traffic(round),
      resent: this.db.resent(round),
      extra: reason ? { secure_aggregation_failed: reason } : {},
    };
  }

  private secureRequest(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    client: string,
    round: number,
    action: SecAggAction,
  ): Promise<void> {
    const sec = this.secure;
    if (!sec || sec.round !== round || this.current?.round !== round)
      this.refuse(round, client, 409, 'wrong-round', `round ${round + 1} is not in secure aggregation`);
    return sec.handle(req, res, client, action);
  }

  private roundStatus(client: string): RoundStatus {
    const rounds = this.cfg.rounds;
    if (this.phase === 'done') return { state: 'done', round: rounds, rounds };
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
      'content-type': 'application/octet-stream',
      'content-length': len,
      'accept-ranges': 'bytes',
      etag: `"${f.sha256}"`,
      ...(status === 206 ? { 'content-range': `bytes ${start}-${end}/${f.size}` } : {}),
    });
    const stream = fs.createReadStream(file, { start, end });
    let sent = 0;
    stream.on('data', (c) => (sent += c.length));
    stream.on('close', () => {
      this.db.addTraffic(-1, client, 'join', sent);
      this.ops.events.emit({ type: 'bytes', direction: 'join', bytes: sent, client });
    });
    stream.on('error', () => res.destroy());
    stream.pipe(res);
  }

  private sendPayload(res: http.ServerResponse, client: string, round: number, q: URLSearchParams): void {
    const cur = this.current;
    if (!cur || cur.round !== round || cur.phase !== 'open')
      throw new HttpError(409, 'wrong-round', `round ${round + 1} is not open`);
    if (!cur.sampled.includes(client))
      throw new HttpError(403, 'not-sampled', `client ${client} is not sampled in round ${round + 1}`);
    const emulatorVersion = Number(q.get('emulatorVersion') ?? '-1');
    let body: Buffer;
    const streams = cur.exchange.compressed;
    if (streams) {
      // the versions of the compressed streams the client holds (0: nothing yet)
      const held = (k: string) => {
        const v = Number(q.get(k) ?? '0');
        if (!Number.isSafeInteger(v) || v < 0)
          throw new HttpError(400, 'bad-request', `query ${k}=${q.get(k)} is not a non-negative integer`);
        return v;
      };
      body = streams.payloadFor(held('adapterVersion'), held('emulatorVersion'));
    } else
      body = cur.exchange.payloadFor(client, cur.nonce, Number.isInteger(emulatorVersion) ? emulatorVersion : -1).body;
    // Counted once per client and round (the simulation's definition); a payload fetched again is re-sent.
    const again = this.db.hasTraffic(round, client, 'down');
    this.db.addTraffic(round, client, again ? 'down-resent' : 'down', body.length);
    this.ops.events.emit({ type: 'bytes', direction: 'down', bytes: body.length, client });
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
    res.end(body);
  }

  /** The round's open, the client sampled and not yet uploaded: checked before a byte of the body is read. */
  private admitUpload(client: string, round: number): OpenRound {
    if (this.db.hasUpload(round, client))
      this.refuse(round, client, 409, 'duplicate', `client ${client} already uploaded for round ${round + 1}`);
    const cur = this.current;
    if (!cur || cur.round !== round || cur.phase !== 'open') {
      const done = round < this.completedRounds || (cur !== null && round === cur.round);
      this.refuse(
        round,
        client,
        409,
        done ? 'round-closed' : 'wrong-round',
        done ? `round ${round + 1} is closed: late uploads are refused` : `round ${round + 1} is not open`,
      );
    }
    if (!cur.sampled.includes(client))
      this.refuse(round, client, 403, 'not-sampled', `client ${client} is not sampled in round ${round + 1}`);
    return cur;
  }

  private async receiveUpdate(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    client: string,
    round: number,
  ): Promise<void> {
    this.admitUpload(client, round);
    let metrics: UploadMetrics;
    try {
      metrics = uploadMetricsSchema.parse(JSON.parse(String(req.headers[METRICS_HEADER] ?? 'null')));
    } catch (e) {
      this.refuse(
        round,
        client,
        422,
        'bad-metadata',
        `header ${METRICS_HEADER} is missing or invalid: ${(e as Error).message.slice(0, 200)}`,
      );
    }
    // Bounded concurrency: bodies in memory at once are at most maxConcurrentUploads x maxUploadBytes.
    if (this.uploadsInFlight >= this.net.maxConcurrentUploads) {
      throw new HttpError(503, 'busy', `${this.uploadsInFlight} uploads are being received; retry shortly`);
    }
    this.uploadsInFlight++;
    // Body bytes that arrive for an upload not accepted (cut off, refused after reading) are counted
    // apart from the round's traffic, as re-sent.
    let received = 0;
    let accepted = false;
    req.on('data', (c: Buffer) => (received += c.length));
    try {
      await this.readUpdate(req, res, client, round, metrics);
      accepted = true;
    } finally {
      if (!accepted && received > 0) this.db.addTraffic(round, client, 'up-resent', received);
    }
  }

  private async readUpdate(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    client: string,
    round: number,
    metrics: UploadMetrics,
  ): Promise<void> {
    let body: Buffer;
    try {
      body = await readBody(req, this.net.maxUploadBytes).catch((e: unknown) => {
        if (e instanceof HttpError) this.refuse(round, client, e.status, e.code, e.message);
        throw e;
      });
    } finally {
      this.uploadsInFlight--;
    }
    // The round may have closed while the body arrived.
    const cur = this.admitUpload(client, round);
    let meta: unknown;
    if (cur.exchange.compressed) {
      // a compressed body carries only tensors: its round, nonce and data size come in a header
      try {
        meta = JSON.parse(String(req.headers[UPDATE_HEADER] ?? 'null'));
      } catch (e) {
        this.refuse(round, client, 422, 'bad-metadata', `header ${UPDATE_HEADER} is not JSON: ${(e as Error).message}`);
      }
    }
    const c = cur.exchange.check(body, meta);
    if (!c.ok) this.refuse(round, client, 422, c.code, c.reason);
    if (c.round !== round)
      this.refuse(
        round,
        client,
        409,
        'wrong-round',
        `the body is for round ${c.round + 1} (metadata "round"), the URL for round ${round + 1}`,
      );
    if (c.nonce !== cur.nonce)
      this.refuse(
        round,
        client,
        409,
        'bad-nonce',
        `metadata "nonce" does not match round ${round + 1}'s (a replay or a stale round)`,
      );
    const file = path.join('uploads', `round-${String(round).padStart(4, '0')}`, `${client}.safetensors`);
    saveState(path.join(this.stateDir, file), c.state);
    if (
      !this.db.addUpload({
        round,
        client,
        samples: c.samples,
        file,
        bytes: body.length,
        metrics: JSON.stringify(metrics),
        received_at: Date.now(),
      })
    ) {
      this.refuse(round, client, 409, 'duplicate', `client ${client} already uploaded for round ${round + 1}`);
    }
    this.db.addTraffic(round, client, 'up', body.length);
    this.ops.events.emit({ type: 'bytes', direction: 'up', bytes: body.length, client });
    cur.exchange.emit({ type: 'update', round, client, bytes: body.length });
    this.log(
      `round ${round + 1}: upload from ${client} accepted (${c.samples} samples reported, loss ${metrics.meanLoss.toFixed(4)})`,
    );
    sendJson(res, 200, { accepted: true, round });
  }

  private status(req: http.IncomingMessage, res: http.ServerResponse): void {
    const tok = bearer(req.headers.authorization);
    const row = tok ? this.db.clientByToken(tok) : null;
    if (tok && !row) throw new HttpError(401, 'unauthorized', 'unknown or revoked token');
    const info: StatusInfo = {
      protocol: PROTOCOL,
      algorithm: this.cfg.algorithm.name,
      rounds: this.cfg.rounds,
      completedRounds: this.completedRounds,
      phase: this.phase,
      currentRound: this.current?.round ?? null,
    };
    if (this.phase === 'done') {
      // Where the results are is told to admins only (it is a path on the server).
      info.finished = {
        at: this.finishedAt ?? Date.now(),
        round: this.completedRounds,
        closesAt: (this.finishedAt ?? Date.now()) + this.net.lingerSeconds * 1000,
        ...(row?.role === 'admin' ? { results: this.stateDir } : {}),
      };
    }
    if (row?.role === 'admin') {
      info.clients = this.db
        .clients()
        .filter((c) => c.role === 'client')
        .map((c) => ({
          name: c.name,
          role: c.role,
          lastSeen: this.lastSeen.get(c.name) ?? c.last_seen,
          uploads: this.db.uploadCount(c.name),
          ...(c.revoked_at !== null ? { revokedAt: c.revoked_at } : {}),
        }));
      info.roundsDetail = this.db.rounds().map((r) => ({
        round: r.round,
        status: r.status,
        sampled: JSON.parse(r.sampled) as string[],
        uploads: this.db.uploads(r.round).map((u) => u.client),
        metrics: r.metrics ? (JSON.parse(r.metrics) as unknown) : null,
      }));
    }
    sendJson(res, 200, info);
  }
}

/** The driver's progress on a server: log lines only. */
function logProgress(log: Log): Progress {
  return { start() {}, tick() {}, stop() {}, log };
}

/** A deployed run: prepares (or resumes), serves, runs every round, and returns when it is over. */
export class FedServer {
  private transport: NetworkTransport | null = null;

  /** `o.logger`: a structured logger for per-request lines (request ids). */
  constructor(
    private readonly cfg: RunConfig,
    private readonly stateDir: string,
    private readonly log: Log = (l) => process.stdout.write(`${l}\n`),
    private readonly o: { logger?: Logger } = {},
  ) {}

  get url(): string {
    return this.transport?.url ?? '';
  }

  async run(): Promise<Summary | null> {
    const cfg = this.cfg;
    const why = strategyOf(cfg.algorithm.name).notDeployable;
    if (why)
      throw new Error(
        `algorithm ${cfg.algorithm.name} cannot be deployed: ${why} (use ${ALGORITHMS.filter((a) => !strategyOf(a).notDeployable).join(', ')})`,
      );
    checkServerData(cfg);
    const transport = (this.transport = new NetworkTransport(cfg, this.stateDir, this.log, this.o.logger ?? null));
    try {
      const cfgKey = JSON.stringify({ ...cfg, server: undefined, rounds: undefined, eval: undefined });
      const prevKey = transport.db.getMeta('config');
      if (prevKey && prevKey !== cfgKey)
        throw new Error(
          `state ${this.stateDir} belongs to a run with a different configuration; use a fresh --state folder`,
        );
      transport.db.setMeta('config', cfgKey);
      const exp = await buildServerData(cfg);
      for (const w of exp.warnings) this.log(`warning: ${w}`);
      // Round events feed the dashboard and metrics; bytes are counted as they move (not from entries).
      const onEvent = federationToOps(transport.ops.events, { bytesFromEntries: false });
      return await runFederation(exp, transport, {
        outDir: this.stateDir,
        progress: logProgress(this.log),
        hooks: { onEvent },
      });
    } catch (e) {
      await transport.close();
      throw e;
    }
  }

  async close(): Promise<void> {
    await this.transport?.close();
  }
}
