// One server and three client processes over 127.0.0.1 complete three rounds, and the final
// adapter equals `fedbiot simulate` on the same config and seed (the same algorithm halves in the
// same order of operations).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import {
  setup,
  cli,
  serverArgs,
  clientArgs,
  metrics,
  killAll,
  simulationReference,
  maxAdapterDiff,
} from './helpers.js';
import * as fs from 'node:fs';
import { loadPeftAsState } from '../../src/models/hf-model.js';
import { MANIFEST_FILE } from '../../src/fl/net/artifact.js';
import { makeTransport, request } from '../../src/fl/net/http.js';

after(killAll);

test("net: 1 server + 3 clients complete 3 rounds; final adapter equals the simulation's", {
  timeout: 120_000,
}, async () => {
  const s = await setup({ rounds: 3, server: { minClients: 3, roundDeadlineSeconds: 60 } });
  // A record without a response in client 0's file: skipped, and said so, without changing its data.
  fs.appendFileSync(s.shares[0]!, '{"instruction": "no response here"}\n');
  const t0 = performance.now();
  const server = cli('server', serverArgs(s));
  await server.waitFor(/listening on/, 30_000);
  const later = ['1', '2'].map((n) => cli(`client-${n}`, clientArgs(s, n)));
  // Before client 0's process starts, a request with its token fetches round 1's payload and the first
  // 1000 bytes of a model file: the process then fetches both again, as after a lost reply or an
  // interrupted download. The round's counted traffic stays the simulation's; the rest is re-sent.
  const as0 = makeTransport(s.url, s.tokens['0']!);
  let st: { state: string } = { state: 'wait' };
  for (let i = 0; st.state !== 'train'; i++) {
    assert.ok(i < 600, 'round 1 did not open for client 0');
    await new Promise((r) => setTimeout(r, 100));
    st = JSON.parse((await request(as0, 'GET', 'v1/round')).body.toString('utf8'));
  }
  const early = await request(as0, 'GET', 'v1/round/0/payload?emulatorVersion=-1');
  assert.equal(early.status, 200);
  const art = JSON.parse((await request(as0, 'POST', 'v1/join')).body.toString('utf8')).model as {
    files: { name: string; size: number }[];
  };
  const big = art.files.reduce((a, f) => (f.size > a.size ? f : a));
  const part = await request(as0, 'GET', `v1/model/files/${big.name}`, { headers: { range: 'bytes=0-999' } });
  assert.equal(part.body.length, 1000);
  const clients = [cli('client-0', clientArgs(s, '0')), ...later];
  assert.equal(await server.exit(90_000), 0, server.out);
  for (const c of clients) assert.equal(await c.exit(20_000), 0, c.out);
  const wall = (performance.now() - t0) / 1000;
  const lines = metrics(s);
  const rounds = lines.filter((l) => typeof l.round === 'number' && (l.round as number) >= 0 && !l.phase);
  assert.deepEqual(
    rounds.map((r) => r.round),
    [0, 1, 2],
  );
  for (const r of rounds) {
    assert.deepEqual(r.clients, ['0', '1', '2']);
    assert.ok((r.bytes_down as number) > 0 && (r.bytes_up as number) > 0);
    const per = r.bytes_per_client as Record<string, { down: number; up: number }>;
    assert.deepEqual(Object.keys(per).sort(), ['0', '1', '2']);
  }
  assert.ok(lines.some((l) => l.phase === 'prepare') && lines.some((l) => l.phase === 'final'));
  for (const c of clients) assert.match(c.out, /model ready/);
  assert.match(clients[0]!.out, /warning: .*client-0\.jsonl: skipped 1 invalid record\(s\) of \d+ \(line \d+ /);

  const got = loadPeftAsState(path.join(s.state, 'adapter')).state;
  const ref = await simulationReference(s.config, s.sets);
  const want = ref.adapter;
  // The manifest served with the compressed model names the same split of the same weights.
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(s.state, 'model', MANIFEST_FILE), 'utf8')), ref.manifest);
  const maxDiff = maxAdapterDiff(want, got);
  // Same order of operations, f32 weights on both sides, one compute thread everywhere: bit-identical.
  assert.equal(maxDiff, 0, `max |diff| ${maxDiff}`);
  // One summary layout, and one byte count: the simulation counts the bodies the network sends.
  const netSummary = JSON.parse(fs.readFileSync(path.join(s.state, 'summary.json'), 'utf8'));
  const simSummary = JSON.parse(fs.readFileSync(path.join(ref.out, 'summary.json'), 'utf8'));
  assert.deepEqual(Object.keys(netSummary).sort(), Object.keys(simSummary).sort());
  assert.deepEqual([netSummary.transport, simSummary.transport], ['network', 'simulation']);
  for (const k of ['bytes_down_total', 'bytes_up_total', 'bytes_total', 'bytes_join_per_client'])
    assert.equal(netSummary[k], simSummary[k], k);
  // What moved twice is reported apart: the payload fetched again and the model bytes beyond one copy.
  assert.equal(simSummary.bytes_resent_total, 0);
  assert.equal(netSummary.bytes_resent_total, early.body.length + 1000);
  assert.deepEqual(
    rounds.map((r) => r.bytes_resent),
    [early.body.length, 0, 0],
  );
  const simRounds = fs
    .readFileSync(path.join(ref.out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((l) => l.round >= 0 && !l.phase);
  assert.deepEqual(
    rounds.map((r) => r.bytes_per_client),
    simRounds.map((r) => r.bytes_per_client),
  );
  // What a client really downloaded to join is the count both report.
  const joined = Object.values(
    JSON.parse(fs.readFileSync(path.join(s.state, 'model', 'artifact.json'), 'utf8')).files as { size: number }[],
  ).reduce((a, f) => a + f.size, 0);
  assert.equal(netSummary.bytes_join_per_client, joined);
  process.stderr.write(
    `# happy path: 3 rounds in ${wall.toFixed(1)} s wall, max |adapter diff| vs reference = ${maxDiff}\n`,
  );
});
