// Failures: the server killed with SIGKILL mid-round resumes from its database and checkpoints and
// the run ends with the right rounds, each counted once; a client killed mid-round does not block
// the round (it closes at its deadline with the others), and the client rejoins later.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { setup, cli, serverArgs, clientArgs, metrics, killAll } from './helpers.js';
import { ServerDb } from '../../src/fl/net/db.js';

after(killAll);

const roundLines = (s: Parameters<typeof metrics>[0]) =>
  metrics(s).filter((l) => typeof l.round === 'number' && (l.round as number) >= 0 && !l.phase);

test('net: server killed -9 mid-round, restarted: the run completes, nothing lost or double-counted', {
  timeout: 150_000,
}, async () => {
  const s = await setup({ rounds: 3, clients: ['0', '1'], server: { minClients: 2, roundDeadlineSeconds: 60 } });
  const first = cli('server-1', serverArgs(s));
  await first.waitFor(/listening on/, 30_000);
  // Client 1 is slow, so round 2 is reliably open (with client 0's upload in) when the server dies.
  const c0 = cli('client-0', clientArgs(s, '0'));
  const c1 = cli('client-1', clientArgs(s, '1'), { FEDBIOT_DEBUG_TRAIN_DELAY_MS: '1500' });
  await first.waitFor(/round 2: upload from 0 accepted/, 60_000);
  first.kill9();
  await first.exit(10_000);
  const second = cli('server-2', serverArgs(s));
  await second.waitFor(/resuming: 1 of 3 rounds completed/, 30_000);
  assert.equal(await second.exit(90_000), 0, second.out);
  assert.equal(await c0.exit(20_000), 0, c0.out);
  assert.equal(await c1.exit(20_000), 0, c1.out);
  const rounds = roundLines(s);
  assert.deepEqual(
    rounds.map((r) => r.round),
    [0, 1, 2],
  );
  for (const r of rounds) assert.deepEqual(r.clients, ['0', '1']);
  const db = new ServerDb(path.join(s.state, 'server.db'));
  try {
    assert.deepEqual(
      db.rounds().map((r) => [r.round, r.status]),
      [
        [0, 'completed'],
        [1, 'completed'],
        [2, 'completed'],
      ],
    );
    for (const r of [0, 1, 2]) assert.equal(db.uploads(r).length, 2);
  } finally {
    db.close();
  }
  // Client 0's round-2 upload survived the crash: it did not train round 2 twice.
  assert.equal((c0.out.match(/round 2: training/g) ?? []).length, 1, c0.out);
});

test('net: a client killed mid-round; the round closes at its deadline; the client rejoins later', {
  timeout: 150_000,
}, async () => {
  const s = await setup({ rounds: 3, server: { minClients: 2, startClients: 3, roundDeadlineSeconds: 4 } });
  const server = cli('server', serverArgs(s));
  await server.waitFor(/listening on/, 30_000);
  const c0 = cli('client-0', clientArgs(s, '0'));
  const c1 = cli('client-1', clientArgs(s, '1'));
  const slow = cli('client-2a', clientArgs(s, '2'), { FEDBIOT_DEBUG_TRAIN_DELAY_MS: '60000' });
  const m = await slow.waitFor(/round (\d+): training/, 60_000);
  const killedIn = Number(m[1]) - 1;
  slow.kill9();
  await slow.exit(10_000);
  await server.waitFor(new RegExp(`round ${killedIn + 1}: deadline reached with 2 of 3 uploads; missing 2`), 30_000);
  const back = cli('client-2b', clientArgs(s, '2'));
  assert.equal(await server.exit(90_000), 0, server.out);
  for (const c of [c0, c1, back]) assert.equal(await c.exit(20_000), 0, c.out);
  assert.match(back.out, /fetched 0 bytes/, 'the model came from the cache');
  const rounds = roundLines(s);
  assert.deepEqual(
    rounds.map((r) => r.round),
    [0, 1, 2],
  );
  const killedRound = rounds[killedIn]!;
  assert.deepEqual(killedRound.clients, ['0', '1']);
  assert.deepEqual(killedRound.missing, ['2']);
  assert.ok(
    rounds.slice(killedIn + 1).some((r) => (r.clients as string[]).includes('2')),
    'client 2 trained again after rejoining',
  );
  assert.ok(killedIn < 2, `client 2 was killed in round ${killedIn + 1}`);
});
