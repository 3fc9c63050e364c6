// Hostile and broken requests against a live server: wrong tokens, wrong or replayed rounds, bad
// nonces, NaN values, wrong shapes, missing/extra tensors, oversized norms, path tricks. Each is
// refused with a clear reason, and the run still completes with the honest uploads.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { setup, cli, serverArgs, clientArgs, metrics, killAll } from './helpers.js';
import { makeTransport, request, replyReason, sleep, type ClientTransport } from '../../src/fl/net/http.js';
import { METRICS_HEADER, roundStatusSchema } from '../../src/fl/net/protocol.js';
import { decodePayload, encodeUpdate } from '../../src/fl/payload.js';
import { cloneState, type LoraState } from '../../src/fedbiot/lora-state.js';
import { ServerDb } from '../../src/fl/net/db.js';

after(killAll);

const metricsOk = { meanLoss: 1, tokens: 10, seconds: 0.1 };
/** The training metrics an update carries beside its body. */
const withMetrics = { [METRICS_HEADER]: JSON.stringify(metricsOk) };

async function pollTrain(t: ClientTransport, round: number, ms: number): Promise<string> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const r = await request(t, 'GET', 'v1/round');
    assert.equal(r.status, 200, r.body.toString());
    const st = roundStatusSchema.parse(JSON.parse(r.body.toString()));
    if (st.state === 'train' && st.round === round) return st.nonce!;
    await sleep(100);
  }
  throw new Error(`round ${round} never opened for the test client`);
}

async function expectRefused(
  t: ClientTransport,
  method: string,
  p: string,
  body: Buffer | undefined,
  status: number,
  code: string,
  reason?: RegExp,
  token?: string | null,
): Promise<void> {
  const r = await request(t, method, p, { body, token, headers: body ? withMetrics : undefined });
  const why = replyReason(r);
  assert.equal(r.status, status, `${method} ${p}: ${r.status} ${why.code} ${why.reason}`);
  assert.equal(why.code, code, why.reason);
  assert.ok(why.reason.length > 5, 'a readable reason');
  if (reason) assert.match(why.reason, reason);
}

test('net: hostile uploads are refused with reasons; the server is unharmed', { timeout: 120_000 }, async () => {
  const s = await setup({
    rounds: 2,
    clients: ['0', '1', '2'],
    server: { minClients: 2, roundDeadlineSeconds: 60, normBound: 1000 },
  });
  const server = cli('server', serverArgs(s));
  await server.waitFor(/listening on/, 30_000);
  const t = makeTransport(s.url, s.tokens['1']!, { timeoutMs: 30_000 });
  // Authentication.
  await expectRefused(t, 'GET', 'v1/round', undefined, 401, 'unauthorized', /unknown/, 'fbt_not-a-real-token');
  await expectRefused(t, 'GET', 'v1/round', undefined, 401, 'unauthorized', /missing/, null);
  await expectRefused(t, 'POST', 'v1/join', undefined, 403, 'forbidden', undefined, s.tokens.admin!);
  const join = await request(t, 'POST', 'v1/join');
  assert.equal(join.status, 200);
  // Only the files of the compressed model are served.
  await expectRefused(t, 'GET', 'v1/model/files/..%2Fserver.db', undefined, 404, 'not-found');
  await expectRefused(t, 'GET', 'v1/model/files/server.db', undefined, 404, 'not-found');
  const honest = cli('client-0', clientArgs(s, '0'));

  const nonce = await pollTrain(t, 0, 60_000);
  const pr = await request(t, 'GET', 'v1/round/0/payload?emulatorVersion=-1');
  assert.equal(pr.status, 200);
  const payload = decodePayload(pr.body);
  assert.equal(payload.nonce, nonce);
  assert.ok(payload.emulator && payload.emulator.size > 0, 'the emulator LoRA travels to a new client');
  const good = payload.adapter;
  const up = (state: LoraState, o: { round?: number; nonce?: string; samples?: number } = {}) =>
    encodeUpdate({ round: o.round ?? 0, nonce: o.nonce ?? nonce, samples: o.samples ?? 5, state });
  const first = [...good.keys()][0]!;
  const nan = cloneState(good);
  nan.get(first)!.data[0] = NaN;
  await expectRefused(t, 'POST', 'v1/round/0/update', up(nan), 422, 'non-finite', /NaN/);
  const inf = cloneState(good);
  inf.get(first)!.data[1] = Infinity;
  await expectRefused(t, 'POST', 'v1/round/0/update', up(inf), 422, 'non-finite');
  const shape = cloneState(good);
  const v = shape.get(first)!;
  shape.set(first, { shape: [1, v.data.length], data: v.data });
  await expectRefused(t, 'POST', 'v1/round/0/update', up(shape), 422, 'bad-tensors', /shape/);
  const missing = cloneState(good);
  missing.delete(first);
  await expectRefused(t, 'POST', 'v1/round/0/update', up(missing), 422, 'bad-tensors', /missing tensor/);
  const extra = cloneState(good);
  extra.set('model.layers.0.self_attn.k_proj.lora_A.weight', { shape: [2, 2], data: new Float32Array(4) });
  await expectRefused(t, 'POST', 'v1/round/0/update', up(extra), 422, 'bad-tensors', /unexpected tensor/);
  const huge = cloneState(good);
  for (const x of huge.values()) x.data.fill(1e6);
  await expectRefused(t, 'POST', 'v1/round/0/update', up(huge), 422, 'norm-bound', /exceeds/);
  await expectRefused(t, 'POST', 'v1/round/0/update', up(good, { samples: 0 }), 422, 'bad-metadata', /samples/);
  await expectRefused(t, 'POST', 'v1/round/0/update', Buffer.from('not safetensors at all'), 422, 'bad-body');
  await expectRefused(t, 'POST', 'v1/round/1/update', up(good, { round: 1 }), 409, 'wrong-round', /not open/);
  await expectRefused(
    t,
    'POST',
    'v1/round/0/update',
    up(good, { round: 1 }),
    409,
    'wrong-round',
    /body is for round 2/,
  );
  await expectRefused(t, 'POST', 'v1/round/0/update', up(good, { nonce: 'f'.repeat(32) }), 409, 'bad-nonce', /replay/);
  await expectRefused(t, 'POST', 'v1/round/0/update', up(good), 401, 'unauthorized', undefined, 'fbt_forged');
  const h = await request(t, 'GET', 'v1/health', { token: null });
  assert.equal(h.status, 200);
  // One honest upload is accepted; replaying it is not.
  const valid = up(good);
  const ok = await request(t, 'POST', 'v1/round/0/update', { body: valid, headers: withMetrics });
  assert.equal(ok.status, 200, ok.body.toString());
  await expectRefused(t, 'POST', 'v1/round/0/update', valid, 409, 'duplicate', /already uploaded/);

  // Round 2: client 2 (never sampled) sends a round-1 upload: a late upload; then client 1 uploads honestly.
  const nonce1 = await pollTrain(t, 1, 60_000);
  await expectRefused(t, 'POST', 'v1/round/0/update', valid, 409, 'duplicate', /already uploaded/);
  await expectRefused(
    t,
    'POST',
    'v1/round/0/update',
    valid,
    409,
    'round-closed',
    /late uploads are refused/,
    s.tokens['2']!,
  );
  await expectRefused(t, 'GET', 'v1/round/1/payload', undefined, 403, 'not-sampled', undefined, s.tokens['2']!);
  await expectRefused(t, 'POST', 'v1/round/1/update', up(good, { round: 1 }), 409, 'bad-nonce');
  const status = cli('status', ['status', '--server', s.url, '--token', s.tokens.admin!]);
  assert.equal(await status.exit(30_000), 0, status.out);
  assert.match(status.out, /clients:/);
  assert.match(status.out, /round 2 in progress/);
  const p1 = decodePayload(
    (await request(t, 'GET', 'v1/round/1/payload?emulatorVersion=' + payload.emulatorVersion)).body,
  );
  assert.ok(p1.emulator, 'the emulator changed after round 1 alignment, so it is sent again');
  const ok1 = await request(t, 'POST', 'v1/round/1/update', {
    body: encodeUpdate({ round: 1, nonce: nonce1, samples: 5, state: p1.adapter }),
    headers: withMetrics,
  });
  assert.equal(ok1.status, 200, ok1.body.toString());

  assert.equal(await server.exit(60_000), 0, server.out);
  assert.equal(await honest.exit(20_000), 0, honest.out);
  const rounds = metrics(s).filter((l) => typeof l.round === 'number' && (l.round as number) >= 0 && !l.phase);
  assert.deepEqual(
    rounds.map((r) => r.clients),
    [
      ['0', '1'],
      ['0', '1'],
    ],
  );
  const db = new ServerDb(path.join(s.state, 'server.db'));
  const codes = db.refusals().map((r) => r.code);
  db.close();
  for (const c of [
    'unauthorized',
    'non-finite',
    'bad-tensors',
    'norm-bound',
    'bad-body',
    'wrong-round',
    'bad-nonce',
    'duplicate',
    'round-closed',
  ])
    assert.ok(codes.includes(c), `refusal ${c} logged`);
  // The server log names the peer and the field at fault for every refused upload.
  for (const re of [
    /refused upload from 1 for round 1: non-finite: tensor '[^']+' holds a NaN/,
    /refused upload from 1 for round 1: bad-tensors: tensor '[^']+' has shape \[1,\d+\], expected/,
    /refused upload from 1 for round 1: bad-tensors: missing tensor '[^']+'/,
    /refused upload from 1 for round 1: bad-metadata: metadata "samples" must be a positive integer, got 0/,
    /refused upload from 1 for round 1: bad-nonce: metadata "nonce" does not match/,
    /refused upload from 1 for round 1: wrong-round: the body is for round 2 \(metadata "round"\)/,
    /refused upload from 1 for round 1: norm-bound: adapter L2 norm/,
    /refused upload from 2 for round 1: round-closed/,
    /refused POST \/v1\/round\/0\/update from 127\.0\.0\.1: unauthorized: unknown or revoked token/,
  ])
    assert.match(server.out, re);
});
