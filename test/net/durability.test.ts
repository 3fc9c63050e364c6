// What survives a crash: a client killed between training and upload sends the saved update when
// it comes back instead of training the round again on batches it already used; a restarted server
// still knows the clients it heard from, so a slow-to-reconnect client is not left out of the next
// sample; a checkpoint's folder entries are fsynced after their renames.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setup, cli, serverArgs, clientArgs, killAll, roundMetrics } from './helpers.js';
import { saveCheckpoint } from '../../src/fl/checkpoint.js';

after(killAll);

test('net: a client killed after training, before its upload, sends the saved update on restart', {
  timeout: 150_000,
}, async () => {
  const s = await setup({ rounds: 2, clients: ['0', '1'], server: { minClients: 2, roundDeadlineSeconds: 60 } });
  const server = cli('server', serverArgs(s));
  await server.waitFor(/listening on/, 30_000);
  const c1 = cli('client-1', clientArgs(s, '1'));
  const first = cli('client-0a', clientArgs(s, '0'), { FEDBIOT_DEBUG_EXIT_BEFORE_UPLOAD: '0' });
  assert.equal(await first.exit(60_000), 3, first.out);
  assert.match(first.out, /round 1: training/);
  const again = cli('client-0b', clientArgs(s, '0'));
  assert.equal(await server.exit(90_000), 0, server.out);
  for (const c of [c1, again]) assert.equal(await c.exit(20_000), 0, c.out);
  assert.match(again.out, /round 1: sending the update saved before the last exit/);
  assert.doesNotMatch(again.out, /round 1: training/, 'round 1 is not trained twice');
  assert.match(again.out, /round 2: training/);
  const rounds = roundMetrics(s);
  assert.deepEqual(
    rounds.map((r) => r.clients),
    [
      ['0', '1'],
      ['0', '1'],
    ],
  );
});

test('net: a restarted server samples the clients it knew, even before they reconnect', {
  timeout: 150_000,
}, async () => {
  const s = await setup({
    rounds: 1,
    clients: ['0', '1', '2'],
    server: { minClients: 1, startClients: 3, roundDeadlineSeconds: 60, activeSeconds: 120 },
  });
  const before = cli('server-1', serverArgs(s));
  await before.waitFor(/listening on/, 30_000);
  const c0 = cli('client-0', clientArgs(s, '0'));
  const c1 = cli('client-1a', clientArgs(s, '1'));
  // Two of the three start clients are here: the server waits; both are now known to it.
  await before.waitFor(/waiting for clients \(\d of 3 needed\)/, 60_000);
  await c1.waitFor(/waiting for rounds/, 60_000);
  await c0.waitFor(/waiting for rounds/, 60_000);
  before.kill9();
  c1.kill9();
  await before.exit(10_000);
  // Restarted with a start quorum of 2: client 1 (dead for now) still counts as recently seen.
  const after2 = cli('server-2', [...serverArgs(s), '--set', 'server.startClients=2']);
  await after2.waitFor(/round 1\/1 open: sampled 0,1/, 60_000);
  const back = cli('client-1b', clientArgs(s, '1'));
  assert.equal(await after2.exit(90_000), 0, after2.out);
  for (const c of [c0, back]) assert.equal(await c.exit(20_000), 0, c.out);
  assert.deepEqual(roundMetrics(s)[0]!.clients, ['0', '1']);
});

test('checkpoint: every folder a checkpoint renames into is fsynced after the rename', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fedbiot-fsync-'));
  // node:fs itself, observed (the calls still happen): which paths are fsynced, in order with the renames.
  const nodeFs = createRequire(import.meta.url)('node:fs') as typeof fs;
  const events: string[] = [];
  const fdPath = new Map<number, string>();
  const orig = { openSync: nodeFs.openSync, fsyncSync: nodeFs.fsyncSync, renameSync: nodeFs.renameSync };
  nodeFs.openSync = ((p: fs.PathLike, ...rest: unknown[]) => {
    const fd = (orig.openSync as (...a: unknown[]) => number)(p, ...rest);
    fdPath.set(fd, String(p));
    return fd;
  }) as typeof fs.openSync;
  nodeFs.fsyncSync = ((fd: number) => {
    events.push(`fsync ${fdPath.get(fd)}`);
    orig.fsyncSync(fd);
  }) as typeof fs.fsyncSync;
  nodeFs.renameSync = ((a: fs.PathLike, b: fs.PathLike) => {
    events.push(`rename ${String(b)}`);
    orig.renameSync(a, b);
  }) as typeof fs.renameSync;
  syncBuiltinESMExports();
  try {
    const state = new Map([
      ['model.layers.0.self_attn.q_proj.lora_A.weight', { shape: [1, 2], data: new Float32Array([1, 2]) }],
    ]);
    saveCheckpoint(dir, {
      completedRounds: 1,
      emulatorVersion: 0,
      adapter: state,
      emulator: null,
      clients: new Map(),
      extra: {},
    });
  } finally {
    Object.assign(nodeFs, orig);
    syncBuiltinESMExports();
  }
  const renames = events.filter((e) => e.startsWith('rename '));
  assert.ok(renames.length >= 3, events.join('\n'));
  for (const r of renames) {
    const target = r.slice('rename '.length);
    const i = events.indexOf(r);
    assert.equal(
      events[i + 1],
      `fsync ${path.dirname(target)}`,
      `the folder of ${target} is fsynced right after its rename`,
    );
  }
  assert.ok(fs.existsSync(path.join(dir, 'latest.json')));
});
