// Secure aggregation over the network with real processes on 127.0.0.1: one server, five clients;
// in round 1 client 1 leaves after the key exchange (before its masked input) and client 3 right
// after sending its masked input (it never answers the unmask request). The server stores only
// masked inputs, the round's aggregate equals plain FedAvg of the four survivors within the
// fixed-point error, and it is the simulation's secure aggregate for the same run bit for bit. With
// central DP as well, the clients clip and the server noises the sum, as in the simulation.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  setup,
  cli,
  serverArgs,
  clientArgs,
  roundMetrics,
  killAll,
  simulationReference,
  maxAdapterDiff,
} from './helpers.js';
import { loadPeftAsState } from '../../src/models/hf-model.js';
import { loadCheckpoint } from '../../src/fl/checkpoint.js';
import { fedAvgAggregator } from '../../src/fl/driver.js';
import { fixedPoint } from '../../src/secagg/fixed-point.js';

after(killAll);

const CLIENTS = ['0', '1', '2', '3', '4'];

test('net: secure aggregation with a client dropping before and one after its masked input', {
  timeout: 240_000,
}, async () => {
  const s = await setup({
    rounds: 1,
    clients: CLIENTS,
    // Each phase waits for its missing clients until this deadline.
    server: { minClients: 5, roundDeadlineSeconds: 15, lingerSeconds: 1 },
    extra: ['clients.count=5', 'secureAggregation=true'],
  });
  const server = cli('server', serverArgs(s));
  await server.waitFor(/listening on/, 30_000);
  const env = (n: string): Record<string, string> =>
    n === '1' ? { FEDBIOT_DEBUG_EXIT_BEFORE_UPLOAD: '0' } : n === '3' ? { FEDBIOT_DEBUG_EXIT_AFTER_UPLOAD: '0' } : {};
  const clients = CLIENTS.map((n) => cli(`client-${n}`, clientArgs(s, n), env(n)));
  assert.equal(await server.exit(150_000), 0, server.out);
  for (const [i, c] of clients.entries()) assert.equal(await c.exit(20_000), i === 1 || i === 3 ? 3 : 0, c.out);
  assert.match(clients[1]!.out, /exiting before the masked input/);
  assert.match(clients[3]!.out, /exiting after the masked input/);

  const [r0] = roundMetrics(s);
  assert.deepEqual(r0!.clients, ['0', '2', '3', '4']);
  const sa = r0!.secure_aggregation as { survivors: number; dropped: string[]; bytes_up: number };
  assert.deepEqual([sa.survivors, sa.dropped], [4, ['1']]);
  assert.ok(sa.bytes_up > 0);

  // What the server stored per client is the masked input, not an update: as fixed point, an honest
  // encoding has every word within the range; masked words are uniform over 2^32.
  const roundDir = path.join(s.state, 'uploads', 'round-0000');
  assert.deepEqual(fs.readdirSync(roundDir).sort(), ['0.masked', '2.masked', '3.masked', '4.masked']);
  const fp = fixedPoint(1, 5);
  for (const f of fs.readdirSync(roundDir)) {
    const b = fs.readFileSync(path.join(roundDir, f));
    let inRange = 0;
    for (let i = 0; i < b.length; i += 4) if (Math.abs(b.readInt32LE(i)) <= fp.scale) inRange++;
    assert.ok(inRange / (b.length / 4) < 0.1, `${f}: ${inRange} of ${b.length / 4} words look like an update`);
  }

  const got = loadPeftAsState(path.join(s.state, 'adapter')).state;
  // The simulation of the same run with the same dropout (client 3's input arrived, so it counts).
  const sim = await simulationReference(s.config, s.sets, { dropAfterShares: ['1'] });
  assert.equal(maxAdapterDiff(sim.adapter, got), 0);
  // Plain FedAvg of the survivors' updates (no masking, no fixed point), same run.
  const survivors = new Set(['0', '2', '3', '4']);
  const plain = await simulationReference(
    s.config,
    s.sets.filter((x) => x !== 'secureAggregation=true'),
    {
      hooks: {
        aggregate: (updates, ctx) =>
          fedAvgAggregator(
            updates.filter((u) => survivors.has(u.client)),
            ctx,
          ),
      },
    },
  );
  const start = loadCheckpoint(path.join(s.state, 'checkpoints'), 0)!.adapter;
  const moved = maxAdapterDiff(start, plain.adapter);
  const err = maxAdapterDiff(plain.adapter, got);
  // Four survivors, each value rounded to 1/scale, over their weight (> 0.5 of the roster's).
  assert.ok(err < (4 * 0.5) / fp.scale / 0.5 + 1e-7, `secure vs plain FedAvg: ${err}`);
  assert.ok(moved > 1000 * err, `the update (${moved}) is far above the error (${err})`);
});

test('net: secure aggregation composes with central DP: clients clip, the server noises the unmasked sum', {
  timeout: 150_000,
}, async () => {
  const s = await setup({
    rounds: 1,
    server: { minClients: 3, roundDeadlineSeconds: 30, lingerSeconds: 1 },
    extra: ['secureAggregation=true', 'privacy={mode: central, noiseMultiplier: 0.5, clip: 0.05}'],
  });
  const server = cli('server', serverArgs(s));
  await server.waitFor(/listening on/, 30_000);
  const clients = ['0', '1', '2'].map((n) => cli(`client-${n}`, clientArgs(s, n)));
  assert.equal(await server.exit(90_000), 0, server.out);
  for (const c of clients) assert.equal(await c.exit(20_000), 0, c.out);
  const [r0] = roundMetrics(s);
  assert.equal((r0!.secure_aggregation as { survivors: number }).survivors, 3);
  assert.ok((r0!.privacy as { epsilon: number }).epsilon > 0);
  // The server's noise is keyed by the run seed, the clients' clipping is exact: the simulation's adapter.
  const got = loadPeftAsState(path.join(s.state, 'adapter')).state;
  const sim = await simulationReference(s.config, s.sets);
  assert.equal(maxAdapterDiff(sim.adapter, got), 0);
});
