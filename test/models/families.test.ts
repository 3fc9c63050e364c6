/**
 * Model families against transformers: tiny random checkpoints written by
 * scripts/make-family-fixtures.py (transformers + peft) for llama (plain, Llama 3 rope, linear,
 * dynamic, YaRN, attention bias), mistral, qwen2 (q/k/v bias) and qwen3 (per-head q/k norm,
 * explicit head_dim, YaRN), in the transformers 4 and 5 config layouts, F32 and BF16, tied and
 * untied. The engine must score transformers' NLL (relative 1e-4), with and without the PEFT
 * adapter; merging, PEFT re-export, HF re-export (same layout) and the FedBiOT split must keep it.
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
import { LlamaModel } from '../../src/nn/llama.js';
import { crossEntropy } from '../../src/tensor/ops.js';
import { noGrad } from '../../src/tensor/tensor.js';
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
  for (const want of ['llama-v4', 'llama-v5', 'mistral-v4', 'qwen2-v4', 'qwen2-v5', 'qwen3-v4', 'qwen3-v5']) {
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
