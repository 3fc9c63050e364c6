// GGUF block quantization: Q8_0, Q4_0 and Q4_K within their step sizes, written and read back
// through the container, and the per-tensor choice of a quantized export. llama.cpp reading these
// files is checked in test/models/llama-cpp-quant.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { dequantizeRows, quantBytes, quantizeRows, type GgufQuantType } from '../../src/io/gguf-quant.js';
import { GgufReader, writeGguf } from '../../src/io/gguf.js';
import { quantTypeFor } from '../../src/io/gguf-llama.js';
import { mulberry32, fillNormal } from '../../src/util/rng.js';
import { tmpDir } from './helpers.js';

function randn(n: number, seed: number): Float32Array {
  const x = fillNormal(mulberry32(seed), new Float32Array(n), 1);
  // rows of different magnitude, and an offset so Q4_K's mins matter
  for (let i = 0; i < n; i++) x[i] = x[i]! * 10 ** ((Math.floor(i / 512) % 4) - 2) + (i % 1024 < 256 ? 0.01 : 0);
  return x;
}

test('Q8_0, Q4_0 and Q4_K round-trip within half a quantization step (plus f16 scale rounding)', () => {
  const rows = 8;
  const cols = 512;
  const x = randn(rows * cols, 1);
  for (const type of ['Q8_0', 'Q4_0', 'Q4_K'] as GgufQuantType[]) {
    const q = quantizeRows(type, x, rows, cols);
    assert.equal(q.length, quantBytes(type, rows, cols));
    const y = dequantizeRows(type, q, rows, cols);
    const block = 32;
    let worstRel = 0;
    for (let b = 0; b < x.length / block; b++) {
      let mn = Infinity;
      let mx = -Infinity;
      for (let i = b * block; i < (b + 1) * block; i++) {
        mn = Math.min(mn, x[i]!);
        mx = Math.max(mx, x[i]!);
      }
      const amax = Math.max(Math.abs(mn), Math.abs(mx));
      // a step: amax/127 (Q8_0), amax/8 (Q4_0), range/15 with the min clipped to <= 0 (Q4_K)
      const step = type === 'Q8_0' ? amax / 127 : type === 'Q4_0' ? amax / 8 : (mx - Math.min(mn, 0)) / 15;
      for (let i = b * block; i < (b + 1) * block; i++) {
        const err = Math.abs(x[i]! - y[i]!);
        // Q4_K's 6-bit sub-block scales and mins add up to one more step of error; Q4_0's codes
        // reach -8 steps on the sign of the largest value but only +7 on the other, which clips by one
        const bound = type === 'Q4_K' ? step * 1.6 : type === 'Q4_0' ? step + amax * 2e-3 : step * 0.5 + amax * 2e-3;
        worstRel = Math.max(worstRel, err / step);
        assert.ok(err <= bound, `${type} entry ${i}: |${x[i]} - ${y[i]}| = ${err} > ${bound}`);
      }
    }
    console.log(`${type}: worst error ${worstRel.toFixed(3)} steps`);
  }
  assert.throws(() => quantizeRows('Q4_K', new Float32Array(64), 1, 64), /multiple of 256/);
  // GGUF rows are whole blocks: the engine's partial last Q8_0 / Q4_0 block is not written here
  for (const type of ['Q8_0', 'Q4_0'] as const)
    assert.throws(() => quantizeRows(type, new Float32Array(40), 1, 40), /multiple of 32/);
});

test('quantized tensors are written and read back through GGUF (raw blocks and decoded values)', () => {
  const file = path.join(tmpDir(), 'q.gguf');
  const x = randn(4 * 256, 2);
  const tensors = (['Q8_0', 'Q4_0', 'Q4_K'] as GgufQuantType[]).map((type) => ({
    name: `w.${type}`,
    shape: [4, 256],
    type,
    raw: quantizeRows(type, x, 4, 256),
  }));
  writeGguf(file, {
    kv: [],
    tensors: [...tensors, { name: 'norm', shape: [5], type: 'F32', data: Float32Array.from([1, 2, 3, 4, 5]) }],
  });
  const r = GgufReader.open(file);
  try {
    for (const t of tensors) {
      const raw = r.loadRaw(t.name);
      assert.equal(raw.type, t.type);
      assert.deepEqual(raw.shape, [4, 256]);
      assert.deepEqual(raw.bytes, t.raw);
      assert.deepEqual(r.load(t.name).data, dequantizeRows(t.type, t.raw, 4, 256));
    }
    assert.deepEqual([...r.load('norm').data], [1, 2, 3, 4, 5]);
  } finally {
    r.close();
  }
  assert.throws(
    () =>
      writeGguf(file, { kv: [], tensors: [{ name: 'bad', shape: [4, 256], type: 'Q8_0', raw: new Uint8Array(10) }] }),
    /bad.*takes 1088 bytes, got 10/,
  );
});

test("a quantized export's per-tensor types follow llama.cpp's mix", () => {
  assert.equal(quantTypeFor('q8_0', 'blk.0.attn_q.weight', 256), 'Q8_0');
  assert.equal(quantTypeFor('q8_0', 'blk.0.ffn_down.weight', 688), 'F16');
  assert.equal(quantTypeFor('q4_0', 'blk.0.attn_q.weight', 256), 'Q4_0');
  assert.equal(quantTypeFor('q4_0', 'output.weight', 256), 'Q8_0');
  assert.equal(quantTypeFor('q4_k_m', 'blk.0.attn_q.weight', 256), 'Q4_K');
  assert.equal(quantTypeFor('q4_k_m', 'blk.0.attn_q.weight', 96), 'Q4_0');
  assert.equal(quantTypeFor('q4_k_m', 'blk.3.attn_v.weight', 256), 'Q8_0');
  assert.equal(quantTypeFor('q4_k_m', 'token_embd.weight', 256), 'Q4_K');
});
