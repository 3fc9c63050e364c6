// The two halves of compressed round traffic (src/fl/compression.ts) are durable: a server restored
// from its snapshot goes on with the same stream versions (its clients' copies stay valid and get
// deltas), and a client restored from its saved body holds the same states and error feedback, so
// its next upload is byte for byte the one it would have sent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CompressedClient, CompressedServer, checkLayouts } from '../../src/fl/compression.js';
import { CodecError, type NamedArrays } from '../../src/codec/index.js';
import { mulberry32 } from '../../src/util/rng.js';

function state(seed: number, scale = 1): NamedArrays {
  const r = mulberry32(seed);
  const t = (n: number) => Float32Array.from({ length: n }, () => (r() - 0.5) * scale);
  return new Map([
    ['a.lora_A', { shape: [4, 64], data: t(256) }],
    ['a.lora_B', { shape: [64, 4], data: t(256) }],
  ]);
}

test('compression: a restored server and client continue the same chains, bytes unchanged', () => {
  const c = { codec: 'q8' as const, topk: 0.25 };
  const server = new CompressedServer(c, state(1), state(2));
  const client = new CompressedClient(c, server.adapterLayout, server.emulatorLayout);
  for (let round = 0; round < 2; round++) {
    server.beginRound(state(10 + round), state(20 + round), round);
    client.receive(server.payloadFor(client.versions.adapter, client.versions.emulator), `round ${round}`);
    server.readUpdate(client.upload(state(30 + round), round), `update ${round}`);
  }
  assert.deepEqual(client.versions, { adapter: 2, emulator: 2 });

  const server2 = new CompressedServer(c, state(1), state(2));
  server2.restore(server.snapshot());
  const client2 = CompressedClient.fromBuffer(
    c,
    server.adapterLayout,
    server.emulatorLayout,
    client.toBuffer(),
    'client.safetensors',
  );
  assert.deepEqual(client2.versions, client.versions);
  // round 3 on both pairs: the same down bodies (deltas, not whole states) and the same upload
  for (const s of [server, server2]) s.beginRound(state(12), state(22), 2);
  const down = server.payloadFor(2, 2);
  assert.deepEqual(server2.payloadFor(2, 2), down);
  assert.ok(down.length < 2 * 512 * 2, `a q8 delta of both streams, ${down.length} bytes`);
  assert.deepEqual(client2.receive(down, 'r3'), client.receive(down, 'r3'));
  const up = client.upload(state(32), 7);
  assert.deepEqual(client2.upload(state(32), 7), up, 'the error feedback was restored');
  assert.deepEqual(server2.readUpdate(up, 'u3'), server.readUpdate(up, 'u3'));

  // without its residuals the same client sends another body
  const forgetful = new CompressedClient(c, server.adapterLayout, server.emulatorLayout);
  forgetful.receive(server.payloadFor(0, 0), 'whole');
  assert.notDeepEqual(forgetful.upload(state(33), 8), client.upload(state(33), 8));

  assert.throws(
    () => CompressedClient.fromBuffer({ codec: 'q4', topk: null }, server.adapterLayout, null, client.toBuffer(), 'f'),
    /f: codec: saved for codec q8/,
  );
  assert.throws(() => checkLayouts({ adapter: 1 }, { adapter: 2 }, 'join'), CodecError);
});
