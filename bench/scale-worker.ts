// One measurement of bench/scale.ts in a process of its own, so that its peak RSS is its own.
// Prints one JSON line. Modes:
//   write  DIR SHAPE   random BF16 checkpoint of a named shape, written by our exporter
//   load   DIR         seconds to load the folder
//   forward DIR        forward tokens/s at seq 512, batch 1, on the gemm path FEDBIOT_GEMM selects
//                      (the default f32-accumulating one, or avx512bf16), its FLOPs per token and
//                      this CPU's measured fp32 FMA peak
//   server DIR OUT     full model + split (adapter 2, beta 0.2, LoRA r 8), one alignment step,
//                      then writes the clients' compressed model to OUT
//   client OUT         the compressed model, one local step (seq 512, batch 1)
//   generate DIR       greedy tokens/s (prompt 64, 32 new tokens; best of 3)
//   gguf DIR FILE      F16 GGUF of the folder for llama.cpp
//   llamacpp FILE      llama.cpp greedy tokens/s on the same prompt (best of 3)
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadHfModel } from '../src/models/hf-model.js';
import { HfModelReader, writeHfModel } from '../src/io/hf-folder.js';
import { makeLlamaConfig, type LlamaConfig } from '../src/io/hf-config.js';
import { llamaTensorShapes } from '../src/io/llama-names.js';
import { writeLlamaGguf, type GgufVocab } from '../src/io/gguf-llama.js';
import { loadNodeLlamaCpp } from '../src/io/llama-cpp.js';
import type { TensorRecord } from '../src/io/types.js';
import { buildSplit, type LoraConfig } from '../src/fedbiot/compress.js';
import { runAlignment } from '../src/fedbiot/align.js';
import { localTrain } from '../src/fedbiot/local.js';
import { writeCompressedModel, loadClientModel } from '../src/fl/net/artifact.js';
import { generate } from '../src/nn/generate.js';
import { LINEAR_NAMES } from '../src/nn/llama.js';
import type { TokenBatch } from '../src/nn/lm.js';
import { noGrad } from '../src/tensor/tensor.js';
import { getThreads } from '../src/tensor/engine.js';
import type { ModelConfig } from '../src/nn/config.js';
import { gemmPath, peakGflops } from '../src/kernels/native.js';
import { mulberry32 } from '../src/util/rng.js';

export const SHAPES: Record<string, LlamaConfig> = {
  qwen2_5_0_5b: makeLlamaConfig({
    modelType: 'qwen2',
    hiddenSize: 896,
    intermediateSize: 4864,
    numHiddenLayers: 24,
    numAttentionHeads: 14,
    numKeyValueHeads: 2,
    vocabSize: 151936,
    tieWordEmbeddings: true,
    ropeTheta: 1000000,
    rmsNormEps: 1e-6,
    maxPositionEmbeddings: 32768,
    bosTokenId: 151643,
    eosTokenId: 151643,
  }),
  tinyllama_1_1b: makeLlamaConfig({
    modelType: 'llama',
    hiddenSize: 2048,
    intermediateSize: 5632,
    numHiddenLayers: 22,
    numAttentionHeads: 32,
    numKeyValueHeads: 4,
    vocabSize: 32000,
    tieWordEmbeddings: false,
    ropeTheta: 10000,
    rmsNormEps: 1e-5,
    maxPositionEmbeddings: 2048,
    bosTokenId: 1,
    eosTokenId: 2,
  }),
};

const SEQ = 512;
const PROMPT = 64;
const NEW = 32;
const LORA: LoraConfig = { r: 8, alpha: 16, dropout: 0, targets: [...LINEAR_NAMES] };

/**
 * FLOPs of one token of a forward at seq T (batch 1, logits at every position, as forward() computes
 * them): 2 per multiply-add of the q/k/v/o and MLP projections and the LM head, plus attention's
 * scores and value sums over the causal half (on average (T + 1) / 2 keys per query).
 */
export function forwardFlopsPerToken(c: ModelConfig, T: number): number {
  const d = c.hiddenSize,
    dh = c.headDim;
  const qo = 2 * d * c.numHeads * dh,
    kv = 2 * d * c.numKvHeads * dh,
    mlp = 3 * d * c.intermediateSize;
  const attn = 2 * c.numHeads * dh * ((T + 1) / 2);
  return 2 * (c.numLayers * (qo + kv + mlp + attn) + c.vocabSize * d);
}

const rssMb = () => process.resourceUsage().maxRSS / 1024;
const secs = (t0: number) => (performance.now() - t0) / 1000;

function randomIds(n: number, vocab: number, seed: number): number[] {
  const r = mulberry32(seed);
  return Array.from({ length: n }, () => 3 + Math.floor(r() * (vocab - 3)));
}

function batchOf(ids: number[]): TokenBatch {
  return {
    B: 1,
    T: ids.length,
    ids: Int32Array.from(ids),
    labels: Int32Array.from(ids),
    attention: new Uint8Array(ids.length).fill(1),
  };
}

/** Random tensors made when the writer asks for them (one at a time), seeded by name. */
function lazyRandomTensors(c: LlamaConfig): Map<string, TensorRecord> {
  const m = new Map<string, TensorRecord>();
  let seed = 1;
  for (const [name, shape] of llamaTensorShapes(c)) {
    const s = seed++;
    const n = shape.reduce((a, b) => a * b, 1);
    const isNorm = shape.length === 1 && !name.endsWith('.bias');
    const scale = shape.length === 2 ? Math.sqrt(3) * 0.02 : 0.02;
    m.set(name, {
      dtype: 'BF16',
      shape,
      get data(): Float32Array {
        const r = mulberry32(s);
        const d = new Float32Array(n);
        if (isNorm) d.fill(1);
        else for (let i = 0; i < n; i++) d[i] = (r() * 2 - 1) * scale;
        return d;
      },
    });
  }
  return m;
}

/** A folder's tensors, read when the writer asks for them. */
function lazyFolderTensors(reader: HfModelReader): Map<string, TensorRecord> {
  const m = new Map<string, TensorRecord>();
  for (const name of reader.names()) {
    const info = reader.info(name);
    m.set(name, {
      dtype: info.dtype,
      shape: info.shape,
      get data() {
        return reader.load(name).data;
      },
    });
  }
  return m;
}

function syntheticVocab(size: number, bos: number, eos: number): GgufVocab {
  const tokens = [
    '<unk>',
    '<s>',
    '</s>',
    ...Array.from({ length: 256 }, (_, i) => `<0x${i.toString(16).toUpperCase().padStart(2, '0')}>`),
  ];
  const types = [2, 3, 3, ...new Array<number>(256).fill(6)];
  while (tokens.length < size) {
    tokens.push(`\u2581w${tokens.length}`);
    types.push(1);
  }
  return {
    model: 'llama',
    tokens,
    scores: tokens.map((_, i) => -i),
    tokenTypes: types,
    bosId: bos,
    eosId: eos,
    unkId: 0,
    addBos: false,
    addEos: false,
  };
}

async function main(): Promise<void> {
  const [mode, a, b] = process.argv.slice(2);
  const out: Record<string, unknown> = { mode, threads: getThreads() };
  switch (mode) {
    case 'write': {
      const c = SHAPES[b!]!;
      const t0 = performance.now();
      writeHfModel(a!, {
        config: { ...c, torchDtype: 'bfloat16' },
        tensors: lazyRandomTensors(c),
        dtype: 'BF16',
        maxShardBytes: 2 ** 31,
      });
      out.write_s = secs(t0);
      break;
    }
    case 'load': {
      const t0 = performance.now();
      loadHfModel(a!);
      out.load_s = secs(t0);
      break;
    }
    case 'forward': {
      const m = loadHfModel(a!);
      const ids = randomIds(SEQ, m.config.vocabSize, 5);
      const run = () => noGrad(() => m.forward(Int32Array.from(ids), { B: 1, T: SEQ }));
      run();
      const times: number[] = [];
      for (let i = 0; i < 2; i++) {
        const t0 = performance.now();
        run();
        times.push(secs(t0));
      }
      out.gemm = gemmPath();
      out.forward_tok_s = SEQ / Math.min(...times);
      out.flops_per_token = forwardFlopsPerToken(m.config, SEQ);
      out.gflop_s = ((out.forward_tok_s as number) * (out.flops_per_token as number)) / 1e9;
      out.fp32_peak_gflop_s = Math.max(...Array.from({ length: 3 }, () => peakGflops(4_000_000)));
      break;
    }
    case 'server': {
      const m = loadHfModel(a!);
      const split = buildSplit(m, { kind: 'last', last: 2 }, 0.2, { adapter: LORA, emulator: LORA }, 0);
      const ids = randomIds(SEQ, m.config.vocabSize, 6);
      out.server_model_rss_mb = rssMb(); // the model and its split, before any step
      const t0 = performance.now();
      runAlignment(split, () => batchOf(ids), {
        steps: 1,
        optimizer: { kind: 'adamw', lr: 1e-4 },
        hiddenLoss: 'nmse',
        lambda: 0.9,
        mu: 0,
      });
      out.align_step_s = secs(t0);
      out.server_rss_mb = rssMb();
      writeCompressedModel(split, b!, {});
      break;
    }
    case 'client': {
      const cm = loadClientModel(a!, { adapter: LORA, emulator: LORA });
      // as the client does: only the adapter's LoRA trains, the emulator's is frozen
      for (const p of cm.emulator.flatMap((l) => l.loraParams())) p.requiresGrad = false;
      const params = cm.adapter.flatMap((l) => l.loraParams());
      for (const p of params) p.requiresGrad = true;
      const ids = randomIds(SEQ, cm.model.config.vocabSize, 7);
      out.client_model_rss_mb = rssMb();
      const t0 = performance.now();
      localTrain(cm.model, params, () => batchOf(ids), {
        steps: 1,
        optimizer: { kind: 'adamw', lr: 1e-4 },
        gradAccum: 1,
        proximal: 0.01,
      });
      out.client_step_s = secs(t0);
      out.client_rss_mb = rssMb();
      break;
    }
    case 'generate': {
      const m = loadHfModel(a!);
      const prompt = randomIds(PROMPT, m.config.vocabSize, 8);
      generate(m, prompt.slice(0, 8), { maxNewTokens: 2, greedy: true, stopIds: [] });
      const rates: number[] = [];
      for (let i = 0; i < 3; i++) {
        const t0 = performance.now();
        const tokens = generate(m, prompt, { maxNewTokens: NEW, greedy: true, stopIds: [] });
        rates.push(tokens.length / secs(t0));
        out.tokens = tokens;
      }
      out.generate_tok_s = Math.max(...rates);
      out.runs_tok_s = rates;
      break;
    }
    case 'gguf': {
      const reader = HfModelReader.open(a!);
      try {
        const c = reader.config;
        writeLlamaGguf(b!, {
          config: c,
          tensors: lazyFolderTensors(reader),
          vocab: syntheticVocab(
            c.vocabSize,
            c.bosTokenId ?? 1,
            Array.isArray(c.eosTokenId) ? c.eosTokenId[0]! : (c.eosTokenId ?? 2),
          ),
          type: 'F16',
          name: path.basename(a!),
        });
      } finally {
        reader.close();
      }
      out.gguf_mb = fs.statSync(b!).size / 2 ** 20;
      break;
    }
    case 'llamacpp': {
      const mod = await loadNodeLlamaCpp();
      if (!mod) {
        out.llamacpp_tok_s = null;
        break;
      }
      const vocab = Number(b);
      const prompt = randomIds(PROMPT, vocab, 8);
      const llama = await mod.getLlama({ gpu: false, build: 'never', logLevel: mod.LlamaLogLevel?.error ?? 'error' });
      const lm = await llama.loadModel({ modelPath: a!, gpuLayers: 0 });
      const ctx = await lm.createContext({ contextSize: 256, threads: getThreads(), batchSize: 256 });
      const once = async (n: number): Promise<{ s: number; tokens: number[] }> => {
        const seq = ctx.getSequence();
        const tokens: number[] = [];
        const t0 = performance.now();
        for await (const t of seq.evaluate(prompt, { temperature: 0 })) {
          tokens.push(t as number);
          if (tokens.length >= n) break;
        }
        const s = secs(t0);
        seq.dispose();
        return { s, tokens };
      };
      await once(2);
      const rates: number[] = [];
      for (let i = 0; i < 3; i++) {
        const r = await once(NEW);
        rates.push(r.tokens.length / r.s);
        out.tokens = r.tokens;
      }
      out.llamacpp_tok_s = Math.max(...rates);
      out.runs_tok_s = rates;
      await ctx.dispose();
      await lm.dispose();
      break;
    }
    default:
      throw new Error(`unknown mode ${mode}`);
  }
  console.log(JSON.stringify(out));
}

if (process.argv[1] && path.resolve(process.argv[1]).endsWith(path.join('bench', 'scale-worker.ts'))) await main();
