// The buffer pool: exact-length reuse, live/peak accounting, and a cap that evicts the lengths
// least recently returned.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BufferPool } from '../../src/tensor/engine.js';

const KB = 1024;

test('reuses arrays by exact length and zeroes them when asked', () => {
  const pool = new BufferPool(Float32Array, 1024 * KB);
  const a = pool.take(2048, false);
  a.fill(3);
  pool.give(a);
  const b = pool.take(2048, true);
  assert.equal(b, a);
  assert.equal(b[7], 0);
  assert.notEqual(pool.take(4096, false), a);
});

test('counts live bytes and their peak', () => {
  const pool = new BufferPool(Float32Array, 1024 * KB);
  const a = pool.take(2048, false);
  const b = pool.take(4096, false);
  assert.equal(pool.liveBytes, 6144 * 4);
  pool.give(a);
  pool.give(b);
  assert.equal(pool.liveBytes, 0);
  assert.equal(pool.peakBytes, 6144 * 4);
  pool.resetPeak();
  assert.equal(pool.peakBytes, 0);
});

test('over the cap, the least recently returned lengths go first', () => {
  // Room for 3 arrays of about 8 KiB (2048-2051 floats), not 4.
  const pool = new BufferPool(Float32Array, 25 * KB);
  const [x, y, z] = [pool.take(2048, false), pool.take(2049, false), pool.take(2050, false)];
  pool.give(x);
  pool.give(y);
  pool.give(z);
  assert.equal(pool.heldBytes, (2048 + 2049 + 2050) * 4);
  // Length 2048 is returned again, so 2049 is now the stalest.
  const x2 = pool.take(2048, false);
  assert.equal(x2, x);
  pool.give(x2);
  const w = pool.take(2051, false);
  pool.give(w); // over the cap: evicts 2049 only
  assert.equal(pool.heldBytes, (2048 + 2050 + 2051) * 4);
  assert.equal(pool.take(2048, false), x);
  assert.equal(pool.take(2050, false), z);
  assert.notEqual(pool.take(2049, false), y, '2049 was evicted');
  assert.equal(pool.take(2051, false), w, 'the newest is kept');
});

test('an array larger than the whole cap is not kept', () => {
  const pool = new BufferPool(Float32Array, 8 * KB);
  const big = pool.take(4096, false);
  pool.give(big);
  assert.equal(pool.heldBytes, 0);
  assert.notEqual(pool.take(4096, false), big);
});
