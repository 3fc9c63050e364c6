import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, quantize } from '../../src/io/dtype.js';
import {
  SafetensorsReader,
  deserializeSafetensors,
  serializeSafetensors,
  writeSafetensors,
} from '../../src/io/safetensors.js';
import type { TensorRecord } from '../../src/io/types.js';
import { assertClose, randTensor, rng, tmpDir } from './helpers.js';

function sample(): Map<string, TensorRecord> {
  const r = rng(42);
  return new Map<string, TensorRecord>([
    ['a.weight', { ...randTensor([3, 5], r), dtype: 'F32' }],
    ['b.half', { ...randTensor([7], r, 100), dtype: 'F16' }],
    ['c.bf', { ...randTensor([2, 2, 3], r, 1e5), dtype: 'BF16' }],
    ['scalar', { dtype: 'F32', shape: [], data: Float32Array.of(3.5) }],
    ['empty', { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) }],
  ]);
}

test('f16 / bf16 conversions round to nearest even and keep special values', () => {
  assert.equal(f32ToF16(1), 0x3c00);
  assert.equal(f32ToF16(65504), 0x7bff);
  assert.equal(f32ToF16(65520), 0x7c00); // rounds up to infinity
  assert.equal(f32ToF16(-0), 0x8000);
  assert.equal(f32ToF16(2 ** -24), 1); // smallest subnormal
  assert.equal(f32ToF16(2 ** -25), 0); // halfway to 0: ties to even
  assert.equal(f32ToF16(3 * 2 ** -25), 2);
  assert.equal(f32ToF16(1 + 2 ** -11), 0x3c00); // tie, even stays
  assert.equal(f32ToF16(1 + 3 * 2 ** -11), 0x3c02); // tie, rounds to even
  assert.ok(Number.isNaN(f16ToF32(f32ToF16(NaN))));
  assert.equal(f16ToF32(f32ToF16(-Infinity)), -Infinity);
  for (let h = 0; h < 0x7c00; h += 7) assert.equal(f32ToF16(f16ToF32(h)), h);
  assert.equal(f32ToBf16(1), 0x3f80);
  assert.equal(f32ToBf16(1 + 2 ** -8), 0x3f80); // tie to even
  assert.equal(f32ToBf16(1 + 3 * 2 ** -8), 0x3f82);
  assert.ok(Number.isNaN(bf16ToF32(f32ToBf16(NaN))));
  assert.equal(bf16ToF32(f32ToBf16(3.39e38)), 3.3895313892515355e38); // largest finite bf16
  assert.equal(bf16ToF32(f32ToBf16(3.4e38)), Infinity); // rounds past it, as PyTorch does
});

test('safetensors file round trip with F32/F16/BF16, metadata and lazy loads', () => {
  const dir = tmpDir();
  const p = path.join(dir, 'x.safetensors');
  const t = sample();
  writeSafetensors(p, t, { metadata: { format: 'pt', note: 'hi' } });
  const r = SafetensorsReader.open(p);
  try {
    assert.deepEqual(r.metadata, { format: 'pt', note: 'hi' });
    assert.deepEqual(r.names(), [...t.keys()]);
    assert.deepEqual(r.info('b.half'), { dtype: 'F16', shape: [7], byteLength: 14 });
    for (const [n, rec] of t) {
      const got = r.load(n);
      assert.equal(got.dtype, rec.dtype);
      assert.deepEqual(got.shape, rec.shape);
      assert.deepEqual(got.data, quantize(rec.dtype, rec.data), n);
    }
    assert.throws(() => r.load('nope'), /no tensor named "nope"/);
  } finally {
    r.close();
  }
  assert.deepEqual(fs.readdirSync(dir), ['x.safetensors'], 'no temp files left behind');
  // header is padded so data starts 8-byte aligned
  const n = Number(fs.readFileSync(p).readBigUInt64LE(0));
  assert.equal((8 + n) % 8, 0);
});

test('safetensors buffer round trip, dtype override, and big multi-chunk tensors', () => {
  const r = rng(1);
  const big = randTensor([3, 1_500_001], r); // > one 4 MB encode chunk and 8 MB decode chunk
  const buf = serializeSafetensors({ big, small: randTensor([2], r) }, { dtype: 'BF16' });
  const back = deserializeSafetensors(buf);
  assert.equal(back.tensors.get('big')!.dtype, 'BF16');
  assertClose(back.tensors.get('big')!.data, quantize('BF16', big.data), 0, 'big');
  const f32 = deserializeSafetensors(serializeSafetensors({ big }));
  assert.deepEqual(f32.tensors.get('big')!.data, big.data);
});

test('safetensors writer rejects bad input', () => {
  const dir = tmpDir();
  const p = path.join(dir, 'bad.safetensors');
  assert.throws(
    () => writeSafetensors(p, { x: { dtype: 'F32', shape: [2, 2], data: new Float32Array(3) } }),
    /"x".*4 elements but data has 3/,
  );
  assert.throws(
    () =>
      writeSafetensors(p, [
        ['x', randTensor([1], Math.random)],
        ['x', randTensor([1], Math.random)],
      ]),
    /duplicate tensor name "x"/,
  );
  assert.throws(() => writeSafetensors(p, { __metadata__: randTensor([1], Math.random) }), /invalid tensor name/);
  assert.equal(fs.existsSync(p), false);
  assert.deepEqual(fs.readdirSync(dir), []);
});

/** Builds a safetensors buffer from a raw header object (for hostile-input tests). */
function raw(header: unknown, dataBytes: number, headerText?: string): Buffer {
  const h = Buffer.from(headerText ?? JSON.stringify(header), 'utf8');
  const b = Buffer.alloc(8 + h.length + dataBytes);
  b.writeBigUInt64LE(BigInt(h.length), 0);
  h.copy(b, 8);
  return b;
}

test('safetensors reader rejects malformed headers with errors naming file and tensor', () => {
  const ok = { t: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
  assert.doesNotThrow(() => SafetensorsReader.fromBuffer(raw(ok, 8)));
  const cases: [Buffer, RegExp][] = [
    [Buffer.alloc(4), /too short/],
    [
      (() => {
        const b = raw(ok, 8);
        b.writeBigUInt64LE(1n << 60n, 0);
        return b;
      })(),
      /exceeds the 100000000-byte limit/,
    ],
    [
      (() => {
        const b = raw(ok, 8);
        b.writeBigUInt64LE(10_000n, 0);
        return b;
      })(),
      /runs past the end of the file/,
    ],
    [raw(null, 8, '{"t": {"dtype": "F32", '), /header JSON is invalid/],
    [raw(null, 0, '[1,2]'), /does not start with "\{"/],
    [
      raw(
        null,
        8,
        '{"t": {"dtype":"F32","shape":[2],"data_offsets":[0,8]}, "t": {"dtype":"F32","shape":[2],"data_offsets":[0,8]}}',
      ),
      /duplicate key "t"/,
    ],
    [raw({ t: { dtype: 'Q4', shape: [2], data_offsets: [0, 8] } }, 8), /tensor "t": unknown dtype "Q4"/],
    [
      raw({ t: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8),
      /tensor "t": shape \[3\] of F32 needs 12 bytes but data_offsets span 8/,
    ],
    [raw({ t: { dtype: 'F32', shape: [2], data_offsets: [0, 16] } }, 8), /tensor "t": data_offsets \[0, 16\] run past/],
    [raw({ t: { dtype: 'F32', shape: [2], data_offsets: [8, 0] } }, 8), /end before they begin/],
    [raw({ t: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, 8), /tensor "t": bad dimension -2/],
    [raw({ t: { dtype: 'F32', shape: [2 ** 40, 2 ** 40], data_offsets: [0, 8] } }, 8), /tensor "t": .*overflows/],
    [raw({ t: { dtype: 'F32', shape: [2], data_offsets: [0, 1e300] } }, 8), /not non-negative integers/],
    [
      raw(
        {
          a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
          b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] },
        },
        8,
      ),
      /overlap/,
    ],
    [raw({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 8), /gap in the data buffer/],
    [raw({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, 8), /covers 4 bytes but the data buffer holds 8/],
    [raw({ __metadata__: { a: 1 } }, 0), /__metadata__\["a"\] is not a string/],
    [raw({ t: { dtype: 'F32', shape: [2], data_offsets: [0, 8], extra: 1 } }, 8), /unexpected field "extra"/],
    [raw(null, 0, '{"a":' + '['.repeat(1000) + ']'.repeat(1000) + '}'), /nesting too deep/],
  ];
  for (const [buf, re] of cases) {
    assert.throws(
      () => SafetensorsReader.fromBuffer(buf, 'evil.safetensors'),
      (e: Error) => {
        assert.match(e.message, /^evil\.safetensors: /);
        assert.match(e.message, re);
        return true;
      },
    );
  }
  // invalid UTF-8 in the header
  const b = raw(ok, 8);
  b[10] = 0xff;
  assert.throws(() => SafetensorsReader.fromBuffer(b), /not valid UTF-8/);
});

test('safetensors reader survives thousands of random corruptions (fuzz)', () => {
  const base = serializeSafetensors(sample(), { metadata: { k: 'v' } });
  const r = rng(2024);
  let parsed = 0;
  for (let iter = 0; iter < 3000; iter++) {
    const b = Buffer.from(base);
    let cur: Buffer = b;
    const kind = iter % 5;
    if (kind === 0)
      cur = b.subarray(0, Math.floor(r() * b.length)); // truncation
    else if (kind === 1 || kind === 2) {
      const n = 1 + Math.floor(r() * 4);
      const hlen = Number(b.readBigUInt64LE(0));
      for (let k = 0; k < n; k++) b[8 + Math.floor(r() * hlen)] = Math.floor(r() * 256); // header bytes
    } else if (kind === 3) {
      b.writeBigUInt64LE(BigInt(Math.floor(r() * 2 ** 53)) * (r() < 0.5 ? 1n : 1n << 10n), 0); // huge lengths
    } else {
      // digits swapped inside the JSON: offsets and shapes go wrong in plausible ways
      const hlen = Number(b.readBigUInt64LE(0));
      for (let k = 0; k < 3; k++) {
        const i = 8 + Math.floor(r() * hlen);
        if (b[i]! >= 0x30 && b[i]! <= 0x39) b[i] = 0x30 + Math.floor(r() * 10);
      }
    }
    try {
      const rd = SafetensorsReader.fromBuffer(cur, 'fuzz');
      for (const n of rd.names()) rd.load(n);
      parsed++;
    } catch (e) {
      assert.ok(e instanceof Error, 'throws Errors only');
      assert.match(e.message, /^fuzz: /, `message names the file: ${e.message}`);
    }
  }
  assert.ok(parsed > 0 && parsed < 3000, `some corruptions are harmless, most are not (${parsed} parsed)`);
});

test('independent reader: Python + numpy reads our file (skips without /usr/bin/python3 + numpy)', (t) => {
  const py = '/usr/bin/python3';
  const probe = fs.existsSync(py) ? spawnSync(py, ['-c', 'import numpy'], { encoding: 'utf8' }) : undefined;
  if (probe?.status !== 0) return t.skip('python3 with numpy not available');
  const dir = tmpDir();
  const p = path.join(dir, 'x.safetensors');
  const tensors = sample();
  writeSafetensors(p, tensors);
  // a from-spec reader in Python: length, JSON header, numpy views; bf16 widened by shifting
  const script = `
import json, struct, sys, numpy as np
b = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8+n]); data = b[8+n:]
out = {}
for k, v in h.items():
    if k == '__metadata__': continue
    s, e = v['data_offsets']; raw = data[s:e]
    if v['dtype'] == 'F32': a = np.frombuffer(raw, '<f4')
    elif v['dtype'] == 'F16': a = np.frombuffer(raw, '<f2').astype(np.float32)
    elif v['dtype'] == 'BF16': a = (np.frombuffer(raw, '<u2').astype(np.uint32) << 16).view(np.float32)
    out[k] = {'shape': v['shape'], 'sum': float(a.astype(np.float64).sum()), 'first': [float(x) for x in a[:3]]}
print(json.dumps(out))`;
  const res = spawnSync(py, ['-c', script, p], { encoding: 'utf8' });
  assert.equal(res.status, 0, res.stderr);
  const got = JSON.parse(res.stdout) as Record<string, { shape: number[]; sum: number; first: number[] }>;
  for (const [n, rec] of tensors) {
    const q = quantize(rec.dtype, rec.data);
    assert.deepEqual(got[n]!.shape, rec.shape);
    assert.deepEqual(got[n]!.first, [...q.slice(0, 3)]);
    const sum = q.reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(got[n]!.sum - sum) <= 1e-6 * Math.max(1, Math.abs(sum)) * q.length, n);
  }
  // and numpy's own f16 conversion agrees with our encoder on awkward values
  const vals = [0, 1e-8, 5.96e-8, 6.1e-5, 0.1, 1 / 3, 1.0009765625, 65504, 65519, 65520, 1e6, -2.5];
  const conv = spawnSync(
    py,
    [
      '-c',
      `import numpy as np, json, sys; print(json.dumps([int(x) for x in np.array(json.loads(sys.argv[1]), dtype=np.float32).astype(np.float16).view(np.uint16)]))`,
      JSON.stringify(vals),
    ],
    { encoding: 'utf8' },
  );
  assert.equal(conv.status, 0, conv.stderr);
  assert.deepEqual(
    JSON.parse(conv.stdout),
    vals.map((v) => f32ToF16(v)),
  );
});
