// Secure aggregation over HTTP: the four phases of src/secagg/protocol.ts carried between
// `fedbiot server` and `fedbiot client`. The protocol itself (keys, Shamir shares, masks, unmasking)
// is the one in src/secagg/; this module only moves its messages, waits for each phase to fill or
// its deadline to pass, and keeps what the server stores per client: the masked input, never an
// update.
//
//   POST /v1/round/:r/secagg/keys      {cPk, sPk, samples}        1 advertise two X25519 public keys
//   GET  /v1/round/:r/secagg/roster    -> Roster                  (202 {waiting} while keys come in)
//   POST /v1/round/:r/secagg/shares    {envelopes}                2 sealed Shamir shares for each peer
//   GET  /v1/round/:r/secagg/envelopes -> {envelopes} for this client (202 while shares come in)
//   POST /v1/round/:r/secagg/masked    the masked input: `length` uint32 words, little-endian, with
//                                      the x-fedbiot-metrics header    3 masked input
//   GET  /v1/round/:r/secagg/unmask    -> UnmaskRequest           (202 while masked inputs come in)
//   POST /v1/round/:r/secagg/unmask    {sShares, bShares}         4 shares to remove the masks
//
// A client trains between phases 2 and 3. Each phase closes when every client expected in it has
// answered, or at its deadline (server.roundDeadlineSeconds from the phase's start) with those that
// did: clients that advertised form the roster; clients that shared are expected to mask; those
// that masked are the survivors, and the masks of the others are rebuilt from the survivors'
// shares. A phase short of the threshold ends the round without aggregation (the adapter stays).
// The masked inputs are written under STATE/uploads/ (the server's record of what it received).
import * as fs from 'node:fs';
import type * as http from 'node:http';
import * as path from 'node:path';
import { z } from 'zod';
import type { LoraState } from '../../fedbiot/lora-state.js';
import { SecAggClient, SecAggServer, type Roster, type UnmaskRequest } from '../../secagg/protocol.js';
import {
  clientWeight,
  decodeSum,
  encodeUpdate as encodeSecureUpdate,
  rosterFixedPoint,
  stateLength,
  survivorWeight,
} from '../../secagg/round.js';
import type { SecureOutcome } from '../driver.js';
import { type ClientTransport, HttpError, readBody, replyReason, request, sendJson, sleep } from './http.js';
import { METRICS_HEADER, uploadMetricsSchema, type SecureJoin, type UploadMetrics } from './protocol.js';
import type { ServerDb } from './db.js';

const key = z.string().min(1).max(100);
const name = z.string().min(1).max(200);

export const secaggKeysSchema = z.strictObject({ cPk: key, sPk: key, samples: z.number().int().positive() });
export const rosterSchema = z.object({
  round: z.number().int().nonnegative(),
  nonce: z.string(),
  threshold: z.number().int().min(2),
  length: z.number().int().positive(),
  entries: z.array(z.object({ client: name, samples: z.number().int().positive(), cPk: key, sPk: key })),
});
export const envelopeSchema = z.strictObject({ from: name, to: name, box: z.string().max(10_000) });
export const envelopesSchema = z.strictObject({ envelopes: z.array(envelopeSchema) });
export const unmaskRequestSchema = z.object({ survivors: z.array(name), dropped: z.array(name) });
export const unmaskResponseSchema = z.strictObject({
  sShares: z.record(name, z.string().max(200)),
  bShares: z.record(name, z.string().max(200)),
});
/** 202: the phase the client asks about has not begun; ask again after pollSeconds. */
export const waitingSchema = z.object({ waiting: z.string() });

export const SECAGG_ACTIONS = ['keys', 'roster', 'shares', 'envelopes', 'masked', 'unmask'] as const;
export type SecAggAction = (typeof SECAGG_ACTIONS)[number];

/** uint32 words as little-endian bytes, and back: the masked input's wire form on any host. */
export function wordsToBytes(w: Uint32Array): Buffer {
  const b = Buffer.alloc(w.length * 4);
  for (let i = 0; i < w.length; i++) b.writeUInt32LE(w[i]!, 4 * i);
  return b;
}

export function bytesToWords(b: Buffer): Uint32Array {
  const w = new Uint32Array(b.length / 4);
  for (let i = 0; i < w.length; i++) w[i] = b.readUInt32LE(4 * i);
  return w;
}

type Phase = 'keys' | 'shares' | 'masked' | 'unmask' | 'done';
const JSON_LIMIT = 1 << 20;

export interface SecureRoundDeps {
  round: number;
  nonce: string;
  /** The round's adapter: the shapes of the sum. */
  start: LoraState;
  secure: SecureJoin;
  /** The sampled clients still valid (not revoked). */
  expected: () => string[];
  deadlineSeconds: number;
  /** The driver's FedAvg weights for the advertising clients (reported = advertised samples). */
  weights: (clients: { client: string; reported: number }[]) => number[];
  db: ServerDb;
  stateDir: string;
  /** Local steps per round (the step time reported from each survivor's metrics). */
  steps: number;
  log: (line: string) => void;
  /** Counts one protocol body (live metrics; the round's totals go into the outcome). */
  bytes: (client: string, direction: 'up' | 'down', n: number) => void;
  /** A masked input was accepted: the client's update of the round, as round traffic counts it. */
  accepted: (client: string, bytes: number) => void;
  /** Records and throws a refusal. */
  refuse: (client: string, status: number, code: string, reason: string) => never;
  /** True when the run is closing (stop waiting). */
  stopping?: () => boolean;
}

/** The server's side of one secure round: the HTTP phases around SecAggServer. */
export class SecureRoundServer {
  readonly protocol: SecAggServer;
  private phase: Phase = 'keys';
  private readonly ads = new Map<string, { cPk: string; sPk: string; samples: number }>();
  private readonly metrics = new Map<string, UploadMetrics>();
  private readonly responded = new Set<string>();
  private roster: Roster | null = null;
  private request: UnmaskRequest | null = null;
  private bytesUp = 0;
  private bytesDown = 0;

  constructor(private readonly d: SecureRoundDeps) {
    this.protocol = new SecAggServer(d.round, d.nonce, stateLength(d.start), d.secure.threshold);
  }

  get round(): number {
    return this.d.round;
  }

  /** Runs the phases to the unmasked sum; null (with the reason logged) when the round cannot finish. */
  async run(): Promise<{ outcome: SecureOutcome | null; reason: string | null }> {
    const t0 = performance.now();
    const r = this.d.round + 1;
    const fail = (reason: string) => {
      this.phase = 'done';
      this.d.log(`round ${r}: secure aggregation ended without an aggregate: ${reason}`);
      return { outcome: null, reason };
    };
    await this.wait(() => this.d.expected().every((c) => this.ads.has(c)));
    const advertised = this.d.expected().filter((c) => this.ads.has(c));
    if (advertised.length < 2)
      return fail(`${advertised.length} client(s) advertised keys by the deadline; at least 2 are needed`);
    const w = this.d.weights(advertised.map((c) => ({ client: c, reported: this.ads.get(c)!.samples })));
    advertised.forEach((c, i) => this.protocol.addAdvertise({ client: c, samples: w[i]!, ...this.keysOf(c) }));
    const roster = (this.roster = this.protocol.fixRoster());
    this.phase = 'shares';
    this.d.log(`round ${r}: secure aggregation roster of ${roster.entries.length}, threshold ${roster.threshold}`);
    await this.wait(() => roster.entries.every((e) => this.protocol.sharedClients.includes(e.client)));
    const shared = this.protocol.sharedClients;
    if (shared.length < roster.threshold)
      return fail(`${shared.length} client(s) shared their keys, below the threshold ${roster.threshold}`);
    this.phase = 'masked';
    await this.wait(() => shared.every((c) => this.protocol.masked.has(c)));
    try {
      this.request = this.protocol.unmaskRequest();
    } catch (e) {
      return fail((e as Error).message);
    }
    const req = this.request;
    this.phase = 'unmask';
    if (req.dropped.length)
      this.d.log(`round ${r}: ${req.dropped.join(',')} shared keys but sent no masked input; unmasking without them`);
    await this.wait(() => req.survivors.every((c) => this.responded.has(c)));
    let sum: LoraState;
    let divisor: number;
    try {
      const res = await this.protocol.sum();
      sum = decodeSum(res.sum, rosterFixedPoint(roster, this.d.secure), this.d.start);
      divisor = survivorWeight(roster, res.survivors, this.d.secure.uniform);
    } catch (e) {
      return fail((e as Error).message);
    }
    this.phase = 'done';
    const steps = (c: string) => this.metrics.get(c)!;
    return {
      reason: null,
      outcome: {
        sum,
        divisor,
        survivors: req.survivors,
        dropped: req.dropped,
        bytesUp: this.bytesUp,
        bytesDown: this.bytesDown,
        seconds: (performance.now() - t0) / 1000,
        reports: req.survivors.map((c) => ({
          client: c,
          reported: this.ads.get(c)!.samples,
          meanLoss: steps(c).meanLoss,
          stepSeconds: steps(c).seconds / Math.max(1, this.d.steps),
        })),
      },
    };
  }

  /** Waits until `done()` or the phase's deadline. */
  private async wait(done: () => boolean): Promise<void> {
    const until = Date.now() + this.d.deadlineSeconds * 1000;
    while (!done() && Date.now() < until && !this.d.stopping?.()) await sleep(50);
  }

  private keysOf(c: string): { cPk: string; sPk: string } {
    const a = this.ads.get(c)!;
    return { cPk: a.cPk, sPk: a.sPk };
  }

  private reply(res: http.ServerResponse, client: string, body: unknown): void {
    this.count(client, 'down', Buffer.byteLength(JSON.stringify(body)));
    sendJson(res, 200, body);
  }

  private count(client: string, direction: 'up' | 'down', n: number): void {
    if (direction === 'up') this.bytesUp += n;
    else this.bytesDown += n;
    this.d.bytes(client, direction, n);
  }

  private async json<T>(req: http.IncomingMessage, client: string, schema: z.ZodType<T>, what: string): Promise<T> {
    const body = await readBody(req, JSON_LIMIT);
    this.count(client, 'up', body.length);
    try {
      return schema.parse(JSON.parse(body.toString('utf8')));
    } catch (e) {
      this.d.refuse(client, 422, 'bad-secagg-message', `${what}: ${(e as Error).message.slice(0, 300)}`);
    }
  }

  private closed(client: string, action: string): never {
    this.d.refuse(
      client,
      409,
      'secagg-phase',
      `round ${this.d.round + 1}: secure aggregation is past the phase of '${action}' (${this.phase})`,
    );
  }

  /** One request of a sampled client. */
  async handle(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    client: string,
    action: SecAggAction,
  ): Promise<void> {
    const m = req.method ?? 'GET';
    const r = this.d.round + 1;
    if (!this.d.expected().includes(client))
      this.d.refuse(client, 403, 'not-sampled', `client ${client} is not sampled in round ${r}`);
    const waiting = (what: string) => sendJson(res, 202, { waiting: what });
    const inRoster = () => {
      if (!this.roster?.entries.some((e) => e.client === client))
        this.d.refuse(
          client,
          409,
          'not-in-roster',
          `client ${client} is not on round ${r}'s secure-aggregation roster`,
        );
    };
    const fault = (e: unknown): never =>
      this.d.refuse(client, 422, 'bad-secagg-message', (e as Error).message.slice(0, 300));
    if (m === 'POST' && action === 'keys') {
      if (this.phase !== 'keys') this.closed(client, action);
      const k = await this.json(req, client, secaggKeysSchema, 'keys');
      for (const [what, v] of [
        ['cPk', k.cPk],
        ['sPk', k.sPk],
      ] as const)
        if (Buffer.from(v, 'base64').length !== 32)
          this.d.refuse(client, 422, 'bad-secagg-message', `keys: ${what} is not a base64 32-byte X25519 key`);
      if (this.phase !== 'keys') this.closed(client, action);
      this.ads.set(client, k);
      return this.reply(res, client, { accepted: true });
    }
    if (m === 'GET' && action === 'roster') {
      if (this.phase === 'keys') return waiting('roster');
      inRoster();
      return this.reply(res, client, this.roster);
    }
    if (m === 'POST' && action === 'shares') {
      if (this.phase !== 'shares') this.closed(client, action);
      inRoster();
      const s = await this.json(req, client, envelopesSchema, 'shares');
      if (this.phase !== 'shares') this.closed(client, action);
      try {
        this.protocol.addShares({ client, envelopes: s.envelopes });
      } catch (e) {
        fault(e);
      }
      return this.reply(res, client, { accepted: true });
    }
    if (m === 'GET' && action === 'envelopes') {
      if (this.phase === 'keys' || this.phase === 'shares') return waiting('envelopes');
      if (!this.protocol.sharedClients.includes(client))
        this.d.refuse(client, 409, 'not-shared', `client ${client} did not share its keys in round ${r}`);
      return this.reply(res, client, { envelopes: this.protocol.deliveries(client) });
    }
    if (m === 'POST' && action === 'masked') return this.masked(req, res, client);
    if (m === 'GET' && action === 'unmask') {
      if (this.phase !== 'unmask' && this.phase !== 'done') return waiting('unmask');
      if (!this.request?.survivors.includes(client))
        this.d.refuse(client, 409, 'not-survivor', `client ${client} sent no masked input in round ${r}`);
      return this.reply(res, client, this.request);
    }
    if (m === 'POST' && action === 'unmask') {
      if (this.phase !== 'unmask') this.closed(client, action);
      const u = await this.json(req, client, unmaskResponseSchema, 'unmask');
      if (this.phase !== 'unmask') this.closed(client, action);
      try {
        this.protocol.addUnmask({ client, ...u });
      } catch (e) {
        fault(e);
      }
      this.responded.add(client);
      return this.reply(res, client, { accepted: true });
    }
    throw new HttpError(404, 'not-found', `no endpoint ${m} /v1/round/${this.d.round}/secagg/${action}`);
  }

  private async masked(req: http.IncomingMessage, res: http.ServerResponse, client: string): Promise<void> {
    const round = this.d.round;
    if (this.phase !== 'masked') this.closed(client, 'masked');
    let metrics: UploadMetrics;
    try {
      metrics = uploadMetricsSchema.parse(JSON.parse(String(req.headers[METRICS_HEADER] ?? 'null')));
    } catch (e) {
      this.d.refuse(
        client,
        422,
        'bad-metadata',
        `header ${METRICS_HEADER} is missing or invalid: ${(e as Error).message.slice(0, 200)}`,
      );
    }
    const want = this.protocol.length * 4;
    const body = await readBody(req, want);
    this.count(client, 'up', body.length);
    if (body.length !== want)
      this.d.refuse(client, 422, 'bad-length', `the masked input has ${body.length} bytes, the round expects ${want}`);
    if (this.phase !== 'masked') this.closed(client, 'masked');
    try {
      this.protocol.addMasked(client, bytesToWords(body));
    } catch (e) {
      this.d.refuse(client, 409, 'secagg-phase', (e as Error).message);
    }
    // What the server keeps per client: the masked input as received.
    const file = path.join('uploads', `round-${String(round).padStart(4, '0')}`, `${client}.masked`);
    fs.mkdirSync(path.dirname(path.join(this.d.stateDir, file)), { recursive: true });
    fs.writeFileSync(path.join(this.d.stateDir, file), body);
    this.metrics.set(client, metrics);
    this.d.db.addUpload({
      round,
      client,
      samples: this.ads.get(client)!.samples,
      file,
      bytes: body.length,
      metrics: JSON.stringify(metrics),
      received_at: Date.now(),
    });
    this.d.accepted(client, body.length);
    this.d.log(`round ${round + 1}: masked input from ${client} accepted (loss ${metrics.meanLoss.toFixed(4)})`);
    sendJson(res, 200, { accepted: true, round });
  }
}

export interface SecureClientRound {
  t: ClientTransport;
  round: number;
  client: string;
  samples: number;
  secure: SecureJoin;
  /** The adapter the round started from. */
  start: LoraState;
  pollSeconds: number;
  log: (line: string) => void;
  /** Retries a request on network errors. */
  retry: <T>(what: string, f: () => Promise<T>) => Promise<T>;
  /** Local training; the state to upload (after any clipping) and the metrics. */
  train: () => Promise<{ state: LoraState; metrics: UploadMetrics }>;
  /** Tests of dropouts: exit the process before / after the masked input goes out. */
  exitBeforeMasked?: boolean;
  exitAfterMasked?: boolean;
}

/**
 * A client's part of one secure round, from key advertisement to its unmask response. Throws an
 * HttpError when the server refuses a step (the round went on without this client).
 */
export async function secureClientRound(o: SecureClientRound): Promise<void> {
  const r = o.round + 1;
  const call = async (method: 'GET' | 'POST', action: SecAggAction, body?: unknown, headers = {}) => {
    const buf =
      body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body), 'utf8');
    for (;;) {
      const reply = await o.retry(`round ${r} secure aggregation ${action}`, () =>
        request(o.t, method, `v1/round/${o.round}/secagg/${action}`, { body: buf, headers }),
      );
      if (reply.status === 202) {
        await sleep(o.pollSeconds * 1000);
        continue;
      }
      if (reply.status !== 200) {
        const why = replyReason(reply);
        throw new HttpError(reply.status, why.code, why.reason);
      }
      return JSON.parse(reply.body.toString('utf8')) as unknown;
    }
  };
  const json = { 'content-type': 'application/json' };
  const me = new SecAggClient(o.client);
  const { cPk, sPk } = me.advertise(o.samples);
  await call('POST', 'keys', { cPk, sPk, samples: o.samples }, json);
  const roster = rosterSchema.parse(await call('GET', 'roster'));
  if (roster.round !== o.round) throw new Error(`the roster is for round ${roster.round + 1}, not ${r}`);
  const up = await me.share(roster);
  await call('POST', 'shares', { envelopes: up.envelopes }, json);
  const trained = await o.train();
  const { envelopes } = envelopesSchema.parse(await call('GET', 'envelopes'));
  const { encoded, clamped } = encodeSecureUpdate(
    o.start,
    trained.state,
    clientWeight(roster, o.client, o.secure.uniform),
    o.secure,
    rosterFixedPoint(roster, o.secure),
  );
  if (clamped > 0) o.log(`round ${r}: ${clamped} value(s) of the update clamped to the range ±${o.secure.range}`);
  const y = me.maskedInput(envelopes, encoded);
  if (o.exitBeforeMasked) {
    o.log(`round ${r}: exiting before the masked input (FEDBIOT_DEBUG_EXIT_BEFORE_UPLOAD)`);
    process.exit(3);
  }
  await call('POST', 'masked', wordsToBytes(y), { [METRICS_HEADER]: JSON.stringify(trained.metrics) });
  o.log(`round ${r}: masked input sent (${y.length * 4} bytes; loss ${trained.metrics.meanLoss.toFixed(4)})`);
  if (o.exitAfterMasked) {
    o.log(`round ${r}: exiting after the masked input (FEDBIOT_DEBUG_EXIT_AFTER_UPLOAD)`);
    process.exit(3);
  }
  const req = unmaskRequestSchema.parse(await call('GET', 'unmask'));
  const { sShares, bShares } = me.unmask(req);
  await call('POST', 'unmask', { sShares, bShares }, json);
  o.log(`round ${r}: unmask shares sent (${req.survivors.length} survivors, ${req.dropped.length} dropped)`);
}
