// A quantized emulator: its kept layers hold Q8_0 / Q4_0 / f16 blocks (FrozenWeight) instead of f32,
// the compressed model computes with them directly, and alignment trains its LoRA through them.
// Reference: the same split with f32 emulator weights set to the dequantized values. The compressed
// model clients download carries the blocks as they are, and the client holds them so.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildSplit, setTrainable, storeEmulatorWeight, type EmulatorWeights } from '../../src/fedbiot/compress.js';
import { alignmentLoss } from '../../src/fedbiot/align.js';
import { LlamaModel, LINEAR_NAMES } from '../../src/nn/llama.js';
import { makeConfig } from '../../src/nn/config.js';
import { FrozenWeight } from '../../src/tensor/frozen.js';
import { Tensor, tape, noGrad } from '../../src/tensor/tensor.js';
import type { TokenBatch } from '../../src/nn/lm.js';
import type { Weight } from '../../src/tensor/ops.js';
import { mulberry32, fillNormal } from '../../src/util/rng.js';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { adapterLayers } from '../../src/fedbiot/compress.js';
import { captureLora, loadLora } from '../../src/fedbiot/lora-state.js';
import { loadClientModel, writeCompressedModel } from '../../src/fl/net/artifact.js';
import { QUANTIZED_FILE } from '../../src/models/hf-model.js';
import { SafetensorsReader, writeSafetensors } from '../../src/io/safetensors.js';

const cfg = makeConfig({
  vocabSize: 40,
  hiddenSize: 64,
  // down_proj's rows hold 80 values, 2.5 blocks of 32 (as models/base's 688 hold 21.5): their last
  // Q8_0 / Q4_0 block is partial, in the forward (x W^T), the input gradient (dY W) and the download
  intermediateSize: 80,
  numLayers: 5,
  numHeads: 4,
  numKvHeads: 2,
});
const lora = {
  r: 4,
  alpha: 8,
  dropout: 0,
  targets: ['q_proj', 'v_proj', 'down_proj'] as ('q_proj' | 'v_proj' | 'down_proj')[],
};

function split(weights: EmulatorWeights) {
  const s = buildSplit(
    LlamaModel.random(cfg, 7, 0.3),
    { kind: 'last', last: 1 },
    0.5,
    { adapter: lora, emulator: lora },
    7,
    'reference',
    weights,
  );
  const r = mulberry32(11);
  for (const l of [...s.emulator, ...s.adapterTop]) for (const p of l.loraParams()) fillNormal(r, p.data, 0.2);
  return s;
}

const batch: TokenBatch = {
  B: 2,
  T: 5,
  ids: Int32Array.from([1, 5, 3, 7, 2, 9, 4, 0, 12, 30]),
  labels: Int32Array.from([-100, 5, 3, 7, 2, -100, 4, 0, 12, -100]),
  attention: Uint8Array.from([1, 1, 1, 1, 1, 1, 1, 1, 1, 0]),
};

function logits(m: LlamaModel): Float32Array {
  const out = noGrad(() => Float32Array.from(m.forward(batch.ids, { B: batch.B, T: batch.T }).data));
  tape.reset();
  return out;
}

for (const weights of ['f16', 'q8_0', 'q4'] as EmulatorWeights[]) {
  test(`${weights} emulator: computes with its stored blocks as the f32 model of its dequantized weights does; alignment trains through it`, () => {
    const q = split(weights);
    const ref = split('f32');
    let stored = 0;
    let f32 = 0;
    for (const [i, layer] of q.emulator.entries()) {
      for (const n of LINEAR_NAMES) {
        const w = layer.linears[n].weight;
        assert.ok(w instanceof FrozenWeight, `${layer.prefix} ${n} is stored, not f32`);
        // every linear is quantized, down_proj's 80-wide rows too (a partial last block)
        assert.equal(w.format, weights === 'q4' ? 'q4_0' : weights);
        stored += w.bytes.length;
        f32 += w.outFeatures * w.inFeatures * 4;
        // a new tensor: the f32 emulator shares its weights with the full model, which must stay as it is
        ref.emulator[i]!.linears[n].weight = Tensor.param(
          w.toFloat32(),
          [w.outFeatures, w.inFeatures],
          `${layer.prefix}.${n}`,
          false,
        );
      }
    }
    // whole blocks give 3.76x (q8_0) and 7.1x (q4_0); down_proj's partial blocks a little less
    const ratio = f32 / stored;
    assert.ok(
      ratio > (weights === 'f16' ? 1.99 : weights === 'q8_0' ? 3.6 : 6.8),
      `${weights}: ${ratio.toFixed(2)}x smaller than f32`,
    );
    // the rest of what the clients receive is held in the same format: the adapter layers' frozen
    // weights (their LoRA the full model's very tensors), the embedding table and the LM head
    const dequantized = (w: Weight, name: string) => {
      assert.ok(w instanceof FrozenWeight, `${name} is stored, not f32`);
      assert.equal(w.format, weights === 'q4' ? 'q4_0' : weights, name);
      return Tensor.param(w.toFloat32(), [...w.shape], name, false);
    };
    for (const [i, layer] of q.compressedAdapter.entries()) {
      const own = adapterLayers(q)[i]!;
      assert.notEqual(layer, own);
      assert.deepEqual(layer.loraParams(), own.loraParams(), 'one LoRA, shared by both holders');
      for (const n of LINEAR_NAMES) {
        assert.ok(own.linears[n].weight instanceof Tensor, 'the full model keeps its f32 adapter weights');
        ref.compressedAdapter[i]!.linears[n].weight = dequantized(layer.linears[n].weight, `${layer.prefix} ${n}`);
      }
    }
    assert.ok(q.full.embedTokens instanceof Tensor && q.full.lmHead instanceof Tensor);
    ref.compressed.embedTokens = dequantized(q.compressed.embedTokens, 'embedding');
    ref.compressed.lmHead = dequantized(q.compressed.lmHead, 'lm head');
    // the compressed (client) model: same logits as f32 over the dequantized values
    const a = logits(q.compressed);
    const b = logits(ref.compressed);
    let worst = 0;
    let scale = 0;
    for (let i = 0; i < a.length; i++) {
      worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
      scale = Math.max(scale, Math.abs(b[i]!));
    }
    assert.ok(worst <= 1e-5 * Math.max(1, scale), `${weights}: logits differ by ${worst}`);
    // the full model keeps its f32 layers
    for (const l of q.block) for (const n of LINEAR_NAMES) assert.ok(l.linears[n].weight instanceof Tensor);
    // alignment: the emulator LoRA gets the same gradient through the stored weights
    const grads = (s: typeof q) => {
      setTrainable(s, 'emulator');
      const params = s.emulator.flatMap((l) => l.loraParams());
      const loss = alignmentLoss(s, batch, { hiddenLoss: 'nmse', lambda: 0.9, mu: 0.3 }).tensor;
      tape.backward(loss);
      const g = params.map((p) => Float32Array.from(p.grad!));
      tape.reset();
      setTrainable(s, 'none');
      return g;
    };
    const ga = grads(q);
    const gb = grads(ref);
    for (let j = 0; j < ga.length; j++) {
      let d = 0;
      let m = 0;
      for (let i = 0; i < ga[j]!.length; i++) {
        d = Math.max(d, Math.abs(ga[j]![i]! - gb[j]![i]!));
        m = Math.max(m, Math.abs(gb[j]![i]!));
      }
      assert.ok(m > 0, 'the emulator LoRA gets a gradient');
      assert.ok(d <= 1e-4 * m, `${weights}: gradient ${j} differs by ${d} (scale ${m})`);
    }
  });
}

test("emulator weights whose rows do not fill 32-value blocks are quantized with a partial last block; 'stored' keeps a weight, 'f32' widens it", () => {
  const w = Tensor.param(fillNormal(mulberry32(1), new Float32Array(8 * 40), 1), [8, 40], 'w', false);
  const s = storeEmulatorWeight(w, 'q8_0', 'w');
  assert.ok(s instanceof FrozenWeight && s.format === 'q8_0');
  assert.equal(s.bytes.length, 8 * 2 * 34);
  const back = s.toFloat32();
  for (let i = 0; i < w.size; i++) {
    const row = Math.floor(i / 40) * 40,
      b0 = row + (i - row < 32 ? 0 : 32);
    let amax = 0;
    for (let j = b0; j < Math.min(b0 + 32, row + 40); j++) amax = Math.max(amax, Math.abs(w.data[j]!));
    assert.ok(Math.abs(back[i]! - w.data[i]!) <= amax / 254 + amax * 2 ** -11, `value ${i}`);
  }
  assert.equal(storeEmulatorWeight(w, 'f32', 'w'), w);
  // 'stored' keeps a weight as the checkpoint holds it; 'f32' widens it (the uncompressed client model)
  assert.equal(storeEmulatorWeight(s, 'stored', 'w'), s);
  const wide = storeEmulatorWeight(s, 'f32', 'w');
  assert.ok(wide instanceof Tensor && !wide.requiresGrad);
  assert.deepEqual(wide.data, s.toFloat32());
});

test('a quantized emulator travels and is held in its blocks: the client computes exactly as the server', () => {
  const sizes: Record<string, number> = {};
  for (const weights of ['f32', 'q8_0', 'q4'] as EmulatorWeights[]) {
    const q = split(weights);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `fedbiot-download-${weights}-`));
    const art = writeCompressedModel(q, dir, {});
    sizes[weights] = art.files.reduce((a, f) => a + f.size, 0);
    assert.equal(
      art.files.some((f) => f.name === QUANTIZED_FILE),
      weights !== 'f32',
    );
    const cm = loadClientModel(dir, { adapter: lora, emulator: lora });
    for (const [i, layer] of cm.emulator.entries())
      for (const n of LINEAR_NAMES) {
        const got = layer.linears[n].weight;
        const want = q.emulator[i]!.linears[n].weight;
        if (weights === 'f32') assert.ok(got instanceof Tensor);
        else {
          assert.ok(got instanceof FrozenWeight && want instanceof FrozenWeight, `${layer.prefix} ${n} held as blocks`);
          assert.equal(got.format, want.format);
          assert.deepEqual(got.bytes, want.bytes);
        }
      }
    const same = (got: Weight, want: Weight, what: string) => {
      if (weights === 'f32') return assert.ok(got instanceof Tensor, what);
      assert.ok(got instanceof FrozenWeight && want instanceof FrozenWeight, `${what} held as blocks`);
      assert.deepEqual(got.bytes, want.bytes, what);
    };
    for (const [i, layer] of cm.adapter.entries())
      for (const n of LINEAR_NAMES)
        same(layer.linears[n].weight, q.compressedAdapter[i]!.linears[n].weight, `${layer.prefix} ${n}`);
    same(cm.model.embedTokens, q.compressed.embedTokens, 'embedding');
    same(cm.model.lmHead, q.compressed.lmHead, 'lm head');
    loadLora(cm.emulator, captureLora(q.emulator));
    loadLora(cm.adapter, captureLora(adapterLayers(q)));
    assert.deepEqual(logits(cm.model), logits(q.compressed), `${weights}: the client's logits are the server's`);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  // every matrix travels in Q8_0 (34 bytes per 32 values against 128): only norms, config and
  // manifest stay as they are
  assert.ok(sizes.f32! / sizes.q8_0! > 3, `q8_0 download ${sizes.q8_0} bytes against f32 ${sizes.f32}`);
  assert.ok(sizes.q8_0! > sizes.q4!, `q4 download ${sizes.q4} bytes`);
});

test('a damaged side file of quantized weights is refused, naming the tensor', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fedbiot-download-bad-'));
  writeCompressedModel(split('q8_0'), dir, {});
  const side = path.join(dir, QUANTIZED_FILE);
  const r = SafetensorsReader.open(side);
  const name = r.names()[0]!;
  const tensors = new Map(r.names().map((n) => [n, r.load(n)]));
  const meta = { ...r.metadata, [name]: 'q8_0 7x64' };
  r.close();
  writeSafetensors(side, tensors, { metadata: meta });
  assert.throws(
    () => loadClientModel(dir, { adapter: lora, emulator: lora }),
    new RegExp(
      `${QUANTIZED_FILE}: tensor '${name.replace(/\./g, '\\.')}' is U8 \\[\\d+, 68\\], a q8_0 \\[7, 64\\] matrix`,
    ),
  );
  fs.rmSync(dir, { recursive: true, force: true });
});
