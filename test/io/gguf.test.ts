import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { quantize } from '../../src/io/dtype.js';
import { GgufReader, gv, writeGguf } from '../../src/io/gguf.js';
import {
  ggufToHfName,
  hfToGgufName,
  permuteRotary,
  readLlamaGguf,
  readLoraGguf,
  writeLlamaGguf,
  writeLoraGguf,
} from '../../src/io/gguf-llama.js';
import { randTensor, randomLlama, rng, tinyConfig, tmpDir } from './helpers.js';

function smallGguf(): Buffer {
  const dir = tmpDir();
  const p = path.join(dir, 'x.gguf');
  const r = rng(3);
  writeGguf(p, {
    kv: [
      ['general.architecture', gv.str('llama')],
      ['general.alignment', gv.u32(32)],
      ['a.u64', gv.u64(2n ** 60n)],
      ['a.f32', gv.f32(0.5)],
      ['a.bool', gv.bool(true)],
      ['a.strs', gv.arr('string', ['x', 'ünï', ''])],
      ['a.i32s', gv.arr('i32', [-1, 2, 3])],
    ],
    tensors: [
      { name: 't.f32', shape: [3, 5], type: 'F32', data: randTensor([15], r).data },
      { name: 't.f16', shape: [7], type: 'F16', data: randTensor([7], r).data },
      { name: 't.bf16', shape: [2, 1, 3], type: 'BF16', data: randTensor([6], r).data },
    ],
  });
  return fs.readFileSync(p);
}

test('GGUF container round trip: typed keys, shapes reversed on disk, 32-byte alignment', () => {
  const buf = smallGguf();
  const g = GgufReader.fromBuffer(buf);
  assert.equal(g.gguf.version, 3);
  assert.equal(g.get('a.u64'), 2n ** 60n);
  assert.equal(g.get('a.f32'), 0.5);
  assert.equal(g.get('a.bool'), true);
  assert.deepEqual(g.get('a.strs'), ['x', 'ünï', '']);
  assert.deepEqual(g.get('a.i32s'), [-1, 2, 3]);
  assert.equal(g.gguf.dataStart % 32, 0);
  for (const t of g.tensors.values()) assert.equal(t.offset % 32, 0);
  assert.deepEqual(g.tensors.get('t.f32')!.shape, [3, 5]);
  assert.deepEqual(g.load('t.bf16').shape, [2, 1, 3]);
  assert.equal(g.load('t.f16').dtype, 'F16');
  // on disk the first dim written is the contiguous one (5 for a [3, 5] matrix)
  const nameAt = buf.indexOf('t.f32');
  assert.equal(buf.readUInt32LE(nameAt + 5), 2);
  assert.equal(buf.readBigUInt64LE(nameAt + 9), 5n);
  assert.equal(buf.readBigUInt64LE(nameAt + 17), 3n);
});

test('rotary permutation matches the rotate-half vs interleaved rope identity', () => {
  // rope_interleaved(P q) == P rope_half(q): check with a random head vector
  const hd = 8;
  const nHead = 2;
  const r = rng(5);
  const q = randTensor([nHead * hd, 1], r).data;
  const pos = 3;
  const theta = 10000;
  const ropeHalf = (v: Float32Array) => {
    const o = Float32Array.from(v);
    for (let h = 0; h < nHead; h++)
      for (let i = 0; i < hd / 2; i++) {
        const f = pos / theta ** ((2 * i) / hd);
        const a = h * hd + i,
          b = a + hd / 2;
        o[a] = v[a]! * Math.cos(f) - v[b]! * Math.sin(f);
        o[b] = v[a]! * Math.sin(f) + v[b]! * Math.cos(f);
      }
    return o;
  };
  const ropeInter = (v: Float32Array) => {
    const o = Float32Array.from(v);
    for (let h = 0; h < nHead; h++)
      for (let i = 0; i < hd / 2; i++) {
        const f = pos / theta ** ((2 * i) / hd);
        const a = h * hd + 2 * i,
          b = a + 1;
        o[a] = v[a]! * Math.cos(f) - v[b]! * Math.sin(f);
        o[b] = v[a]! * Math.sin(f) + v[b]! * Math.cos(f);
      }
    return o;
  };
  const lhs = ropeInter(permuteRotary(q, nHead * hd, 1, nHead));
  const rhs = permuteRotary(ropeHalf(q), nHead * hd, 1, nHead);
  for (let i = 0; i < lhs.length; i++) assert.ok(Math.abs(lhs[i]! - rhs[i]!) < 1e-6);
  const m = randTensor([16, 3], r).data;
  assert.deepEqual(permuteRotary(permuteRotary(m, 16, 3, 2), 16, 3, 2, true), m);
  assert.throws(() => permuteRotary(m, 16, 3, 3), /cannot permute/);
});

test('LLaMA GGUF: llama.cpp names and keys, round trip back to HF layout (F32 and F16)', () => {
  const c = tinyConfig();
  const w = randomLlama(c, 8);
  const vocab = {
    model: 'gpt2' as const,
    pre: 'gpt-2',
    tokens: Array.from({ length: c.vocabSize }, (_, i) => `t${i}`),
    scores: new Array(c.vocabSize).fill(0),
    tokenTypes: new Array(c.vocabSize).fill(1),
    merges: [],
    bosId: 1,
    eosId: 2,
    addBos: true,
    addEos: false,
  };
  for (const type of ['F32', 'F16'] as const) {
    const p = path.join(tmpDir(), 'm.gguf');
    writeLlamaGguf(p, { config: c, tensors: w, vocab, type });
    const { config, tensors, reader } = readLlamaGguf(p);
    try {
      assert.equal(reader.get('general.architecture'), 'llama');
      assert.equal(reader.get('llama.attention.head_count_kv'), 2);
      assert.equal(reader.get('llama.rope.dimension_count'), 8);
      assert.equal(reader.get('tokenizer.ggml.model'), 'gpt2');
      assert.equal(reader.tensors.get('blk.1.attn_norm.weight')!.type, 'F32', 'norms stay F32');
      assert.equal(reader.tensors.get('blk.0.ffn_down.weight')!.type, type);
      assert.deepEqual(reader.tensors.get('blk.0.attn_k.weight')!.shape, [16, 32]);
      assert.equal(config.numKeyValueHeads, 2);
      assert.equal(config.headDim, 8);
      for (const [n, t] of w)
        assert.deepEqual(tensors.get(n)!.data, t.shape.length === 1 ? t.data : quantize(type, t.data), n);
      // q is stored permuted, v is not
      const rawQ = reader.load('blk.0.attn_q.weight').data;
      assert.notDeepEqual(rawQ, quantize(type, w.get('model.layers.0.self_attn.q_proj.weight')!.data));
      assert.deepEqual(
        reader.load('blk.0.attn_v.weight').data,
        quantize(type, w.get('model.layers.0.self_attn.v_proj.weight')!.data),
      );
    } finally {
      reader.close();
    }
  }
  assert.equal(hfToGgufName('model.layers.12.mlp.gate_proj.weight'), 'blk.12.ffn_gate.weight');
  assert.equal(ggufToHfName('blk.3.attn_output.weight'), 'model.layers.3.self_attn.o_proj.weight');
  assert.equal(hfToGgufName('model.layers.0.self_attn.rotary_emb.inv_freq'), undefined);
  assert.throws(
    () => writeLlamaGguf(path.join(tmpDir(), 'x.gguf'), { config: c, tensors: w, vocab: { ...vocab, tokens: ['a'] } }),
    /tokenizer has 1 tokens but config.vocab_size is 300/,
  );
});

test('LoRA GGUF: adapter keys, lora_b of q/k permuted, round trip', () => {
  const c = tinyConfig();
  const r = rng(4);
  const tensors = new Map([
    ['layers.0.self_attn.q_proj', { A: randTensor([4, 32], r), B: randTensor([32, 4], r) }],
    ['layers.1.self_attn.k_proj', { A: randTensor([4, 32], r), B: randTensor([16, 4], r) }],
    ['layers.1.mlp.up_proj', { A: randTensor([4, 32], r), B: randTensor([64, 4], r) }],
  ]);
  const p = path.join(tmpDir(), 'lora.gguf');
  writeLoraGguf(p, {
    baseConfig: c,
    lora: {
      r: 4,
      loraAlpha: 8,
      loraDropout: 0,
      targetModules: ['q_proj', 'k_proj', 'up_proj'],
      baseModelNameOrPath: null,
    },
    tensors,
  });
  const g = GgufReader.open(p);
  assert.equal(g.get('general.type'), 'adapter');
  assert.equal(g.get('adapter.type'), 'lora');
  assert.equal(g.get('adapter.lora.alpha'), 8);
  assert.deepEqual(
    [...g.tensors.keys()],
    [
      'blk.0.attn_q.weight.lora_a',
      'blk.0.attn_q.weight.lora_b',
      'blk.1.attn_k.weight.lora_a',
      'blk.1.attn_k.weight.lora_b',
      'blk.1.ffn_up.weight.lora_a',
      'blk.1.ffn_up.weight.lora_b',
    ],
  );
  assert.deepEqual(
    g.load('blk.1.attn_k.weight.lora_b').data,
    permuteRotary(tensors.get('layers.1.self_attn.k_proj')!.B.data, 16, 4, 2),
  );
  assert.deepEqual(g.load('blk.1.ffn_up.weight.lora_b').data, tensors.get('layers.1.mlp.up_proj')!.B.data);
  g.close();
  const back = readLoraGguf(p, c);
  assert.equal(back.alpha, 8);
  for (const [k, v] of tensors) {
    assert.deepEqual(back.tensors.get(k)!.A.data, v.A.data);
    assert.deepEqual(back.tensors.get(k)!.B.data, v.B.data);
  }
});

test('GGUF reader rejects hostile input with clear errors', () => {
  const good = smallGguf();
  const cases: [(b: Buffer) => Buffer, RegExp][] = [
    [(b) => b.subarray(0, 10), /too short/],
    [
      (b) => {
        b.write('GGUX', 0);
        return b;
      },
      /bad magic/,
    ],
    [
      (b) => {
        b.writeUInt32LE(9, 4);
        return b;
      },
      /unsupported GGUF version 9/,
    ],
    [
      (b) => {
        b.writeBigUInt64LE(1n << 50n, 8);
        return b;
      },
      /tensor count .* is impossible/,
    ],
    [
      (b) => {
        b.writeBigUInt64LE(1n << 40n, 16);
        return b;
      },
      /key\/value count .* is impossible/,
    ],
    [
      (b) => {
        b.writeBigUInt64LE(1n << 62n, 24);
        return b;
      },
      /key #0 length .* is impossible/,
    ],
    [
      (b) => {
        const i = b.indexOf('general.architecture') + 'general.architecture'.length;
        b.writeUInt32LE(77, i);
        return b;
      },
      /key "general.architecture": unknown value type 77/,
    ],
    [
      (b) => {
        const i = b.indexOf('a.strs') + 6 + 4 + 4;
        b.writeBigUInt64LE(1n << 45n, i);
        return b;
      },
      /array length of "a.strs" .* is impossible/,
    ],
    [
      (b) => {
        const i = b.indexOf('t.f16') + 5;
        b.writeUInt32LE(9, i);
        return b;
      },
      /tensor "t.f16": n_dims 9 outside 1..4/,
    ],
    [
      (b) => {
        const i = b.indexOf('t.f16') + 5 + 4 + 8;
        b.writeUInt32LE(99, i);
        return b;
      },
      /tensor "t.f16": unknown ggml type 99/,
    ],
    [
      (b) => {
        const i = b.indexOf('t.f16') + 5 + 4;
        b.writeBigUInt64LE(1n << 40n, i);
        return b;
      },
      /tensor "t.f16" .* runs past the end of the file/,
    ],
    [
      (b) => {
        const i = b.indexOf('t.f16') + 5 + 4 + 8 + 4;
        b.writeBigUInt64LE(3n, i);
        return b;
      },
      /tensor "t.f16": offset 3 is not aligned/,
    ],
    [
      (b) => {
        const i = b.indexOf('t.f16') + 5 + 4 + 8 + 4;
        b.writeBigUInt64LE(0n, i);
        return b;
      },
      /overlaps/,
    ],
    [(b) => b.subarray(0, b.length - 40), /runs past the end of the file/],
    [
      (b) => {
        const i = b.indexOf('a.bool') + 6 + 4;
        b[i] = 5;
        return b;
      },
      /bool value 5/,
    ],
    [
      (b) => {
        b.write('t.f32', b.indexOf('t.f16'));
        return b;
      },
      /duplicate tensor "t.f32"/,
    ],
    [
      (b) => {
        const i = b.indexOf('general.alignment') + 17 + 4;
        b.writeUInt32LE(33, i);
        return b;
      },
      /general.alignment 33/,
    ],
  ];
  for (const [mutate, re] of cases) {
    assert.throws(
      () => GgufReader.fromBuffer(mutate(Buffer.from(good)), 'evil.gguf'),
      (e: Error) => {
        assert.match(e.message, /^evil\.gguf: /);
        assert.match(e.message, re);
        return true;
      },
    );
  }
});

test('GGUF reader survives thousands of random corruptions (fuzz)', () => {
  const base = smallGguf();
  const r = rng(77);
  let parsed = 0;
  for (let iter = 0; iter < 3000; iter++) {
    const b = Buffer.from(base);
    let cur: Buffer = b;
    const kind = iter % 4;
    if (kind === 0) cur = b.subarray(0, Math.floor(r() * b.length));
    else if (kind === 1)
      for (let k = 0; k < 1 + Math.floor(r() * 4); k++)
        b[Math.floor(r() * Math.min(b.length, 400))] = Math.floor(r() * 256);
    else if (kind === 2) {
      // a huge or random u64 at a random 8-byte slot of the header area
      const at = Math.floor(r() * 380);
      b.writeBigUInt64LE(
        r() < 0.5 ? BigInt(Math.floor(r() * 2 ** 53)) << BigInt(Math.floor(r() * 11)) : BigInt(Math.floor(r() * 64)),
        at,
      );
    } else {
      const i = Math.floor(r() * 380);
      b[i] = b[i]! ^ (1 << Math.floor(r() * 8));
    }
    try {
      const g = GgufReader.fromBuffer(cur, 'fuzz');
      for (const n of g.tensors.keys()) g.load(n);
      parsed++;
    } catch (e) {
      assert.ok(e instanceof Error);
      assert.match(e.message, /^fuzz: /, e.message);
    }
  }
  assert.ok(parsed > 0 && parsed < 3000, `${parsed} parsed`);
});
