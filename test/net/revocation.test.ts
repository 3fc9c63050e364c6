// Token revocation: `fedbiot server remove-client NAME` while the server runs. The server checks
// the database on every request, so the revoked token is refused from its next request on (no
// restart); a round that sampled the revoked client stops waiting for it; later rounds do not
// sample it; `list-clients` shows it revoked; the refusal in the server log names the client.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { setup, cli, serverArgs, clientArgs, roundMetrics, killAll } from './helpers.js';
import { makeTransport, request, replyReason } from '../../src/fl/net/http.js';
import { ServerDb } from '../../src/fl/net/db.js';

after(killAll);

test('net: remove-client revokes a token on a running server; the round stops waiting for it', {
  timeout: 120_000,
}, async () => {
  const s = await setup({
    rounds: 2,
    clients: ['0', '1', '2'],
    server: { minClients: 2, startClients: 3, roundDeadlineSeconds: 60, lingerSeconds: 10 },
  });
  const server = cli('server', serverArgs(s));
  await server.waitFor(/listening on/, 30_000);
  const c0 = cli('client-0', clientArgs(s, '0'));
  const c1 = cli('client-1', clientArgs(s, '1'));
  // Client 2 takes the round-1 payload and then sits on it (a slow or compromised device).
  const c2 = cli('client-2', clientArgs(s, '2'), { FEDBIOT_DEBUG_TRAIN_DELAY_MS: '60000' });
  await c2.waitFor(/round 1: training/, 60_000);
  const t2 = makeTransport(s.url, s.tokens['2']!, { timeoutMs: 10_000 });
  assert.equal((await request(t2, 'GET', 'v1/round')).status, 200, 'valid before revocation');

  const t0 = Date.now();
  const rm = cli('remove-client', ['server', 'remove-client', '2', '--state', s.state]);
  assert.equal(await rm.exit(20_000), 0, rm.out);
  assert.match(rm.out, /client '2' revoked/);
  // The running server refuses the token from now on, and says why. Asked at once: with client 2
  // no longer waited for, both rounds may finish within seconds and the server then lingers only
  // briefly.
  const r = await request(t2, 'GET', 'v1/round');
  assert.equal(r.status, 401);
  assert.match(replyReason(r).reason, /token of client '2' was revoked/);
  const again = cli('remove-client-again', ['server', 'remove-client', '2', '--state', s.state]);
  assert.equal(await again.exit(20_000), 1, again.out);
  assert.match(again.out, /already revoked/);
  await server.waitFor(/refused GET \/v1\/round from revoked client 2 at 127\.0\.0\.1: unauthorized/, 10_000);
  // Round 1 no longer waits for client 2 (its deadline is 60 s away).
  await server.waitFor(/round 1: client 2 was revoked; it is no longer waited for/, 20_000);
  await server.waitFor(/round 1\/2 complete: 2\/3 clients/, 20_000);
  assert.ok(Date.now() - t0 < 40_000, 'closed without waiting for the deadline');

  const list = cli('list-clients', ['server', 'list-clients', '--state', s.state]);
  assert.equal(await list.exit(20_000), 0, list.out);
  assert.match(list.out, /^2\s+client\s+revoked \d{4}-/m);
  assert.match(list.out, /^0\s+client\s+active/m);
  assert.match(list.out, /^admin\s+admin\s+active/m);

  assert.equal(await server.exit(60_000), 0, server.out);
  for (const c of [c0, c1]) assert.equal(await c.exit(20_000), 0, c.out);
  c2.kill9();
  const rounds = roundMetrics(s);
  assert.deepEqual(
    rounds.map((m) => [m.sampled, m.clients]),
    [
      [
        ['0', '1', '2'],
        ['0', '1'],
      ],
      [
        ['0', '1'],
        ['0', '1'],
      ],
    ],
  );
  const db = new ServerDb(path.join(s.state, 'server.db'));
  try {
    assert.ok(
      db.refusals().some((x) => x.code === 'unauthorized' && x.client === '2'),
      'the refusal names the revoked client',
    );
    // The name can be registered again with a new token; the old token stays refused.
    const fresh = db.addClient('2');
    assert.notEqual(fresh, s.tokens['2']);
    assert.equal(db.clientByToken(s.tokens['2']!), null);
    assert.equal(db.clientByToken(fresh)?.name, '2');
  } finally {
    db.close();
  }
});
