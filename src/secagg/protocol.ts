// Secure aggregation of one round (Bonawitz et al. 2017, "Practical Secure Aggregation for
// Privacy-Preserving Machine Learning", the semi-honest variant over a complete graph), written as
// two state machines that exchange plain messages, so the simulation calls them directly and the
// deployment carries the same messages over HTTP (the server relays everything; clients never talk
// to each other).
//
//   1 advertise   client -> server: two X25519 public keys (c: share envelopes, s: pairwise masks)
//                 server -> clients: the roster of every advertised client and the threshold t
//   2 share       client -> server: t-of-n Shamir shares of its s private key and of a fresh
//                 self-mask seed b, one AES-GCM envelope per other client
//                 server -> each client: the envelopes addressed to it
//   3 masked      client -> server: y_u = x_u + PRG(b_u) + sum_{v} +-PRG(s_uv)  (mod 2^32)
//   4 unmask      server -> survivors: who survived, who dropped
//                 survivor -> server: s-shares of the dropped, b-shares of the survivors
//   The server rebuilds the dropped clients' pairwise masks and the survivors' self masks and
//   subtracts them: it learns the survivors' sum and nothing about any single x_u. A client never
//   reveals both shares of one peer, and refuses an unmask request below the threshold.
import * as crypto from 'node:crypto';
import {
  agree,
  b64,
  combineShares,
  expandMask,
  open,
  seal,
  shareSecret,
  unb64,
  x25519KeyPair,
  type KeyPair,
} from './crypto.js';
import { addMod32 } from './fixed-point.js';

export interface Advertise {
  client: string;
  /** The client's FedAvg weight (local data size); public, as without masking. */
  samples: number;
  cPk: string;
  sPk: string;
}

export interface Roster {
  round: number;
  nonce: string;
  threshold: number;
  /** Vector length (words) every masked input must have. */
  length: number;
  entries: Advertise[];
}

export interface Envelope {
  from: string;
  to: string;
  box: string;
}

export interface ShareUpload {
  client: string;
  envelopes: Envelope[];
}

export interface UnmaskRequest {
  survivors: string[];
  dropped: string[];
}

export interface UnmaskResponse {
  client: string;
  /** Shares of dropped clients' s private keys. */
  sShares: Record<string, string>;
  /** Shares of survivors' self-mask seeds. */
  bShares: Record<string, string>;
}

/** Shares needed for a roster of n: a majority (fraction 0.5), never below 2 nor above n. */
export function thresholdFor(n: number, fraction: number): number {
  return Math.min(n, Math.max(2, Math.floor(fraction * n) + 1));
}

const pairLabel = (nonce: string, kind: string, a: string, b: string) => {
  const [x, y] = a < b ? [a, b] : [b, a];
  return `fedbiot-secagg/${nonce}/${kind}/${x.length}:${x}/${y.length}:${y}`;
};

function fail(who: string, msg: string): never {
  throw new Error(`secure aggregation (${who}): ${msg}`);
}

export class SecAggClient {
  private readonly c: KeyPair = x25519KeyPair();
  private readonly s: KeyPair = x25519KeyPair();
  private roster: Roster | null = null;
  private b: Uint8Array | null = null;
  /** Shares others gave this client (and its own), by owner. */
  private readonly held = new Map<string, { s: Uint8Array; b: Uint8Array }>();
  private senders: string[] = [];
  private revealed = new Map<string, 's' | 'b'>();

  constructor(readonly name: string) {}

  advertise(samples: number): Advertise {
    return { client: this.name, samples, cPk: b64(this.c.publicKey), sPk: b64(this.s.publicKey) };
  }

  async share(roster: Roster): Promise<ShareUpload> {
    const names = roster.entries.map((e) => e.client);
    if (!names.includes(this.name)) fail(this.name, `the roster of round ${roster.round + 1} leaves this client out`);
    if (new Set(names).size !== names.length) fail(this.name, 'the roster names a client twice');
    const keys = new Set(roster.entries.flatMap((e) => [e.cPk, e.sPk]));
    if (keys.size !== 2 * names.length) fail(this.name, 'the roster repeats a public key');
    if (roster.threshold < 2 || roster.threshold > names.length || roster.threshold <= names.length / 2) {
      fail(
        this.name,
        `threshold ${roster.threshold} of ${names.length} is not a majority: a server could unmask single clients`,
      );
    }
    this.roster = roster;
    this.b = new Uint8Array(crypto.randomBytes(32));
    const sShares = await shareSecret(this.s.privateKey, names.length, roster.threshold);
    const bShares = await shareSecret(this.b, names.length, roster.threshold);
    const envelopes: Envelope[] = [];
    roster.entries.forEach((e, k) => {
      if (e.client === this.name) {
        this.held.set(this.name, { s: sShares[k]!, b: bShares[k]! });
        return;
      }
      const key = agree(
        this.c.privateKey,
        unb64(e.cPk, `${e.client}'s c key`),
        pairLabel(roster.nonce, 'box', this.name, e.client),
      );
      const body = new TextEncoder().encode(
        JSON.stringify({ from: this.name, to: e.client, s: b64(sShares[k]!), b: b64(bShares[k]!) }),
      );
      envelopes.push({
        from: this.name,
        to: e.client,
        box: seal(key, body, `${roster.nonce}/${this.name}/${e.client}`),
      });
    });
    return { client: this.name, envelopes };
  }

  /** Opens the envelopes addressed to this client and masks its input. */
  maskedInput(delivered: readonly Envelope[], input: Uint32Array): Uint32Array {
    const roster = this.roster ?? fail(this.name, 'masked input before the share phase');
    if (input.length !== roster.length)
      fail(this.name, `input has ${input.length} words, the round expects ${roster.length}`);
    const byName = new Map(roster.entries.map((e) => [e.client, e]));
    for (const env of delivered) {
      const e = byName.get(env.from);
      if (!e || env.to !== this.name || env.from === this.name)
        fail(this.name, `an envelope from '${env.from}' to '${env.to}' does not belong here`);
      const key = agree(
        this.c.privateKey,
        unb64(e.cPk, `${e.client}'s c key`),
        pairLabel(roster.nonce, 'box', this.name, e.client),
      );
      let m: { from: string; to: string; s: string; b: string };
      try {
        m = JSON.parse(
          new TextDecoder().decode(open(key, env.box, `${roster.nonce}/${env.from}/${this.name}`)),
        ) as typeof m;
      } catch {
        fail(this.name, `the envelope from '${env.from}' does not open (tampered or for another round)`);
      }
      if (m.from !== env.from || m.to !== this.name)
        fail(this.name, `the envelope from '${env.from}' names another sender or receiver`);
      this.held.set(env.from, { s: unb64(m.s, 's share'), b: unb64(m.b, 'b share') });
    }
    this.senders = [...this.held.keys()];
    if (this.senders.length < roster.threshold)
      fail(this.name, `only ${this.senders.length} clients shared their keys, below the threshold ${roster.threshold}`);
    const y = Uint32Array.from(input);
    addMod32(y, expandMask(this.b!, y.length));
    for (const v of this.senders) {
      if (v === this.name) continue;
      addMod32(
        y,
        pairMask(this.s.privateKey, unb64(byName.get(v)!.sPk, `${v}'s s key`), roster.nonce, this.name, v, y.length),
        this.name < v ? 1 : -1,
      );
    }
    return y;
  }

  unmask(req: UnmaskRequest): UnmaskResponse {
    const roster = this.roster ?? fail(this.name, 'unmask request before the share phase');
    if (!req.survivors.includes(this.name))
      fail(this.name, 'the unmask request does not count this client among the survivors');
    if (req.survivors.length < roster.threshold)
      fail(
        this.name,
        `the unmask request has ${req.survivors.length} survivors, below the threshold ${roster.threshold}`,
      );
    const out: UnmaskResponse = { client: this.name, sShares: {}, bShares: {} };
    const both = req.survivors.filter((c) => req.dropped.includes(c));
    if (both.length) fail(this.name, `the unmask request counts ${both.join(',')} as both survived and dropped`);
    for (const [kind, list] of [
      ['s', req.dropped],
      ['b', req.survivors],
    ] as const) {
      for (const who of list) {
        const h = this.held.get(who);
        if (!h) fail(this.name, `no share of '${who}' (it did not share its keys)`);
        // Never both shares of one client: with both, the server could unmask its input.
        const prev = this.revealed.get(who);
        if (prev && prev !== kind) fail(this.name, `'${who}' was already unmasked the other way`);
        this.revealed.set(who, kind);
        (kind === 's' ? out.sShares : out.bShares)[who] = b64(h[kind]);
      }
    }
    return out;
  }
}

function pairMask(
  myPrivate: Uint8Array,
  theirPublic: Uint8Array,
  nonce: string,
  me: string,
  them: string,
  n: number,
): Uint32Array {
  return expandMask(agree(myPrivate, theirPublic, pairLabel(nonce, 'mask', me, them)), n);
}

export class SecAggServer {
  private readonly ads = new Map<string, Advertise>();
  private roster: Roster | null = null;
  private readonly envelopes = new Map<string, Envelope[]>();
  private readonly shared = new Set<string>();
  /** The masked inputs as received: what the server stores per client. */
  readonly masked = new Map<string, Uint32Array>();
  private request: UnmaskRequest | null = null;
  private readonly responses = new Map<string, UnmaskResponse>();

  constructor(
    readonly round: number,
    readonly nonce: string,
    readonly length: number,
    private readonly thresholdFraction = 0.5,
  ) {}

  addAdvertise(a: Advertise): void {
    if (this.roster) fail('server', `advertisement from '${a.client}' after the roster was fixed`);
    if (!(Number.isInteger(a.samples) && a.samples > 0))
      fail('server', `client '${a.client}' advertised ${a.samples} samples`);
    for (const [what, k] of [
      ['c', a.cPk],
      ['s', a.sPk],
    ] as const)
      if (unb64(k, `${a.client}'s ${what} key`).length !== 32)
        fail('server', `client '${a.client}' advertised a ${what} key that is not 32 bytes`);
    this.ads.set(a.client, a);
  }

  /** Fixes the roster (everyone who advertised); throws below two clients. */
  fixRoster(): Roster {
    if (this.roster) return this.roster;
    const entries = [...this.ads.values()].sort((x, y) => (x.client < y.client ? -1 : 1));
    if (entries.length < 2)
      fail(
        'server',
        `round ${this.round + 1}: ${entries.length} client(s) advertised keys; secure aggregation needs at least 2`,
      );
    this.roster = {
      round: this.round,
      nonce: this.nonce,
      threshold: thresholdFor(entries.length, this.thresholdFraction),
      length: this.length,
      entries,
    };
    return this.roster;
  }

  addShares(u: ShareUpload): void {
    const r = this.roster ?? fail('server', 'shares before the roster');
    if (this.request) fail('server', `shares from '${u.client}' after unmasking began`);
    if (!r.entries.some((e) => e.client === u.client)) fail('server', `'${u.client}' is not on the roster`);
    for (const env of u.envelopes) {
      if (env.from !== u.client) fail('server', `'${u.client}' sent an envelope claiming to be from '${env.from}'`);
      if (!r.entries.some((e) => e.client === env.to))
        fail('server', `'${u.client}' addressed an envelope to '${env.to}', who is not on the roster`);
    }
    this.shared.add(u.client);
    for (const env of u.envelopes)
      this.envelopes.set(env.to, [...(this.envelopes.get(env.to) ?? []).filter((e) => e.from !== u.client), env]);
  }

  /** The envelopes for one client, from the clients that shared (fixes who is in phase 2 from the first call). */
  deliveries(client: string): Envelope[] {
    return (this.envelopes.get(client) ?? []).filter((e) => this.shared.has(e.from));
  }

  get sharedClients(): string[] {
    return [...this.shared].sort();
  }

  addMasked(client: string, y: Uint32Array): void {
    if (!this.shared.has(client)) fail('server', `masked input from '${client}', who did not share its keys`);
    if (this.request) fail('server', `masked input from '${client}' after unmasking began: late inputs are refused`);
    if (y.length !== this.length)
      fail('server', `masked input from '${client}' has ${y.length} words, expected ${this.length}`);
    this.masked.set(client, y);
  }

  /** Closes the input phase: who survived, who dropped. */
  unmaskRequest(): UnmaskRequest {
    if (this.request) return this.request;
    const r = this.roster ?? fail('server', 'unmasking before the roster');
    const survivors = [...this.masked.keys()].sort();
    if (survivors.length < r.threshold)
      fail(
        'server',
        `round ${this.round + 1}: ${survivors.length} masked inputs, below the threshold ${r.threshold}: the round cannot be unmasked`,
      );
    this.request = { survivors, dropped: this.sharedClients.filter((c) => !this.masked.has(c)) };
    return this.request;
  }

  addUnmask(res: UnmaskResponse): void {
    const req = this.request ?? fail('server', 'unmask response before the request');
    if (!req.survivors.includes(res.client))
      fail('server', `unmask response from '${res.client}', who is not a survivor`);
    this.responses.set(res.client, res);
  }

  get unmaskResponses(): number {
    return this.responses.size;
  }

  /** The survivors' sum (mod 2^32), once at least t survivors answered. */
  async sum(): Promise<{ sum: Uint32Array; survivors: string[]; dropped: string[] }> {
    const req = this.request ?? fail('server', 'sum before the unmask request');
    const r = this.roster!;
    if (this.responses.size < r.threshold)
      fail(
        'server',
        `round ${this.round + 1}: ${this.responses.size} unmask responses, below the threshold ${r.threshold}`,
      );
    const byName = new Map(r.entries.map((e) => [e.client, e]));
    const gather = async (kind: 'sShares' | 'bShares', who: string) => {
      const shares = [...this.responses.values()].map((x) => x[kind][who]).filter((s): s is string => s !== undefined);
      if (shares.length < r.threshold)
        fail('server', `only ${shares.length} shares to rebuild '${who}', below the threshold ${r.threshold}`);
      return combineShares(shares.map((s) => unb64(s, 'share')));
    };
    const total = new Uint32Array(this.length);
    for (const u of req.survivors) addMod32(total, this.masked.get(u)!);
    for (const u of req.survivors) addMod32(total, expandMask(await gather('bShares', u), this.length), -1);
    for (const d of req.dropped) {
      const sk = await gather('sShares', d);
      // Each survivor v added +-PRG(s_vd) for the dropped d; remove exactly what it added.
      for (const v of req.survivors)
        addMod32(
          total,
          pairMask(sk, unb64(byName.get(v)!.sPk, `${v}'s s key`), this.nonce, d, v, this.length),
          v < d ? -1 : 1,
        );
    }
    return { sum: total, survivors: req.survivors, dropped: req.dropped };
  }
}
