// Quorum policy: a round short of minClients uploads at its deadline is extended by one deadline
// (at most maxRoundExtensions times, default 2), sampling more available clients; after the last
// extension it closes with what it has, or, with no upload at all, is skipped (the adapter stays,
// metrics.jsonl says so). No round waits forever. The clients here are the test itself, speaking
// the protocol directly, so who uploads when is exact.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { setup, cli, serverArgs, roundMetrics, killAll } from './helpers.js';
import { makeTransport, request, sleep, type ClientTransport } from '../../src/fl/net/http.js';
import { METRICS_HEADER, roundStatusSchema } from '../../src/fl/net/protocol.js';
import { decodePayload, encodeUpdate } from '../../src/fl/payload.js';
import { loadState } from '../../src/fl/checkpoint.js';

after(killAll);

async function roundState(t: ClientTransport) {
  const r = await request(t, 'GET', 'v1/round');
  assert.equal(r.status, 200, r.body.toString());
  return roundStatusSchema.parse(JSON.parse(r.body.toString()));
}

/** Polls until `round` is open for this client (bounded), then uploads the unchanged adapter. */
async function trainAndUpload(t: ClientTransport, round: number, ms: number): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    const st = await roundState(t);
    if (st.state === 'train' && st.round === round) {
      const p = decodePayload((await request(t, 'GET', `v1/round/${round}/payload?emulatorVersion=-1`)).body);
      const up = await request(t, 'POST', `v1/round/${round}/update`, {
        body: encodeUpdate({ round, nonce: st.nonce!, samples: 4, state: p.adapter }),
        headers: { [METRICS_HEADER]: JSON.stringify({ meanLoss: 1, tokens: 8, seconds: 0.01 }) },
      });
      assert.equal(up.status, 200, up.body.toString());
      return;
    }
    if (Date.now() > until) throw new Error(`round ${round + 1} never opened for this client`);
    await sleep(50);
  }
}

test('net: quorum: extend the deadline and sample more, then close below quorum, then skip an empty round', {
  timeout: 120_000,
}, async () => {
  const s = await setup({
    rounds: 3,
    clients: ['0', '1', '2'],
    server: { minClients: 2, startClients: 2, roundDeadlineSeconds: 1.5 },
  });
  const server = cli('server', serverArgs(s));
  await server.waitFor(/listening on/, 30_000);
  const [t0, t1, t2] = ['0', '1', '2'].map((n) => makeTransport(s.url, s.tokens[n]!, { timeoutMs: 10_000 }));
  // Clients 0 and 1 are available; round 1 samples both.
  await roundState(t0!);
  await roundState(t1!);
  await server.waitFor(/round 1\/3 open: sampled 0,1\n/, 20_000);
  await trainAndUpload(t0!, 0, 20_000);
  // Client 2 shows up late; client 1 never uploads. At the deadline the round is extended and samples 2.
  await roundState(t2!);
  await server.waitFor(
    /round 1: deadline reached with 1 upload\(s\), fewer than minClients=2; extension 1 of 2: 1\.5 s more, also sampled 2/,
    20_000,
  );
  await trainAndUpload(t2!, 0, 20_000);
  await server.waitFor(/round 1: deadline reached with 2 of 3 uploads; missing 1/, 20_000);
  // Round 2: only client 0 uploads; no one else to sample; closes below quorum after 2 extensions.
  await trainAndUpload(t0!, 1, 30_000);
  await server.waitFor(
    /round 2: deadline reached with 1 upload\(s\), fewer than minClients=2; extension 2 of 2: 1\.5 s more, no other client available/,
    20_000,
  );
  await server.waitFor(
    /round 2: closing with 1 upload\(s\), fewer than minClients=2, after 2 extension\(s\); missing 1,2/,
    20_000,
  );
  // Round 3: nothing comes; skipped after 2 extensions, the adapter unchanged.
  await server.waitFor(
    /round 3: no upload after 2 extension\(s\); skipping aggregation, the adapter stays as it was/,
    30_000,
  );
  await server.waitFor(/round 3\/3 skipped \(no upload\)/, 20_000);
  assert.equal(await server.exit(60_000), 0, server.out);

  const m = roundMetrics(s);
  assert.deepEqual(
    m.map((r) => [r.sampled, r.clients, r.missing, r.extensions, r.quorum, r.skipped ?? false]),
    [
      [['0', '1', '2'], ['0', '2'], ['1'], 1, 'met', false],
      [['0', '1', '2'], ['0'], ['1', '2'], 2, 'below', false],
      [['0', '1', '2'], [], ['0', '1', '2'], 2, 'none', true],
    ],
  );
  const ck = (n: number) => loadState(path.join(s.state, 'checkpoints', `round-000${n}`, 'adapter.safetensors'));
  const [a2, a3] = [ck(2), ck(3)];
  for (const [k, v] of a2) assert.deepEqual(a3.get(k)!.data, v.data, `skipped round kept ${k}`);
});
