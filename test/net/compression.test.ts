// Compressed round traffic over the network: a server and three client processes on 127.0.0.1 with
// `compression: {codec: q8}` agree on the codec at join, exchange 8-bit deltas both ways, and end
// with the adapter and the byte counts of `fedbiot simulate` on the same config, bit for bit, even
// though one client is killed between training and upload and comes back (its received states and
// error feedback are restored from its cache). A client that offers no codec is refused at join, a
// malformed compressed update with the reason.
// The emulator is Q8_0 (algorithm.emulator.weights): the clients download its blocks as they are and
// compute with them, as the server aligned it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  setup,
  cli,
  serverArgs,
  clientArgs,
  killAll,
  roundMetrics,
  simulationReference,
  maxAdapterDiff,
  simulatedRounds,
} from './helpers.js';
import { loadPeftAsState, QUANTIZED_FILE } from '../../src/models/hf-model.js';
import { makeTransport, replyReason, request } from '../../src/fl/net/http.js';

after(killAll);

test('net: q8 compression and a Q8_0 emulator end to end equal the simulation (adapter and bytes), across a client restart', {
  timeout: 240_000,
}, async () => {
  const s = await setup({
    rounds: 3,
    server: { minClients: 3, roundDeadlineSeconds: 90 },
    extra: ['compression={codec: q8}', 'algorithm.emulator={weights: q8_0}'],
  });
  const server = cli('server', serverArgs(s));
  await server.waitFor(/listening on/, 30_000);
  // A join without a codec offer (an older client) is refused with the reason.
  const bare = await request(makeTransport(s.url, s.tokens['2']!), 'POST', 'v1/join');
  assert.equal(bare.status, 422);
  const why = replyReason(bare);
  assert.equal(why.code, 'codec');
  assert.match(why.reason, /codec q8.*offers no codec/);

  const c0 = cli('client-0', clientArgs(s, '0'));
  const first = cli('client-1a', clientArgs(s, '1'), { FEDBIOT_DEBUG_EXIT_BEFORE_UPLOAD: '1' });
  // Client 2 polls by hand until round 1 opens for it, then sends malformed compressed updates:
  // each is refused with the field at fault, and none counts as its upload.
  const t2 = makeTransport(s.url, s.tokens['2']!);
  let st: { state: string; nonce?: string } = { state: 'wait' };
  for (let i = 0; i < 600 && st.state !== 'train'; i++) {
    st = JSON.parse((await request(t2, 'GET', 'v1/round')).body.toString('utf8'));
    if (st.state !== 'train') await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(st.state, 'train');
  const post = (body: Buffer, meta: unknown) =>
    request(t2, 'POST', 'v1/round/0/update', {
      body,
      headers: {
        'x-fedbiot-metrics': JSON.stringify({ meanLoss: 1, tokens: 1, seconds: 1 }),
        ...(meta === undefined ? {} : { 'x-fedbiot-update': JSON.stringify(meta) }),
      },
    });
  const meta = { round: 0, nonce: st.nonce, samples: 8 };
  const garbage = await post(Buffer.from('not a compressed update at all'), meta);
  assert.equal(garbage.status, 422);
  assert.equal(replyReason(garbage).code, 'bad-body');
  assert.match(replyReason(garbage).reason, /magic: expected "FBCU"/);
  const noMeta = await post(Buffer.from('FBCU'), undefined);
  assert.equal(replyReason(noMeta).code, 'bad-metadata');
  assert.match(replyReason(noMeta).reason, /x-fedbiot-update/);
  const c2 = cli('client-2', clientArgs(s, '2'));
  assert.equal(await first.exit(120_000), 3, first.out);
  assert.match(first.out, /round 2: training/);
  const again = cli('client-1b', clientArgs(s, '1'));
  assert.equal(await server.exit(120_000), 0, server.out);
  for (const c of [c0, c2, again]) assert.equal(await c.exit(20_000), 0, c.out);
  assert.match(again.out, /round 2: sending the update saved before the last exit/);
  assert.match(again.out, /round 3: training/);
  // the client keeps one file of what it holds, the latest round's
  const cache1 = fs.readdirSync(path.join(s.dir, 'cache-1'));
  assert.deepEqual(
    cache1.filter((f) => f.includes('-codec-')),
    ['client-1-codec-2.safetensors'],
  );

  // the download carries the emulator's Q8_0 blocks in their own file
  const art = JSON.parse(fs.readFileSync(path.join(s.state, 'model', 'artifact.json'), 'utf8')) as {
    files: { name: string; size: number }[];
  };
  assert.ok(art.files.some((f) => f.name === QUANTIZED_FILE));

  const ref = await simulationReference(s.config, s.sets);
  const got = loadPeftAsState(path.join(s.state, 'adapter')).state;
  const maxDiff = maxAdapterDiff(ref.adapter, got);
  assert.equal(maxDiff, 0, `max |adapter diff| ${maxDiff}`);
  const net = roundMetrics(s);
  const sim = simulatedRounds(ref.out);
  assert.deepEqual(
    net.map((r) => r.bytes_per_client),
    sim.map((r) => r.bytes_per_client),
  );
  const netSummary = JSON.parse(fs.readFileSync(path.join(s.state, 'summary.json'), 'utf8'));
  const simSummary = JSON.parse(fs.readFileSync(path.join(ref.out, 'summary.json'), 'utf8'));
  for (const k of ['bytes_down_total', 'bytes_up_total', 'bytes_total', 'bytes_join_per_client'])
    assert.equal(netSummary[k], simSummary[k], k);
  // q8 bodies: an f32 upload of this adapter is about 4x larger than what was sent
  const up = (net[1]!.bytes_per_client as Record<string, { up: number }>)['0']!.up;
  const f32 = [...got.values()].reduce((a, t) => a + t.data.length * 4, 0);
  assert.ok(f32 / up > 3, `a q8 upload of ${up} bytes against ${f32} bytes of f32 values`);
  process.stderr.write(`# compressed network run: max |adapter diff| ${maxDiff}, upload ${up} of ${f32} f32 bytes\n`);
});
