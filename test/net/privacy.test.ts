// Central DP and the robust rules in deployment: the driver's aggregation step runs for the network
// transport too. One server and three client processes over 127.0.0.1; epsilon is in the server's
// metrics.jsonl, summary.json and `fedbiot status`; a deployment of what the clients cannot do yet
// (secure aggregation, local DP) is refused at start.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setup, cli, serverArgs, clientArgs, metrics, killAll } from './helpers.js';
import { formatStatus } from '../../src/cli/status.js';
import type { StatusInfo } from '../../src/fl/net/protocol.js';

after(killAll);

test('net: central DP over 3 client processes writes epsilon per round, in summary.json and in status', {
  timeout: 120_000,
}, async () => {
  const s = await setup({
    rounds: 2,
    server: { minClients: 3, roundDeadlineSeconds: 60, lingerSeconds: 4 },
    extra: ['privacy={mode: central, noiseMultiplier: 1.5, clip: 0.05}'],
  });
  const server = cli('server', serverArgs(s));
  await server.waitFor(/listening on/, 30_000);
  const clients = ['0', '1', '2'].map((n) => cli(`client-${n}`, clientArgs(s, n)));
  await server.waitFor(/run complete/, 90_000);
  const st = await fetch(`${s.url}/v1/status`, { headers: { authorization: `Bearer ${s.tokens.admin}` } });
  const text = formatStatus((await st.json()) as StatusInfo);
  assert.equal(await server.exit(30_000), 0, server.out);
  for (const c of clients) assert.equal(await c.exit(20_000), 0, c.out);
  const rounds = metrics(s).filter((l) => typeof l.round === 'number' && (l.round as number) >= 0 && !l.phase);
  const eps = rounds.map((r) => (r.privacy as { epsilon: number }).epsilon);
  assert.equal(eps.length, 2);
  assert.ok(eps[0]! > 0 && eps[1]! > eps[0]!, JSON.stringify(eps));
  const summary = JSON.parse(fs.readFileSync(path.join(s.state, 'summary.json'), 'utf8')) as {
    privacy: { epsilon: number; delta: number };
  };
  assert.deepEqual(summary.privacy, { epsilon: eps[1], delta: 1e-5 });
  assert.match(text, new RegExp(`epsilon ${eps[1]!.toFixed(3)} \\(delta 0.00001\\)`));
});

test('net: the server refuses secure aggregation and local DP, which its clients cannot do yet', {
  timeout: 60_000,
}, async () => {
  for (const [extra, re] of [
    ['secureAggregation=true', /secureAggregation runs in `fedbiot simulate` only/],
    ['privacy={mode: local, noiseMultiplier: 1, clip: 1}', /privacy.mode local runs in `fedbiot simulate` only/],
  ] as const) {
    const s = await setup({ rounds: 1, extra: [extra] });
    const server = cli('server', serverArgs(s));
    assert.notEqual(await server.exit(30_000), 0);
    assert.match(server.out, re);
  }
});
