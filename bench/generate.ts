// Greedy generation speed, ours vs llama.cpp (node-llama-cpp, optional), on the reference model:
// vocab 4096, d 512, 8 layers, 8 heads, ffn 1376, random weights; prompt 64 tokens, 128 new tokens,
// batch 1, the same threads for both, the same weights: f32 (F32 GGUF for llama.cpp), then Q8_0
// (our engine computing on the Q8_0 blocks, llama.cpp on the Q8_0 GGUF of the same blocks).
// tokens/s = new tokens / (prefill + decode time); decode-only rates are printed too. On a machine
// other jobs are using, wall time depends on who else runs: the process CPU time of the same runs is
// reported too (cpu_ratio; llama.cpp runs inside this process, so its threads count; with more than
// one thread its workers' spin-waits count as well, so compare cpu_ratio at FEDBIOT_THREADS=1).
// Last line: {"ours_tok_s":..,"llamacpp_tok_s":..,"ratio":..,"cpu_ratio":..,"q8_0":{...the same}}
// (llama.cpp fields null without it).
//   npm run bench:generate            (FEDBIOT_THREADS to change threads; FEDBIOT_NODE_LLAMA_CPP to point at node-llama-cpp)
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LlamaModel, KVCache } from '../src/nn/llama.js';
import { makeConfig } from '../src/nn/config.js';
import { generate } from '../src/nn/generate.js';
import { getThreads, kernels, setThreads } from '../src/tensor/engine.js';
import { tape } from '../src/tensor/tensor.js';
import { writeLlamaGguf, type GgufVocab, type GgufQuant } from '../src/io/gguf-llama.js';
import { heldBytes, storeModelWeights } from '../src/models/stored-weights.js';
import { toLlamaConfig } from '../src/models/hf-model.js';
import { loadNodeLlamaCpp } from '../src/io/llama-cpp.js';
import { mulberry32 } from '../src/util/rng.js';
import type { TensorRecord } from '../src/io/types.js';

const PROMPT = 64;
const NEW = 128;
const REPEATS = 3;

if (process.env.FEDBIOT_THREADS) setThreads(Number(process.env.FEDBIOT_THREADS));
const threads = getThreads();
const cfg = makeConfig({
  vocabSize: 4096,
  hiddenSize: 512,
  intermediateSize: 1376,
  numLayers: 8,
  numHeads: 8,
  maxPositionEmbeddings: 2048,
  bosTokenId: 1,
  eosTokenId: 2,
});
const model = LlamaModel.random(cfg, 1234);
const rand = mulberry32(99);
const prompt = [1, ...Array.from({ length: PROMPT - 1 }, () => 259 + Math.floor(rand() * (cfg.vocabSize - 259)))];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

// ---- ours ----------------------------------------------------------------------------------------
const cpuSeconds = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1e6;

function oursOnce(): { total: number; prefill: number; cpu: number; tokens: number[] } {
  const u0 = process.cpuUsage();
  const t0 = performance.now();
  let tFirst = 0;
  const tokens = generate(model, prompt, {
    maxNewTokens: NEW,
    greedy: true,
    stopIds: [],
    onToken: () => {
      if (!tFirst) tFirst = performance.now();
    },
  });
  const total = (performance.now() - t0) / 1000;
  return { total, prefill: (tFirst - t0) / 1000, cpu: cpuSeconds(process.cpuUsage(u0)), tokens };
}

function ours(label: string): { tokS: number; cpuTokS: number; tokens: number[] } {
  oursOnce(); // warm-up (buffer pool, JIT)
  const runs = Array.from({ length: REPEATS }, oursOnce);
  const total = median(runs.map((r) => r.total));
  const prefill = median(runs.map((r) => r.prefill));
  const tokS = NEW / total;
  const cpuTokS = NEW / median(runs.map((r) => r.cpu));
  console.log(
    `ours ${label}: ${tokS.toFixed(1)} tok/s, ${cpuTokS.toFixed(1)} per CPU second  (total ${total.toFixed(3)} s, prefill ${(prefill * 1000).toFixed(0)} ms, decode ${((NEW - 1) / (total - prefill)).toFixed(1)} tok/s; weights ${(heldBytes(model) / 1024 ** 2).toFixed(1)} MiB)`,
  );
  // one decode step (where the time goes)
  const cache = new KVCache(cfg.numLayers, PROMPT + 8, cfg.numKvHeads * cfg.headDim);
  model.lastLogits(Int32Array.from(prompt), cache);
  tape.reset();
  const t0 = performance.now();
  for (let i = 0; i < 4; i++) {
    model.lastLogits(Int32Array.from([5 + i]), cache);
    tape.reset();
  }
  const per = (performance.now() - t0) / 4;
  const flops =
    2 *
    (cfg.numLayers * (4 * cfg.hiddenSize * cfg.hiddenSize + 3 * cfg.hiddenSize * cfg.intermediateSize) +
      cfg.vocabSize * cfg.hiddenSize);
  console.log(
    `ours ${label}: one decode step ${per.toFixed(2)} ms = ${(flops / per / 1e6).toFixed(1)} GFLOP/s on the matrix-vector work`,
  );
  return { tokS, cpuTokS, tokens: runs[0]!.tokens };
}

// ---- llama.cpp -----------------------------------------------------------------------------------
const mod = await loadNodeLlamaCpp();
if (!mod)
  console.log(
    'llama.cpp: node-llama-cpp is not installed (npm run setup:llama-cpp, or FEDBIOT_NODE_LLAMA_CPP=<its folder>)',
  );
// f32 weights as the model starts; the Q8_0 GGUF is quantized from them as our Q8_0 blocks are
const f32Tensors = new Map<string, TensorRecord>();
for (const [name, t] of model.baseTensors())
  f32Tensors.set(name, { dtype: 'F32', shape: [...t.shape], data: Float32Array.from(t.data) });

async function llamaCpp(
  label: string,
  quant: GgufQuant | null,
  oursTokens: number[],
): Promise<{ tokS: number; cpuTokS: number } | null> {
  if (!mod) return null;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fedbiot-bench-'));
  const gguf = path.join(dir, 'ref.gguf');
  // a synthetic SentencePiece-style vocabulary (token text is irrelevant: we feed ids)
  const tokens = [
    '<unk>',
    '<s>',
    '</s>',
    ...Array.from({ length: 256 }, (_, i) => `<0x${i.toString(16).toUpperCase().padStart(2, '0')}>`),
  ];
  const types = [2, 3, 3, ...new Array<number>(256).fill(6)];
  while (tokens.length < cfg.vocabSize) {
    tokens.push(`\u2581w${tokens.length}`);
    types.push(1);
  }
  const vocab: GgufVocab = {
    model: 'llama',
    tokens,
    scores: tokens.map((_, i) => -i),
    tokenTypes: types,
    bosId: 1,
    eosId: 2,
    unkId: 0,
    addBos: true,
    addEos: false,
  };
  writeLlamaGguf(gguf, {
    config: toLlamaConfig(cfg),
    tensors: f32Tensors,
    vocab,
    type: 'F32',
    ...(quant ? { quant } : {}),
    name: 'bench',
  });
  const llama = await mod.getLlama({ gpu: false, build: 'never', logLevel: mod.LlamaLogLevel?.error ?? 'error' });
  const lm = await llama.loadModel({ modelPath: gguf, gpuLayers: 0 });
  const ctx = await lm.createContext({ contextSize: 512, threads, batchSize: 512 });
  const once = async (): Promise<{ total: number; cpu: number; tokens: number[] }> => {
    const seq = ctx.getSequence();
    const out: number[] = [];
    const u0 = process.cpuUsage();
    const t0 = performance.now();
    for await (const t of seq.evaluate(prompt, { temperature: 0 })) {
      out.push(t as number);
      if (out.length >= NEW) break;
    }
    const total = (performance.now() - t0) / 1000;
    const cpu = cpuSeconds(process.cpuUsage(u0));
    seq.dispose();
    return { total, cpu, tokens: out };
  };
  await once();
  const runs: { total: number; cpu: number; tokens: number[] }[] = [];
  for (let i = 0; i < REPEATS; i++) runs.push(await once());
  const t = median(runs.map((r) => r.total));
  const theirs = runs[0]!.tokens;
  const tokS = theirs.length / t;
  const cpuTokS = theirs.length / median(runs.map((r) => r.cpu));
  console.log(
    `llama.cpp ${label}: ${tokS.toFixed(1)} tok/s, ${cpuTokS.toFixed(1)} per CPU second  (total ${t.toFixed(3)} s for ${theirs.length} tokens, ${threads} threads, ${fs.statSync(gguf).size} byte GGUF)`,
  );
  const agree = theirs.findIndex((x, i) => x !== oursTokens[i]);
  console.log(
    `${label}: greedy tokens ${agree < 0 ? 'identical' : `first differ at step ${agree}`} (ours vs llama.cpp)`,
  );
  await ctx.dispose();
  await lm.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
  return { tokS, cpuTokS };
}

console.log(
  `kernels ${kernels().name}, threads ${threads}; model vocab ${cfg.vocabSize}, d ${cfg.hiddenSize}, ${cfg.numLayers} layers, ffn ${cfg.intermediateSize}`,
);
const f32 = ours('f32');
const f32Llama = await llamaCpp('f32', null, f32.tokens);
storeModelWeights(model, 'q8_0');
const q8 = ours('q8_0');
const q8Llama = await llamaCpp('q8_0', 'q8_0', q8.tokens);
const r = (x: number | null | undefined) => (x == null ? null : Number(x.toFixed(2)));
const ratio = (a: number, b: number | null | undefined) => (b == null ? null : Number((a / b).toFixed(3)));
const side = (o: { tokS: number; cpuTokS: number }, l: { tokS: number; cpuTokS: number } | null) => ({
  ours_tok_s: r(o.tokS),
  llamacpp_tok_s: r(l?.tokS),
  ratio: ratio(o.tokS, l?.tokS),
  cpu_ratio: ratio(o.cpuTokS, l?.cpuTokS),
});
console.log(JSON.stringify({ ...side(f32, f32Llama), q8_0: side(q8, q8Llama) }));
