// The server does not take a client's word for its weight, and an upload cannot cost it more than
// its bounds: a forged example count leaves the average as the registered sizes make it; an upload
// from a client that may not upload is refused before its body is read; an oversized body gets its
// 413 and reason (not a reset); uploads beyond maxConcurrentUploads get 503 "busy"; floods of
// unauthenticated requests are recorded a bounded number of times. The clients here are the test
// itself, speaking the protocol directly.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as path from 'node:path';
import { setup, cli, serverArgs, killAll, roundMetrics, type Setup } from './helpers.js';
import { makeTransport, request, replyReason, sleep, type ClientTransport } from '../../src/fl/net/http.js';
import { METRICS_HEADER, roundStatusSchema } from '../../src/fl/net/protocol.js';
import { decodePayload, encodeUpdate } from '../../src/fl/payload.js';
import { loadState } from '../../src/fl/checkpoint.js';
import { fedAvg } from '../../src/fedbiot/aggregate.js';
import { cloneState, type LoraState } from '../../src/fedbiot/lora-state.js';
import { ServerDb } from '../../src/fl/net/db.js';
import { PER_WINDOW } from '../../src/fl/net/refusal-log.js';

after(killAll);

const METRICS = { [METRICS_HEADER]: JSON.stringify({ meanLoss: 1, tokens: 8, seconds: 0.01 }) };

async function openRound(
  t: ClientTransport,
  round: number,
  ms = 60_000,
): Promise<{ nonce: string; adapter: LoraState }> {
  const until = Date.now() + ms;
  for (;;) {
    const r = await request(t, 'GET', 'v1/round');
    const st = roundStatusSchema.parse(JSON.parse(r.body.toString()));
    if (st.state === 'train' && st.round === round) {
      const p = decodePayload((await request(t, 'GET', `v1/round/${round}/payload?emulatorVersion=-1`)).body);
      return { nonce: st.nonce!, adapter: p.adapter };
    }
    if (Date.now() > until) throw new Error(`round ${round + 1} never opened`);
    await sleep(50);
  }
}

/** The adapter with every value shifted by `by`: a distinguishable update. */
function shifted(s: LoraState, by: number): LoraState {
  const c = cloneState(s);
  for (const v of c.values()) for (let i = 0; i < v.data.length; i++) v.data[i]! += by;
  return c;
}

/** A POST whose body is announced but only partly sent; `reply` is what the server answers meanwhile. */
function partialUpload(
  s: Setup,
  token: string,
  round: number,
  declared: number,
  sent: number,
): { req: http.ClientRequest; reply: Promise<{ status: number; body: string }> } {
  const url = new URL(`v1/round/${round}/update`, `${s.url}/`);
  let req!: http.ClientRequest;
  const reply = new Promise<{ status: number; body: string }>((resolve, reject) => {
    req = http.request(
      url,
      {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/octet-stream',
          'content-length': String(declared),
          ...METRICS,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      },
    );
    req.on('error', reject);
    req.write(Buffer.alloc(sent));
  });
  return { req, reply };
}

/** A server for one round with clients 0 and 1 (and any others given), both joined and in round 1. */
async function firstRound(o: Parameters<typeof setup>[0]) {
  const s = await setup(o);
  const server = cli('server', serverArgs(s));
  await server.waitFor(/listening on/, 30_000);
  const t0 = makeTransport(s.url, s.tokens['0']!, { timeoutMs: 30_000 });
  const t1 = makeTransport(s.url, s.tokens['1']!, { timeoutMs: 30_000 });
  // Both must be heard from before round 1 opens.
  await Promise.all([request(t0, 'POST', 'v1/join'), request(t1, 'POST', 'v1/join')]);
  const [r0, r1] = await Promise.all([openRound(t0, 0), openRound(t1, 0)]);
  return { s, server, t0, t1, r0, r1 };
}

test('net: a forged example count does not move the average; the registered sizes weigh', {
  timeout: 120_000,
}, async () => {
  const { s, server, t0, t1, r0, r1 } = await firstRound({
    rounds: 1,
    clients: ['0', '1'],
    server: { minClients: 2, roundDeadlineSeconds: 60 },
  });
  const honest = shifted(r0.adapter, 0.5);
  const forger = shifted(r1.adapter, -3);
  const a = await request(t0, 'POST', 'v1/round/0/update', {
    body: encodeUpdate({ round: 0, nonce: r0.nonce, samples: 8, state: honest }),
    headers: METRICS,
  });
  assert.equal(a.status, 200, a.body.toString());
  const b = await request(t1, 'POST', 'v1/round/0/update', {
    body: encodeUpdate({ round: 0, nonce: r1.nonce, samples: 999_999_999, state: forger }),
    headers: METRICS,
  });
  assert.equal(b.status, 200, b.body.toString());
  assert.equal(await server.exit(60_000), 0, server.out);

  const db = new ServerDb(path.join(s.state, 'server.db'));
  const registered = Object.fromEntries(db.clients().map((c) => [c.name, c.samples]));
  db.close();
  const got = loadState(path.join(s.state, 'checkpoints', 'round-0001', 'adapter.safetensors'));
  const want = fedAvg([
    { client: '0', samples: Math.min(8, registered['0']!), state: honest },
    { client: '1', samples: registered['1']!, state: forger },
  ]);
  const trusting = fedAvg([
    { client: '0', samples: 8, state: honest },
    { client: '1', samples: 999_999_999, state: forger },
  ]);
  const first = [...want.keys()][0]!;
  assert.deepEqual(got.get(first)!.data, want.get(first)!.data, 'weights are the registered sizes');
  assert.notDeepEqual(
    got.get(first)!.data,
    trusting.get(first)!.data,
    'the reported count would have given another average',
  );
  for (const [k, v] of want) assert.deepEqual(got.get(k)!.data, v.data, k);
});

test('net: without registered sizes every update weighs the same', { timeout: 120_000 }, async () => {
  const { s, server, t0, t1, r0, r1 } = await firstRound({
    rounds: 1,
    clients: ['0', '1'],
    unregistered: true,
    server: { minClients: 2, roundDeadlineSeconds: 60 },
  });
  const x = shifted(r0.adapter, 1);
  const y = shifted(r1.adapter, -1);
  await request(t0, 'POST', 'v1/round/0/update', {
    body: encodeUpdate({ round: 0, nonce: r0.nonce, samples: 3, state: x }),
    headers: METRICS,
  });
  await request(t1, 'POST', 'v1/round/0/update', {
    body: encodeUpdate({ round: 0, nonce: r1.nonce, samples: 999_999_999, state: y }),
    headers: METRICS,
  });
  assert.equal(await server.exit(60_000), 0, server.out);
  assert.match(server.out, /no registered data size for client\(s\) 0,1: weighing this round's updates equally/);
  const got = loadState(path.join(s.state, 'checkpoints', 'round-0001', 'adapter.safetensors'));
  const want = fedAvg([
    { client: '0', samples: 1, state: x },
    { client: '1', samples: 1, state: y },
  ]);
  for (const [k, v] of want) assert.deepEqual(got.get(k)!.data, v.data, k);
});

test('net: uploads are checked before their body, bounded in size and number; unauthenticated floods are recorded boundedly', {
  timeout: 120_000,
}, async () => {
  const { s, server, t0, t1, r0, r1 } = await firstRound({
    rounds: 1,
    clients: ['0', '1', '2'],
    server: {
      minClients: 2,
      startClients: 2,
      roundDeadlineSeconds: 60,
      maxUploadBytes: 200_000,
      maxConcurrentUploads: 1,
    },
  });

  // Client 2 is not sampled: refused while its (announced 50 MB) body is still unsent.
  const early = partialUpload(s, s.tokens['2']!, 0, 50_000_000, 1024);
  const refused = await early.reply;
  early.req.destroy();
  assert.equal(refused.status, 403, refused.body);
  assert.match(refused.body, /not-sampled/);

  // An oversized body gets 413 with its reason, not a reset, whether announced or discovered.
  const big = await request(t0, 'POST', 'v1/round/0/update', { body: Buffer.alloc(300_000), headers: METRICS });
  assert.equal(big.status, 413);
  assert.deepEqual(
    [replyReason(big).code, /exceeds the limit of 200000/.test(replyReason(big).reason)],
    ['too-large', true],
  );

  // One upload in flight (client 0's body half sent): client 1's gets 503 busy; then both go through.
  const held = partialUpload(s, s.tokens['0']!, 0, 100_000, 10_000);
  await sleep(300);
  const busy = await request(t1, 'POST', 'v1/round/0/update', {
    body: encodeUpdate({ round: 0, nonce: r1.nonce, samples: 4, state: r1.adapter }),
    headers: METRICS,
  });
  assert.equal(busy.status, 503, busy.body.toString());
  assert.equal(replyReason(busy).code, 'busy');
  assert.equal(busy.headers['retry-after'], '1');
  held.reply.catch(() => {}); // aborted below: no reply expected
  held.req.destroy();

  // A flood of requests with made-up tokens: logged and stored at most PER_WINDOW times.
  const bad = makeTransport(s.url, 'fbt_made-up', { timeoutMs: 30_000 });
  for (let i = 0; i < 120; i++) assert.equal((await request(bad, 'GET', 'v1/round')).status, 401);

  // The honest uploads close the round (the aborted partial upload released its slot).
  await sleep(300);
  const body0 = encodeUpdate({ round: 0, nonce: r0.nonce, samples: 4, state: r0.adapter });
  const ok0 = await request(t0, 'POST', 'v1/round/0/update', { body: body0, headers: METRICS });
  assert.equal(ok0.status, 200, ok0.body.toString());
  const body1 = encodeUpdate({ round: 0, nonce: r1.nonce, samples: 4, state: r1.adapter });
  const ok1 = await request(t1, 'POST', 'v1/round/0/update', { body: body1, headers: METRICS });
  assert.equal(ok1.status, 200, ok1.body.toString());
  assert.equal(await server.exit(60_000), 0, server.out);
  // The round counts each accepted body once; the cut-off and refused bodies are counted apart.
  const [entry] = roundMetrics(s);
  const per = entry!.bytes_per_client as Record<string, { down: number; up: number }>;
  assert.deepEqual([per['0']!.up, per['1']!.up, per['2']?.up ?? 0], [body0.length, body1.length, 0]);
  assert.ok((entry!.bytes_resent as number) >= 10_000, `bytes_resent ${entry!.bytes_resent}`);

  const logged = (server.out.match(/refused GET \/v1\/round from .*: unauthorized/g) ?? []).length;
  assert.equal(logged, PER_WINDOW);
  assert.match(server.out, /100 more unauthenticated request\(s\) refused since/);
  const db = new ServerDb(path.join(s.state, 'server.db'));
  const rows = db.refusals();
  db.close();
  assert.equal(rows.filter((r) => r.code === 'unauthorized').length, PER_WINDOW);
  assert.equal(rows.filter((r) => r.code === 'unauthorized-suppressed').length, 1);
});
