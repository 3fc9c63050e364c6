/**
 * Model families against transformers: tiny random checkpoints written by
 * scripts/make-family-fixtures.py (transformers + peft) for llama (plain, Llama 3 rope, linear,
 * dynamic, YaRN, attention bias), mistral, qwen2 (q/k/v bias) and qwen3 (per-head q/k norm,
 * explicit head_dim, YaRN), in the transformers 4 and 5 config layouts, F32 and BF16, tied and
 * untied. The engine must score transformers' NLL (relative 1e-4), with and without the PEFT
 * adapter; merging, PEFT re-export, HF re-export (same layout) and the FedBiOT split must keep it.
 * Mistral's sliding window on a sequence four times its length: NLL, the LoRA gradients through
 * windowed attention (transformers' autograd), and KV-cache decoding past the window.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadHfModel, saveAdapterAsPeft, saveHfModel } from '../../src/models/hf-model.js';
import { attachPeftAdapter, mergeAllLora } from '../../src/models/adapter.js';
import { captureLora } from '../../src/fedbiot/lora-state.js';
import { readLlamaConfig } from '../../src/io/hf-config.js';
import { SafetensorsReader } from '../../src/io/safetensors.js';
import { buildSplit } from '../../src/fedbiot/compress.js';
import { KVCache, LlamaModel } from '../../src/nn/llama.js';
import { crossEntropy } from '../../src/tensor/ops.js';
import { noGrad, tape } from '../../src/tensor/tensor.js';
import { tmpDir } from './fixture.js';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'families');
const REL = 1e-4;

interface Reference {
  layout: 4 | 5;
  ids: number[];
  nll: number;
  nll_plain_rope: number;
  last_logits: number[];
  nll_adapter?: number;
  nll_full_attention?: number;
  grad_adapter?: Record<string, { first: number[]; norm: number }>;
}

function nllOf(model: LlamaModel, ids: number[]): number {
  return noGrad(() => {
    const T = ids.length;
    const logits = model.forward(Int32Array.from(ids), { B: 1, T });
    const targets = new Int32Array(T).fill(-100);
    for (let t = 0; t + 1 < T; t++) targets[t] = ids[t + 1]!;
    return crossEntropy(logits, targets).item();
  });
}

function close(got: number, want: number, what: string): void {
  assert.ok(
    Math.abs(got - want) <= REL * Math.abs(want),
    `${what}: ${got} vs transformers ${want} (relative ${Math.abs(got - want) / Math.abs(want)})`,
  );
}

const fixtures = fs
  .readdirSync(ROOT)
  .filter((d) => fs.existsSync(path.join(ROOT, d, 'reference.json')))
  .sort();

test('every family and layout has a fixture', () => {
  for (const want of [
    'llama-v4',
    'llama-v5',
    'mistral-v4',
    'mistral-v5-window',
    'qwen2-v4',
    'qwen2-v5',
    'qwen3-v4',
    'qwen3-v5',
  ]) {
    assert.ok(
      fixtures.some((f) => f.startsWith(want)),
      want,
    );
  }
});

for (const name of fixtures) {
  const dir = path.join(ROOT, name);
  const ref = JSON.parse(fs.readFileSync(path.join(dir, 'reference.json'), 'utf8')) as Reference;

  test(`${name}: NLL equals transformers'`, () => {
    const cfg = readLlamaConfig(path.join(dir, 'config.json'));
    assert.equal(cfg.ropeLayout, ref.layout === 5 ? 'rope_parameters' : 'rope_scaling');
    const model = loadHfModel(dir);
    close(nllOf(model, ref.ids), ref.nll, 'NLL');
    // rope scaling moves the NLL far more than the tolerance: the check is not vacuous
    if (model.config.ropeScaling)
      assert.ok(
        Math.abs(ref.nll - ref.nll_plain_rope) > 10 * REL * ref.nll,
        `plain rope NLL ${ref.nll_plain_rope} is too close to ${ref.nll}`,
      );
  });

  test(`${name}: re-exported folder keeps the config layout and the NLL`, () => {
    const model = loadHfModel(dir);
    const out = tmpDir();
    saveHfModel(model, out, { source: readLlamaConfig(path.join(dir, 'config.json')) });
    const raw = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    if (ref.layout === 5) assert.ok('rope_parameters' in raw && !('rope_theta' in raw), 'transformers 5 layout');
    else assert.ok('rope_theta' in raw && !('rope_parameters' in raw), 'transformers 4 layout');
    const orig = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    for (const k of [
      'rope_theta',
      'rope_scaling',
      'rope_parameters',
      'model_type',
      'head_dim',
      'attention_bias',
      'sliding_window',
    ]) {
      if (k in orig && orig[k] !== null) assert.deepEqual(raw[k], orig[k], k);
    }
    close(nllOf(loadHfModel(out), ref.ids), ref.nll, 'NLL after re-export');
  });

  test(`${name}: FedBiOT split (adapter 1, drop 0.5) runs and zero LoRA leaves the full model unchanged`, () => {
    const model = loadHfModel(dir);
    const base = nllOf(model, ref.ids);
    const lora = {
      r: 2,
      alpha: 4,
      dropout: 0,
      targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const,
    };
    const split = buildSplit(
      model,
      { kind: 'last', last: 1 },
      0.5,
      { adapter: { ...lora, targets: [...lora.targets] }, emulator: { ...lora, targets: [...lora.targets] } },
      0,
    );
    close(nllOf(split.full, ref.ids), base, 'full model with fresh LoRA');
    assert.ok(Number.isFinite(nllOf(split.compressed, ref.ids)));
  });

  if (ref.nll_adapter !== undefined) {
    test(`${name}: PEFT adapter from peft scores peft's NLL; merge and re-export keep it`, () => {
      const adapterDir = path.join(dir, 'adapter');
      const model = loadHfModel(dir);
      const a = attachPeftAdapter(model, adapterDir);
      close(nllOf(model, ref.ids), ref.nll_adapter!, 'NLL with adapter');
      // our PEFT export: same tensor names and values as peft's file
      const out = tmpDir();
      saveAdapterAsPeft(captureLora(model.layers), out, {
        r: a.r,
        alpha: a.alpha,
        dropout: a.dropout,
        baseModel: name,
      });
      const theirs = SafetensorsReader.open(path.join(adapterDir, 'adapter_model.safetensors'));
      const ours = SafetensorsReader.open(path.join(out, 'adapter_model.safetensors'));
      assert.deepEqual(ours.names().sort(), theirs.names().sort());
      for (const n of theirs.names()) assert.deepEqual(ours.load(n).data, theirs.load(n).data, n);
      theirs.close();
      ours.close();
      const again = loadHfModel(dir);
      attachPeftAdapter(again, out);
      close(nllOf(again, ref.ids), ref.nll_adapter!, 'NLL with re-exported adapter');
      mergeAllLora(model);
      close(nllOf(model, ref.ids), ref.nll_adapter!, 'NLL after merge');
      const merged = tmpDir();
      saveHfModel(model, merged, { source: readLlamaConfig(path.join(dir, 'config.json')) });
      close(nllOf(loadHfModel(merged), ref.ids), ref.nll_adapter!, 'NLL of the merged folder');
    });
  }
}

test('rope_parameters theta is read: theta 10000 in its place changes the NLL (the bug this replaces)', () => {
  const dir = path.join(ROOT, 'llama-v5-f32');
  const ref = JSON.parse(fs.readFileSync(path.join(dir, 'reference.json'), 'utf8')) as Reference;
  const model = loadHfModel(dir);
  assert.equal(model.config.ropeTheta, 500000);
  const wrong = new LlamaModel(
    { ...model.config, ropeTheta: 10000 },
    model.embedTokens,
    model.layers,
    model.finalNorm,
    model.lmHead,
  );
  assert.ok(Math.abs(nllOf(wrong, ref.ids) - ref.nll) > 100 * REL * ref.nll);
});

test("mistral sliding window: the window changes the NLL, and LoRA gradients through it equal transformers'", () => {
  const dir = path.join(ROOT, 'mistral-v5-window');
  const ref = JSON.parse(fs.readFileSync(path.join(dir, 'reference.json'), 'utf8')) as Reference;
  const model = loadHfModel(dir);
  const W = model.config.slidingWindow!;
  assert.ok(W > 0 && ref.ids.length >= 4 * W, `window ${W}, sequence ${ref.ids.length}`);
  // full attention on the same weights scores transformers' full-attention NLL, far from the windowed one
  const full = new LlamaModel(
    { ...model.config, slidingWindow: null },
    model.embedTokens,
    model.layers,
    model.finalNorm,
    model.lmHead,
  );
  close(nllOf(full, ref.ids), ref.nll_full_attention!, 'NLL with full attention');
  assert.ok(Math.abs(ref.nll - ref.nll_full_attention!) > 100 * REL * ref.nll, 'the window must matter');

  attachPeftAdapter(model, path.join(dir, 'adapter'));
  const T = ref.ids.length;
  const targets = new Int32Array(T).fill(-100);
  for (let t = 0; t + 1 < T; t++) targets[t] = ref.ids[t + 1]!;
  const loss = crossEntropy(model.forward(Int32Array.from(ref.ids), { B: 1, T }), targets);
  close(loss.item(), ref.nll_adapter!, 'NLL with adapter');
  tape.backward(loss);
  const params = new Map(model.loraParams().map((p) => [p.name, p]));
  const want = Object.entries(ref.grad_adapter!);
  assert.equal(want.length, params.size, 'one gradient per LoRA factor');
  for (const [name, g] of want) {
    const p = params.get(name);
    assert.ok(p?.grad, `${name}: no gradient`);
    let sq = 0;
    for (const v of p.grad) sq += v * v;
    assert.ok(Math.abs(Math.sqrt(sq) - g.norm) <= 1e-3 * g.norm, `${name}: |grad| ${Math.sqrt(sq)} vs ${g.norm}`);
    g.first.forEach((v, i) =>
      assert.ok(Math.abs(p.grad![i]! - v) <= 1e-4 * g.norm, `${name}[${i}]: ${p.grad![i]} vs transformers ${v}`),
    );
  }
  tape.reset();
});

test('mistral sliding window: KV-cache decoding past the window equals the full forward pass (one row and left-padded rows)', () => {
  const model = loadHfModel(path.join(ROOT, 'mistral-v5-window'));
  const ids = JSON.parse(fs.readFileSync(path.join(ROOT, 'mistral-v5-window', 'reference.json'), 'utf8'))
    .ids as number[];
  const V = model.config.vocabSize;
  const kvDim = model.config.numKvHeads * model.config.headDim;
  const T = ids.length;
  const want = noGrad(() => Float32Array.from(model.forward(Int32Array.from(ids), { B: 1, T }).data));
  const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
  // one row: a 5-token prefill, then one token at a time
  const cache = new KVCache(model.layers.length, T, kvDim);
  const got = new Float32Array(T * V);
  noGrad(() => {
    got.set(model.forward(Int32Array.from(ids.slice(0, 5)), { B: 1, T: 5, cache }).data.subarray(0, 5 * V), 0);
    for (let t = 5; t < T; t++)
      got.set(model.forward(Int32Array.from([ids[t]!]), { B: 1, T: 1, cache }).data.subarray(0, V), t * V);
  });
  assert.ok(maxDiff(got, want) < 1e-4, `one row: max |dlogit| ${maxDiff(got, want)}`);
  // two rows, the second left-padded by 3: its window counts cache slots, the padding shifts both ends
  const P = 10;
  const pad = 3;
  const batch = new KVCache(model.layers.length, T + pad, kvDim, 2);
  batch.keyMask = new Float32Array(2 * (T + pad));
  for (let t = 0; t < pad; t++) batch.keyMask[T + pad + t] = -Infinity;
  const prompt = new Int32Array(2 * (P + pad));
  for (let t = 0; t < P + pad; t++) prompt[t] = ids[t]!;
  for (let t = 0; t < P; t++) prompt[P + pad + pad + t] = ids[t]!;
  const row1 = new Float32Array(T * V);
  noGrad(() => {
    const first = model.forward(prompt, { B: 2, T: P + pad, cache: batch });
    row1.set(first.data.subarray((P + pad + pad) * V, 2 * (P + pad) * V), 0);
    for (let t = P; t < T - pad; t++) {
      const l = model.forward(Int32Array.from([ids[t + pad]!, ids[t]!]), { B: 2, T: 1, cache: batch });
      row1.set(l.data.subarray(V, 2 * V), t * V);
    }
  });
  tape.reset();
  const n = (T - pad) * V;
  const d = maxDiff(row1.subarray(0, n), want.subarray(0, n));
  assert.ok(d < 1e-4, `left-padded row: max |dlogit| ${d}`);
});
