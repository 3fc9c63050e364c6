// Differential privacy in deployment: the driver's aggregation step runs for the network transport
// too (central DP), and the join answer tells clients to clip and noise their uploads (local DP).
// One server and three client processes over 127.0.0.1; epsilon is in the server's metrics.jsonl,
// summary.json and `fedbiot status`. Secure aggregation over the network: secagg.test.ts.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  setup,
  cli,
  serverArgs,
  clientArgs,
  metrics,
  roundMetrics,
  killAll,
  simulationReference,
  maxAdapterDiff,
} from './helpers.js';
import { loadPeftAsState } from '../../src/models/hf-model.js';
import { loadCheckpoint, loadState } from '../../src/fl/checkpoint.js';
import { stateDiff, stateNorm } from '../../src/fedbiot/lora-state.js';
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

test('net: local DP over 3 client processes: clients clip and noise before upload, as in the simulation', {
  timeout: 150_000,
}, async () => {
  const s = await setup({
    rounds: 2,
    server: { minClients: 3, roundDeadlineSeconds: 60, lingerSeconds: 1 },
    extra: ['privacy={mode: local, noiseMultiplier: 0.5, clip: 0.05}'],
  });
  const server = cli('server', serverArgs(s));
  await server.waitFor(/listening on/, 30_000);
  // Seeded noise (the run's seed, 0), so the run can be compared with the simulation's.
  const clients = ['0', '1', '2'].map((n) => cli(`client-${n}`, clientArgs(s, n, ['--noise-seed', '0'])));
  assert.equal(await server.exit(90_000), 0, server.out);
  for (const c of clients) assert.equal(await c.exit(20_000), 0, c.out);
  const got = loadPeftAsState(path.join(s.state, 'adapter')).state;
  const ref = await simulationReference(s.config, s.sets);
  assert.equal(maxAdapterDiff(ref.adapter, got), 0);
  // Local DP charges every round at sampling rate 1; the server's epsilon is the simulation's.
  const eps = roundMetrics(s).map((r) => (r.privacy as { epsilon: number }).epsilon);
  const simEps = fs
    .readFileSync(path.join(ref.out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { round: number; phase?: string; privacy?: { epsilon: number } })
    .filter((l) => l.round >= 0 && !l.phase)
    .map((l) => l.privacy!.epsilon);
  assert.deepEqual(eps, simEps);
  assert.ok(eps[1]! > eps[0]! && eps[0]! > 0);
  // What the server received is clipped and noised: far beyond the clip norm (0.05), at the noise's
  // expected norm sqrt(values) * 0.025.
  const start = loadCheckpoint(path.join(s.state, 'checkpoints'), 0)!.adapter;
  const up = stateDiff(loadState(path.join(s.state, 'uploads', 'round-0000', '0.safetensors')), start);
  const values = [...up.values()].reduce((a, v) => a + v.data.length, 0);
  const expected = Math.sqrt(values) * 0.025;
  assert.ok(Math.abs(stateNorm(up) / expected - 1) < 0.1, `upload norm ${stateNorm(up)}, noise ${expected}`);
});
