/**
 * Our engine against llama.cpp (node-llama-cpp, optional) on models exported by `fedbiot export
 * gguf`: a tiny random model, the same with a LoRA merged in, and base + LoRA GGUF. Greedy tokens
 * must be identical and the next-token distributions must agree: llama.cpp keeps its KV cache in
 * f16, so probabilities are compared with an absolute tolerance of 1e-2 and the log-probabilities
 * of our top-5 tokens within 5e-2. Skips when node-llama-cpp is absent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { loadNodeLlamaCpp, openLlamaCpp, type LlamaCppSession } from '../../src/io/llama-cpp.js';
import { loadHfModel, saveAdapterAsPeft } from '../../src/models/hf-model.js';
import { attachPeftAdapter } from '../../src/models/adapter.js';
import { captureLora } from '../../src/fedbiot/lora-state.js';
import { exportGguf } from '../../src/cli/export.js';
import { generate, argmax } from '../../src/nn/generate.js';
import type { LlamaModel } from '../../src/nn/llama.js';
import type { ModelConfig } from '../../src/nn/config.js';
import { logitsOf, randomizeLoraB, saveFixtureFolder, tinyModel, tinyTokenizer, tmpDir } from './fixture.js';

const mod = await loadNodeLlamaCpp();
const skip = mod
  ? false
  : 'node-llama-cpp is not installed: run `npm run setup:llama-cpp` or set FEDBIOT_NODE_LLAMA_CPP to its package folder to run the llama.cpp parity test';
if (skip) console.log(`SKIP llama.cpp parity: ${skip}`);

const STEPS = 12;

function softmax(l: Float32Array): Float64Array {
  let mx = -Infinity;
  for (const v of l) mx = Math.max(mx, v);
  const p = new Float64Array(l.length);
  let s = 0;
  for (let i = 0; i < l.length; i++) s += p[i] = Math.exp(l[i]! - mx);
  return p.map((v) => v / s);
}

/** Greedy tokens and per-step (ours, llama.cpp) probabilities along our greedy path. */
async function compare(model: LlamaModel, s: LlamaCppSession, prompt: number[], label: string): Promise<void> {
  const ours = generate(model, prompt, { maxNewTokens: STEPS, greedy: true, stopIds: [] });
  const seq = [...prompt];
  const theirs: number[] = [];
  const V = model.config.vocabSize;
  let worstP = 0;
  let worstLog = 0;
  for (let i = 0; i < STEPS; i++) {
    const pc = await s.nextTokenProbs(seq);
    const l = logitsOf(model, seq);
    const po = softmax(l.subarray((seq.length - 1) * V));
    theirs.push(argmax(pc));
    for (let v = 0; v < V; v++) worstP = Math.max(worstP, Math.abs(po[v]! - pc[v]!));
    const top = Array.from(po.keys())
      .sort((a, b) => po[b]! - po[a]!)
      .slice(0, 5);
    for (const t of top) worstLog = Math.max(worstLog, Math.abs(Math.log(po[t]!) - Math.log(Math.max(pc[t]!, 1e-30))));
    seq.push(ours[i]!);
  }
  console.log(
    `${label}: greedy ${JSON.stringify(ours)}; max |dp| ${worstP.toExponential(2)}, top-5 max |dlogp| ${worstLog.toExponential(2)}`,
  );
  assert.deepEqual(theirs, ours, `${label}: greedy tokens differ`);
  assert.ok(worstP < 1e-2, `${label}: max |dp| = ${worstP}`);
  assert.ok(worstLog < 5e-2, `${label}: top-5 max |dlogp| = ${worstLog}`);
}

test('llama.cpp agrees with our engine on exported GGUFs (base, merged LoRA, base + LoRA GGUF)', {
  skip,
  timeout: 180_000,
}, async () => {
  const { tok } = tinyTokenizer();
  const dir = tmpDir();
  // larger weights than HF's init so that attention, rotary layout and the argmax all matter
  const base = tinyModel(31, { hiddenSize: 64, numHeads: 4, numKvHeads: 2, intermediateSize: 96 });
  const modelDir = saveFixtureFolder(base, path.join(dir, 'model'));
  const withLora = loadHfModel(modelDir);
  withLora.attachLora(
    { r: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'down_proj'] },
    5,
  );
  randomizeLoraB(withLora, 6, 0.3);
  const adapterDir = path.join(dir, 'adapter');
  saveAdapterAsPeft(captureLora(withLora.layers), adapterDir, { r: 4, alpha: 8, dropout: 0, baseModel: modelDir });
  const prompt = tok.encode('It was the best of times, it was the worst of times');

  const baseGguf = path.join(dir, 'base.gguf');
  exportGguf({ model: modelDir, out: baseGguf });
  const mergedGguf = path.join(dir, 'merged.gguf');
  exportGguf({ model: modelDir, adapter: adapterDir, out: mergedGguf });
  const loraGguf = path.join(dir, 'lora.gguf');
  exportGguf({ model: modelDir, adapter: adapterDir, out: path.join(dir, 'base2.gguf'), adapterOut: loraGguf });

  const fresh = () => loadHfModel(modelDir);
  const adapted = () => {
    const m = fresh();
    attachPeftAdapter(m, adapterDir);
    return m;
  };
  const cases: [string, string, string | undefined, () => LlamaModel][] = [
    ['base', baseGguf, undefined, fresh],
    ['merged LoRA', mergedGguf, undefined, adapted],
    ['base + LoRA GGUF', path.join(dir, 'base2.gguf'), loraGguf, adapted],
  ];
  for (const [label, gguf, lora, mk] of cases) {
    const s = await openLlamaCpp(gguf, { contextSize: 128, ...(lora ? { loraPath: lora } : {}) });
    assert.ok(s);
    try {
      assert.deepEqual(
        s.tokenize('It was the best of times, it was the worst of times'),
        prompt.slice(1),
        `${label}: tokenizer`,
      );
      await compare(mk(), s, prompt, label);
    } finally {
      await s.dispose();
    }
  }
});

// Each family's GGUF (llama.cpp's qwen2 / qwen3 architectures, biases, q/k norms, rope scaling).
const FAMILIES: [string, Partial<ModelConfig>][] = [
  ['qwen2 (q/k/v bias, tied)', { family: 'qwen2', qkvBias: true, tieWordEmbeddings: true, ropeTheta: 1e6 }],
  ['qwen3 (q/k norm, head_dim 16)', { family: 'qwen3', qkNorm: true, headDim: 16 }],
  [
    'llama + Llama 3 rope scaling',
    {
      ropeTheta: 500000,
      headDim: 16,
      ropeScaling: {
        type: 'llama3',
        factor: 8,
        lowFreqFactor: 1,
        highFreqFactor: 4,
        originalMaxPositionEmbeddings: 64,
      },
    },
  ],
  ['llama + linear rope scaling', { ropeScaling: { type: 'linear', factor: 4 } }],
  [
    'qwen2 + YaRN rope scaling',
    { family: 'qwen2', qkvBias: true, ropeScaling: { type: 'yarn', factor: 4, originalMaxPositionEmbeddings: 32 } },
  ],
  ['mistral', { family: 'mistral', slidingWindow: 4096 }],
];

for (const [label, over] of FAMILIES) {
  test(`llama.cpp agrees with our engine on a ${label} GGUF`, { skip, timeout: 120_000 }, async () => {
    const { tok } = tinyTokenizer();
    const dir = tmpDir();
    const m = tinyModel(41, { hiddenSize: 64, numHeads: 4, numKvHeads: 2, intermediateSize: 96, ...over });
    const modelDir = saveFixtureFolder(m, path.join(dir, 'model'));
    const gguf = path.join(dir, 'model.gguf');
    exportGguf({ model: modelDir, out: gguf });
    const prompt = tok.encode('It was the best of times, it was the worst of times');
    const s = await openLlamaCpp(gguf, { contextSize: 128 });
    assert.ok(s);
    try {
      await compare(loadHfModel(modelDir), s, prompt, label);
    } finally {
      await s.dispose();
    }
  });
}
