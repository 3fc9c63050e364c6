// Secure aggregation applied to adapter updates: what a client encodes (its weighted update in
// fixed point), what the server decodes (the sum), and one whole round run in-process for the
// simulation, with the same messages the network carries.
import * as crypto from 'node:crypto';
import { stateDiff, type LoraState } from '../fedbiot/lora-state.js';
import { decodeFixedSum, encodeFixed, fixedPoint, type FixedPoint } from './fixed-point.js';
import { SecAggClient, SecAggServer, type Roster } from './protocol.js';

export interface SecureSettings {
  range: number;
  threshold: number;
}

/** Total number of values of a state (the masked vector's length). */
export function stateLength(s: LoraState): number {
  let n = 0;
  for (const v of s.values()) n += v.data.length;
  return n;
}

/**
 * The client's weight in the masked sum: its share of the roster's samples for FedAvg, 1 under
 * DP (DP-FedAvg weighs clients alike). The server divides the sum by the survivors' total weight.
 */
export function clientWeight(roster: Roster, client: string, uniform: boolean): number {
  if (uniform) return 1;
  const total = roster.entries.reduce((a, e) => a + e.samples, 0);
  const me = roster.entries.find((e) => e.client === client);
  if (!me) throw new Error(`secure aggregation: '${client}' is not on the roster`);
  return me.samples / total;
}

export function rosterFixedPoint(roster: Roster, s: SecureSettings): FixedPoint {
  return fixedPoint(s.range, roster.entries.length);
}

/** weight * (trained - start), each value clamped to [-range, range] first, in fixed point. */
export function encodeUpdate(
  start: LoraState,
  trained: LoraState,
  weight: number,
  s: SecureSettings,
  fp: FixedPoint,
): { encoded: Uint32Array; clamped: number } {
  const d = stateDiff(trained, start, 'secure upload');
  const flat = new Float64Array(stateLength(d));
  let o = 0;
  for (const v of d.values()) {
    for (let i = 0; i < v.data.length; i++) flat[o++] = Math.min(s.range, Math.max(-s.range, v.data[i]!)) * weight;
  }
  return encodeFixed(flat, s.range, fp);
}

/** The unmasked fixed-point sum back as a state shaped like `like`. */
export function decodeSum(sum: Uint32Array, fp: FixedPoint, like: LoraState): LoraState {
  const flat = decodeFixedSum(sum, fp);
  const out: LoraState = new Map();
  let o = 0;
  for (const [name, v] of like) {
    out.set(name, { shape: [...v.shape], data: Float32Array.from(flat.subarray(o, o + v.data.length)) });
    o += v.data.length;
  }
  return out;
}

/** The survivors' total weight: what divides the sum into their (weighted) mean. */
export function survivorWeight(roster: Roster, survivors: readonly string[], uniform: boolean): number {
  return survivors.reduce((a, c) => a + clientWeight(roster, c, uniform), 0);
}

export interface SecureRoundResult {
  /** Sum of the survivors' weighted updates. */
  sum: LoraState;
  divisor: number;
  survivors: string[];
  dropped: string[];
  /** Protocol bytes, all clients together (keys, envelopes, masked inputs, shares). */
  bytesUp: number;
  bytesDown: number;
  clamped: number;
  /** What the server held per client: the masked inputs. */
  stored: Map<string, Uint32Array>;
}

/**
 * One secure round in-process. `dropAfterShares` lists clients that vanish after the share phase
 * (their masks are then removed with the survivors' shares).
 */
export async function simulateSecureRound(o: {
  round: number;
  start: LoraState;
  uploads: ReadonlyArray<{ client: string; samples: number; state: LoraState }>;
  settings: SecureSettings;
  uniform: boolean;
  dropAfterShares?: readonly string[];
}): Promise<SecureRoundResult> {
  const n = stateLength(o.start);
  const server = new SecAggServer(o.round, crypto.randomBytes(16).toString('hex'), n, o.settings.threshold);
  const clients = new Map(o.uploads.map((u) => [u.client, new SecAggClient(u.client)]));
  let up = 0;
  let down = 0;
  const json = (x: unknown) => Buffer.byteLength(JSON.stringify(x));
  for (const u of o.uploads) {
    const a = clients.get(u.client)!.advertise(u.samples);
    up += json(a);
    server.addAdvertise(a);
  }
  const roster = server.fixRoster();
  down += json(roster) * clients.size;
  for (const c of clients.values()) {
    const s = await c.share(roster);
    up += json(s);
    server.addShares(s);
  }
  const fp = rosterFixedPoint(roster, o.settings);
  let clamped = 0;
  for (const u of o.uploads) {
    if (o.dropAfterShares?.includes(u.client)) continue;
    const env = server.deliveries(u.client);
    down += json(env);
    const { encoded, clamped: c } = encodeUpdate(
      o.start,
      u.state,
      clientWeight(roster, u.client, o.uniform),
      o.settings,
      fp,
    );
    clamped += c;
    const y = clients.get(u.client)!.maskedInput(env, encoded);
    up += y.byteLength;
    server.addMasked(u.client, y);
  }
  const req = server.unmaskRequest();
  for (const s of req.survivors) {
    down += json(req);
    const r = clients.get(s)!.unmask(req);
    up += json(r);
    server.addUnmask(r);
  }
  const res = await server.sum();
  return {
    sum: decodeSum(res.sum, fp, o.start),
    divisor: survivorWeight(roster, res.survivors, o.uniform),
    survivors: res.survivors,
    dropped: res.dropped,
    bytesUp: up,
    bytesDown: down,
    clamped,
    stored: server.masked,
  };
}
