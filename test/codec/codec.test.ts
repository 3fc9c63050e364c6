// Compressed updates: block quantization within its stated error (and unbiased when stochastic),
// top-k with error feedback that keeps what it drops, the wire format's round trip, and malformed
// payloads refused with the field at fault.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32 } from 'node:zlib';
import {
  quantizeBlocks,
  dequantizeBlocks,
  blockScales,
  topK,
  topKCount,
  ErrorFeedback,
  makeLayout,
  layoutOf,
  encodeTensors,
  decodeTensors,
  subtractStates,
  addStates,
  negotiate,
  localOffer,
  CodecError,
  DeltaSender,
  receiveState,
  encodeUpload,
  decodeUpload,
  zeroState,
  type NamedArrays,
  type QuantBits,
} from '../../src/codec/index.js';
import { mulberry32, fillNormal } from '../../src/util/rng.js';

function randn(n: number, seed: number, std = 1): Float32Array {
  return fillNormal(mulberry32(seed), new Float32Array(n), std);
}

function state(seed: number, std = 0.01): NamedArrays {
  return new Map([
    ['layers.0.q.lora_A.weight', { shape: [8, 64], data: randn(512, seed, std) }],
    ['layers.0.q.lora_B.weight', { shape: [64, 8], data: randn(512, seed + 1, std) }],
    ['layers.1.down.lora_A.weight', { shape: [8, 43], data: randn(344, seed + 2, std) }],
    ['layers.1.down.lora_B.weight', { shape: [3, 5], data: new Float32Array(15) }],
  ]);
}

for (const bits of [8, 4] as QuantBits[]) {
  test(`q${bits}: round to nearest is within half a block scale; stochastic within one and unbiased`, () => {
    // magnitudes spread over six decades: tiny blocks keep their precision through the f16 factors
    const x = randn(1000, 3);
    for (let i = 0; i < x.length; i++) x[i] = x[i]! * 10 ** -(Math.floor(i / 200) + 1);
    const bs = 32;
    const q = quantizeBlocks(x, bits, bs);
    const y = dequantizeBlocks(q);
    const s = blockScales(q);
    for (let i = 0; i < x.length; i++) {
      const bound = s[Math.floor(i / bs)]! * 0.5 * (1 + 1e-6);
      assert.ok(Math.abs(x[i]! - y[i]!) <= bound, `entry ${i}: |${x[i]} - ${y[i]}| > ${bound}`);
    }
    // a block's scale is its absmax / qmax to f16 precision, also for the 1e-6-sized block
    const qmax = bits === 8 ? 127 : 7;
    let absmax = 0;
    for (let i = 800; i < 832; i++) absmax = Math.max(absmax, Math.abs(x[i]!));
    assert.ok(Math.abs(s[25]! / (absmax / qmax) - 1) < 2e-3, `scale of a 1e-5 block: ${s[25]} vs ${absmax / qmax}`);

    const rand = mulberry32(7);
    const reps = 400;
    const mean = new Float64Array(64);
    const xs = randn(64, 4);
    for (let r = 0; r < reps; r++) {
      const qs = quantizeBlocks(xs, bits, bs, rand);
      const ys = dequantizeBlocks(qs);
      const ss = blockScales(qs);
      for (let i = 0; i < 64; i++) {
        assert.ok(Math.abs(xs[i]! - ys[i]!) < ss[i >> 5]! * (1 + 1e-6), 'stochastic rounding moves less than one step');
        mean[i] += ys[i]! / reps;
      }
    }
    const scale = blockScales(quantizeBlocks(xs, bits, bs))[0]!;
    // the mean of 400 draws is within ~4 standard errors (step / (2 sqrt(400))) of x
    for (let i = 0; i < 64; i++)
      assert.ok(Math.abs(mean[i]! - xs[i]!) < scale * 0.1, `entry ${i}: mean ${mean[i]} vs ${xs[i]}`);
    // seeded: the same seed gives the same codes
    assert.deepEqual(
      quantizeBlocks(xs, bits, bs, mulberry32(9)).codes,
      quantizeBlocks(xs, bits, bs, mulberry32(9)).codes,
    );
  });
}

test('top-k keeps the largest magnitudes, ties by lower index', () => {
  const x = Float32Array.from([0.1, -5, 3, 0, -3, 2, 3, -0.5]);
  assert.deepEqual([...topK(x, 3)], [1, 2, 4]);
  assert.deepEqual([...topK(x, 1)], [1]);
  assert.deepEqual([...topK(x, 8)], [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.equal(topKCount(1000, 0.1), 100);
  assert.equal(topKCount(5, 0.01), 1);
  assert.throws(() => topKCount(10, 0), /fraction/);
  const big = randn(5000, 11);
  const k = 137;
  const idx = topK(big, k);
  const sorted = [...big].map(Math.abs).sort((a, b) => b - a);
  const kept = [...idx].map((i) => Math.abs(big[i]!));
  assert.equal(idx.length, k);
  assert.ok(Math.min(...kept) >= sorted[k - 1]!, 'all kept entries are among the k largest');
  for (let i = 1; i < idx.length; i++) assert.ok(idx[i]! > idx[i - 1]!, 'ascending indices');
});

test('error feedback carries exactly what top-k and quantization dropped into the next round', () => {
  const layout = makeLayout([['w', [400]]]);
  const fb = new ErrorFeedback();
  const rounds = 6;
  const sent = new Float64Array(400);
  const wantedTotal = new Float64Array(400);
  for (let r = 0; r < rounds; r++) {
    const update = randn(400, 100 + r, 0.01);
    update.forEach((v, i) => (wantedTotal[i] += v));
    const before = fb.get('w') ?? new Float32Array(400);
    const enc = encodeTensors(layout, new Map([['w', { shape: [400], data: update }]]), 'delta', r, {
      codec: 'q4',
      topk: 0.1,
      feedback: fb,
      random: mulberry32(r),
    });
    const got = decodeTensors(enc.bytes, layout, 'test').tensors.get('w')!.data;
    assert.deepEqual(got, enc.received.get('w')!.data, 'the sender knows what the receiver decodes');
    // the new residual is (update + old residual) - received, entry by entry
    const res = fb.get('w')!;
    for (let i = 0; i < 400; i++) assert.equal(res[i], Math.fround(Math.fround(update[i]! + before[i]!) - got[i]!));
    // top-k: only 10% of the entries are sent
    assert.equal(got.filter((v) => v !== 0).length <= 40, true);
    got.forEach((v, i) => (sent[i] += v));
  }
  // sent + residual = everything wanted (up to f32 rounding)
  const res = fb.get('w')!;
  for (let i = 0; i < 400; i++) assert.ok(Math.abs(sent[i]! + res[i]! - wantedTotal[i]!) < 1e-6, `entry ${i}`);
  // without feedback the dropped mass is simply lost: a large share of the total never arrives
  const lost =
    wantedTotal.reduce((a, v, i) => a + Math.abs(v - sent[i]!), 0) / wantedTotal.reduce((a, v) => a + Math.abs(v), 0);
  assert.ok(lost > 0.1, 'the residual is significant (the test would catch a feedback that stores nothing)');
  const restored = ErrorFeedback.fromState(fb.state());
  assert.deepEqual(restored.get('w'), res);
});

test('wire format round-trips every codec within its error; deltas add back to the state', () => {
  const a = state(1);
  const b = state(2);
  const layout = layoutOf(a);
  for (const codec of ['none', 'q8', 'q4'] as const) {
    for (const topk of [null, 0.3, 0.02]) {
      const enc = encodeTensors(layout, a, 'full', 0, { codec, topk });
      const dec = decodeTensors(enc.bytes, layout, 'test');
      assert.equal(dec.kind, 'full');
      for (const [name, t] of a) {
        const got = dec.tensors.get(name)!;
        assert.deepEqual(got.shape, t.shape);
        assert.deepEqual(got.data, enc.received.get(name)!.data);
        let absmax = 0;
        for (const v of t.data) absmax = Math.max(absmax, Math.abs(v));
        // dense: every entry within half a (largest) step; sparse: kept entries within it, the rest 0
        const step = codec === 'none' ? 0 : absmax / (codec === 'q8' ? 127 : 7);
        let kept = 0;
        for (let i = 0; i < t.data.length; i++) {
          if (topk !== null && got.data[i] === 0 && t.data[i] !== 0) continue;
          kept++;
          assert.ok(
            Math.abs(got.data[i]! - t.data[i]!) <= step * 0.5 * (1 + 1e-5) + (topk !== null ? step * 0.5 : 0),
            `${codec}/${topk} ${name}[${i}]`,
          );
        }
        if (topk !== null && t.data.some((v) => v !== 0))
          assert.ok(kept <= Math.ceil(topk * t.data.length) + t.data.filter((v) => v === 0).length);
      }
      if (codec === 'none' && topk === null)
        for (const [name, t] of a) assert.deepEqual(dec.tensors.get(name)!.data, t.data, 'none is lossless');
    }
  }
  // sizes: q8 ~ 4x and q4 ~ 7x smaller than f32; zero tensors cost only their 8-byte entry
  const size = (codec: 'none' | 'q8' | 'q4', topk: number | null = null) =>
    encodeTensors(layout, a, 'full', 0, { codec, topk }).bytes.length;
  assert.ok(size('none') / size('q8') > 3.7, `q8 ratio ${size('none') / size('q8')}`);
  assert.ok(size('none') / size('q4') > 6.5, `q4 ratio ${size('none') / size('q4')}`);
  assert.ok(size('none') / size('q4', 0.1) > 15, `q4 top-10% ratio ${size('none') / size('q4', 0.1)}`);
  // deltas: held + decoded(new - held) = new, exactly with none
  const d = subtractStates(b, a);
  const dec = decodeTensors(encodeTensors(layout, d, 'delta', 7, { codec: 'none' }).bytes, layout, 'test');
  assert.equal(dec.kind, 'delta');
  assert.equal(dec.base, 7);
  const back = addStates(a, dec.tensors);
  for (const [name, t] of b)
    for (let i = 0; i < t.data.length; i++)
      assert.ok(Math.abs(back.get(name)!.data[i]! - t.data[i]!) <= Math.abs(t.data[i]!) * 1e-6 + 1e-9);
});

test('malformed payloads are refused with the field at fault', () => {
  const a = state(5);
  const layout = layoutOf(a);
  const good = encodeTensors(layout, a, 'full', 0, { codec: 'q4', topk: 0.3 }).bytes;
  assert.doesNotThrow(() => decodeTensors(good, layout, 'update'));
  const reseal = (b: Uint8Array) => {
    const out = Uint8Array.from(b);
    new DataView(out.buffer).setUint32(out.length - 4, crc32(out.subarray(0, out.length - 4)), true);
    return out;
  };
  const edit = (f: (dv: DataView, b: Uint8Array) => void, seal = true) => {
    const b = Uint8Array.from(good);
    f(new DataView(b.buffer), b);
    return seal ? reseal(b) : b;
  };
  const refuse = (b: Uint8Array, field: RegExp, l = layout) => {
    assert.throws(
      () => decodeTensors(b, l, 'update from client 3'),
      (e: unknown) => {
        assert.ok(e instanceof CodecError, String(e));
        assert.match(e.message, /^update from client 3: /);
        assert.match(e.message.slice('update from client 3: '.length), field);
        return true;
      },
    );
  };
  refuse(good.subarray(0, 10), /header/);
  refuse(
    edit((_, b) => (b[0] = 0x47)),
    /magic/,
  );
  refuse(
    edit((_, b) => (b[4] = 9)),
    /version/,
  );
  refuse(
    edit((_, b) => (b[30] ^= 0x10), false),
    /crc32/,
  );
  refuse(
    edit((_, b) => (b[5] = 4)),
    /kind/,
  );
  refuse(good, /layout/, makeLayout([['other', [3]]]));
  refuse(
    edit((dv) => dv.setUint32(16, 3, true)),
    /tensor count/,
  );
  refuse(
    edit((dv) => dv.setUint16(20, 9, true)),
    /index/,
  );
  refuse(
    edit((_, b) => (b[22] = 7)),
    /encoding/,
  );
  refuse(
    edit((_, b) => (b[23] = 5)),
    /sparsity/,
  );
  refuse(
    edit((dv) => dv.setUint32(24, 10_000, true)),
    /entries/,
  );
  refuse(reseal(good.subarray(0, good.length - 9)), /codes|trailer|values|scales/);
  refuse(reseal(Uint8Array.from([...good.subarray(0, good.length - 4), 0, 0, 0, 0, 0])), /trailer/);
  // the second tensor's index repeated: appears twice
  const dense = encodeTensors(layout, a, 'full', 0, { codec: 'none' }).bytes;
  const second = 20 + 8 + 512 * 4;
  const twice = Uint8Array.from(dense);
  new DataView(twice.buffer).setUint16(second, 0, true);
  refuse(reseal(twice), /appears twice/);
  // a NaN in f32 values
  const nan = Uint8Array.from(dense);
  new DataView(nan.buffer).setFloat32(28, NaN, true);
  refuse(reseal(nan), /values/);
  // a q8 code of -128 is outside [-127, 127]
  const q8 = encodeTensors(layout, a, 'full', 0, { codec: 'q8' }).bytes;
  const badCode = Uint8Array.from(q8);
  const codesAt = 20 + 8 + 6 + 2 * Math.ceil(512 / 64);
  badCode[codesAt + 5] = 0x80;
  refuse(reseal(badCode), /codes/);
  // a negative block scale factor
  const badScale = Uint8Array.from(q8);
  new DataView(badScale.buffer).setUint16(20 + 8 + 6, 0xbc00, true);
  refuse(reseal(badScale), /block scales/);
});

test('negotiation: the server proposes from its config, a peer lacking the codec is refused with a reason', () => {
  const ag = negotiate({ codec: 'q8', topk: null }, localOffer(), { adapter: 12345 }, 'client 3');
  assert.equal(ag.codec, 'q8');
  assert.equal(ag.layouts.adapter, 12345);
  assert.throws(
    () => negotiate({ codec: 'q4', topk: null }, { formats: [1], codecs: ['none', 'q8'], topk: true }, {}, 'client 3'),
    /client 3: cannot use codec 'q4'/,
  );
  assert.throws(
    () => negotiate({ codec: 'q8', topk: 0.1 }, { formats: [1], codecs: ['none', 'q8'], topk: false }, {}, 'client 3'),
    /top-k/,
  );
  assert.throws(
    () => negotiate({ codec: 'none', topk: null }, { formats: [2], codecs: ['none'], topk: false }, {}, 'client 3'),
    /formats/,
  );
});

test("delta streams: receivers on the chain hold exactly the sender's state; laggards catch up losslessly", () => {
  const layout = layoutOf(state(1));
  const sender = new DeltaSender(layout, 'q4');
  let onChain: { version: number; state: NamedArrays } | null = null;
  let late: { version: number; state: NamedArrays } | null = null;
  let target = state(1);
  for (let v = 0; v < 5; v++) {
    target = addStates(target, state(10 + v, 0.002));
    sender.advance(target);
    onChain = receiveState(layout, onChain, sender.payloadFor(onChain?.version ?? 0)!, 'payload');
    assert.equal(onChain.version, sender.version);
    for (const [k, t] of sender.held)
      assert.deepEqual(onChain.state.get(k)!.data, t.data, `version ${sender.version}: '${k}' bit for bit`);
    // the held state tracks the target within one q4 step of the latest delta (errors do not pile up)
    const err = Math.max(
      ...[...target].map(([k, t]) => Math.max(...t.data.map((x, i) => Math.abs(x - sender.held.get(k)!.data[i]!)))),
    );
    assert.ok(err < 0.01, `version ${sender.version}: held is ${err} from the target`);
  }
  assert.equal(sender.payloadFor(sender.version), null, 'nothing to send to a current client');
  late = receiveState(layout, late, sender.payloadFor(1)!, 'payload');
  assert.equal(late.version, 5);
  for (const [k, t] of sender.held) assert.deepEqual(late.state.get(k)!.data, t.data);
  // a delta for another base is refused
  const stale = { version: 2, state: zeroState(layout) };
  sender.advance(state(3));
  assert.throws(
    () => receiveState(layout, stale, sender.payloadFor(5)!, 'payload'),
    /base: a delta from version 5, but version 2 is held/,
  );
  // uploads: the server reads held + delta
  const local = addStates(onChain!.state, state(20, 0.003));
  const bytes = encodeUpload(layout, local, onChain!, { codec: 'q8', random: mulberry32(1) });
  const got = decodeUpload(layout, bytes, onChain!, 'upload');
  for (const [k, t] of local)
    for (let i = 0; i < t.data.length; i++)
      assert.ok(Math.abs(got.get(k)!.data[i]! - t.data[i]!) < (0.003 / 127) * 5 + 1e-7);
  assert.throws(
    () => decodeUpload(layout, bytes, { version: 9, state: onChain!.state }, 'upload'),
    /base: made against version 5/,
  );
});
