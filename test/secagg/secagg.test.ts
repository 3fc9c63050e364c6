// Secure aggregation in-process: masks cancel, a client that drops after the share phase is
// recovered from the survivors' shares, the server's stored inputs are masked, the sum equals
// FedAvg within the quantization error, and a protocol that is not followed is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SecAggClient, SecAggServer, thresholdFor } from '../../src/secagg/protocol.js';
import { decodeFixedSum, encodeFixed, fixedPoint } from '../../src/secagg/fixed-point.js';
import { simulateSecureRound } from '../../src/secagg/round.js';
import { fedAvg } from '../../src/fedbiot/aggregate.js';
import { stateAddScaled, type LoraState } from '../../src/fedbiot/lora-state.js';
import { fillNormal, mulberry32 } from '../../src/util/rng.js';

function randomState(seed: number, std: number): LoraState {
  const r = mulberry32(seed);
  return new Map([
    ['a.lora_A.weight', { shape: [4, 16], data: fillNormal(r, new Float32Array(64), std) }],
    ['a.lora_B.weight', { shape: [16, 4], data: fillNormal(r, new Float32Array(64), std) }],
  ]);
}

function maxDiff(a: LoraState, b: LoraState): number {
  let m = 0;
  for (const [k, v] of a) v.data.forEach((x, i) => (m = Math.max(m, Math.abs(x - b.get(k)!.data[i]!))));
  return m;
}

test('fixed point: sums decode exactly to the rounded values, out-of-range sums are refused', () => {
  const fp = fixedPoint(1, 3);
  const xs = [
    [0.5, -0.25, 1],
    [0.125, -1, -0.75],
    [0.3, 0.3, 0.3],
  ];
  const sum = new Uint32Array(3);
  for (const x of xs) encodeFixed(x, 1, fp).encoded.forEach((v, i) => (sum[i] = (sum[i]! + v) >>> 0));
  decodeFixedSum(sum, fp).forEach((v, i) =>
    assert.ok(Math.abs(v - xs.reduce((a, x) => a + x[i]!, 0)) <= (3 * 0.5) / fp.scale),
  );
  assert.equal(encodeFixed([5, -5], 1, fp).clamped, 2);
  assert.throws(() => decodeFixedSum(Uint32Array.from([0x7fffffff]), fp), /outside the range honest clients can reach/);
});

test('pairwise and self masks cancel; a client dropping after the share phase is recovered', async () => {
  const start = randomState(1, 0.1);
  const uploads = [0, 1, 2, 3].map((i) => ({
    client: `c${i}`,
    samples: 10 + 7 * i,
    state: stateAddScaled(start, randomState(100 + i, 0.01)),
  }));
  for (const drop of [[], ['c2']]) {
    const r = await simulateSecureRound({
      round: 0,
      start,
      uploads,
      settings: { range: 1, threshold: 0.5 },
      uniform: false,
      dropAfterShares: drop,
    });
    assert.deepEqual(r.dropped, drop);
    const survivors = uploads.filter((u) => !drop.includes(u.client));
    const want = fedAvg(survivors);
    const got = stateAddScaled(start, r.sum, 1 / r.divisor);
    // Quantization: each client's value is rounded to 1/scale; float32 adds a relative 1e-7.
    const fp = fixedPoint(1, uploads.length);
    assert.ok(
      maxDiff(got, want) <= (uploads.length * 0.5) / fp.scale / r.divisor + 1e-6,
      `secure sum differs from FedAvg by ${maxDiff(got, want)}`,
    );
    // What the server stored per client is masked: it looks uniform, not like the small update.
    for (const [c, y] of r.stored) {
      const words = [...y].map((w) => w | 0);
      const big = words.filter((w) => Math.abs(w) > 2 ** 28).length;
      assert.ok(
        big > words.length * 0.8,
        `client ${c}'s stored input is not masked (${big} of ${words.length} large words)`,
      );
    }
  }
});

test('the protocol refuses what it must: below-threshold unmasking, double reveal, tampered envelopes, strangers', async () => {
  assert.equal(thresholdFor(4, 0.5), 3);
  assert.equal(thresholdFor(2, 0.5), 2);
  const names = ['a', 'b', 'c', 'd'];
  const server = new SecAggServer(0, 'nonce', 8);
  const clients = names.map((n) => new SecAggClient(n));
  clients.forEach((c) => server.addAdvertise(c.advertise(5)));
  const roster = server.fixRoster();
  for (const c of clients) server.addShares(await c.share(roster));
  // A tampered envelope does not open.
  const env = server.deliveries('a');
  const bad = env.map((e, i) =>
    i === 0 ? { ...e, box: e.box.slice(0, -4) + (e.box.endsWith('AAAA') ? 'BBBB' : 'AAAA') } : e,
  );
  const fresh = new SecAggClient('a');
  await assert.rejects(async () => fresh.maskedInput(env, new Uint32Array(8)), /before the share phase/);
  assert.throws(() => clients[0]!.maskedInput(bad, new Uint32Array(8)), /does not open/);
  // Only two of four send masked inputs: below the threshold 3, the server cannot unmask.
  for (const c of clients.slice(0, 2))
    server.addMasked(c.name, c.maskedInput(server.deliveries(c.name), new Uint32Array(8)));
  assert.throws(() => server.unmaskRequest(), /below the threshold 3/);
  // A client refuses to reveal both shares of one peer, and a request below the threshold.
  assert.throws(() => clients[1]!.unmask({ survivors: ['a', 'b', 'c'], dropped: ['c'] }), /both survived and dropped/);
  assert.throws(() => clients[1]!.unmask({ survivors: ['a', 'b'], dropped: ['c', 'd'] }), /below the threshold/);
  clients[1]!.unmask({ survivors: ['a', 'b', 'c'], dropped: ['d'] });
  assert.throws(
    () => clients[1]!.unmask({ survivors: ['a', 'b', 'd'], dropped: ['c'] }),
    /already unmasked the other way/,
  );
  assert.throws(() => server.addMasked('zed', new Uint32Array(8)), /did not share its keys/);
  assert.throws(
    () => server.addShares({ client: 'a', envelopes: [{ from: 'b', to: 'c', box: '' }] }),
    /claiming to be from 'b'/,
  );
});
