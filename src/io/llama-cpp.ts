/**
 * Optional bridge to node-llama-cpp (pinned 3.21.1, NOT a dependency: it is ~700 MB).
 * Install it on demand with `npm run setup:llama-cpp`, or point FEDBIOT_NODE_LLAMA_CPP
 * at an installed copy (its package folder). Used as an independent check that our
 * GGUF exports load in llama.cpp, tokenize the same, and (for engine parity tests)
 * give the same next-token distribution.
 */
import { pathToFileURL } from 'node:url';
import * as path from 'node:path';
import * as fs from 'node:fs';

// biome-ignore lint/suspicious/noExplicitAny: node-llama-cpp is an optional dependency, loaded untyped
type Any = any;

let cached: Promise<Any | null> | undefined;

/** Imports node-llama-cpp if it is installed; resolves to null otherwise. */
export function loadNodeLlamaCpp(): Promise<Any | null> {
  cached ??= (async () => {
    const override = process.env.FEDBIOT_NODE_LLAMA_CPP;
    const spec = override ? pathToFileURL(path.join(override, 'dist', 'index.js')).href : 'node-llama-cpp';
    if (override && !fs.existsSync(path.join(override, 'dist', 'index.js'))) return null;
    try {
      return (await import(spec)) as Any;
    } catch {
      return null;
    }
  })();
  return cached;
}

export interface LlamaCppSession {
  /** Token ids as llama.cpp's tokenizer produces them (special: parse <s> etc. in text). */
  tokenize(text: string, special?: boolean): number[];
  detokenize(ids: readonly number[], special?: boolean): string;
  /** Vocabulary size of the loaded model. */
  readonly vocabSize: number;
  /** Next-token probabilities (softmax of the logits, temperature 1, no truncation) after `tokens`. */
  nextTokenProbs(tokens: readonly number[]): Promise<Float32Array>;
  dispose(): Promise<void>;
}

export interface OpenLlamaCppOptions {
  loraPath?: string;
  loraScale?: number;
  contextSize?: number;
  threads?: number;
}

/** Loads a GGUF on the CPU with node-llama-cpp, or returns null when it is not installed. */
export async function openLlamaCpp(ggufPath: string, opts: OpenLlamaCppOptions = {}): Promise<LlamaCppSession | null> {
  const mod = await loadNodeLlamaCpp();
  if (!mod) return null;
  const llama = await mod.getLlama({ gpu: false, build: 'never', logLevel: mod.LlamaLogLevel?.error ?? 'error' });
  const model = await llama.loadModel({ modelPath: ggufPath, gpuLayers: 0 });
  let ctx: Any | undefined;
  const getCtx = async () => {
    ctx ??= await model.createContext({
      contextSize: opts.contextSize ?? 256,
      threads: opts.threads ?? 1,
      ...(opts.loraPath ? { lora: { adapters: [{ filePath: opts.loraPath, scale: opts.loraScale ?? 1 }] } } : {}),
    });
    return ctx;
  };
  const vocabSize: number = model.fileInsights?.metadata?.llama?.vocab_size ?? model.tokens?.length ?? 0;
  return {
    vocabSize,
    tokenize: (text, special = false) => [...model.tokenize(text, special)] as number[],
    detokenize: (ids, special = false) => model.detokenize([...ids], special) as string,
    async nextTokenProbs(tokens) {
      const c = await getCtx();
      const seq = c.getSequence();
      try {
        const items: Any[] = tokens.map((t, i) =>
          i === tokens.length - 1
            ? [t, { generateNext: { probabilities: true, options: { temperature: 1, topK: 0, topP: 1, minP: 0 } } }]
            : t,
        );
        const res = await seq.controlledEvaluate(items);
        const probs: Map<number, number> = res[tokens.length - 1]?.next?.probabilities ?? new Map();
        const n = Math.max(vocabSize, ...probs.keys()) + 1;
        const out = new Float32Array(vocabSize || n);
        for (const [id, p] of probs) if (id < out.length) out[id] = p;
        return out;
      } finally {
        seq.dispose();
      }
    },
    async dispose() {
      await ctx?.dispose();
      await model.dispose();
    },
  };
}
