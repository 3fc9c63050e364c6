// Bridges the file formats (src/io) and the engine's model (src/nn): a Hugging Face folder becomes a
// LlamaModel and back; a LoRA state becomes a PEFT adapter folder and back. Our tensor names are
// Hugging Face's, so the mapping is one to one.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HfModelReader, writeHfModel } from '../io/hf-folder.js';
import { SafetensorsReader, writeSafetensors } from '../io/safetensors.js';
import { makeLlamaConfig, type LlamaConfig } from '../io/hf-config.js';
import { writePeftAdapter, readPeftAdapter, type LoraTensors } from '../io/peft.js';
import type { DType, TensorRecord } from '../io/types.js';
import { Tensor } from '../tensor/tensor.js';
import { FrozenWeight } from '../tensor/frozen.js';
import type { Weight } from '../tensor/ops.js';
import { isWeightFormat, weightRowBytes, type WeightFormat } from '../kernels/weights.js';
import { fromValues } from '../tensor/engine.js';
import {
  DecoderLayer,
  LlamaModel,
  LINEAR_NAMES,
  linearPath,
  widened,
  type LayerExtras,
  type LinearName,
} from '../nn/llama.js';
import { familyTensors } from '../io/llama-names.js';
import { makeConfig, type ModelConfig } from '../nn/config.js';
import type { LoraState } from '../fedbiot/lora-state.js';

export function toModelConfig(c: LlamaConfig, file = 'config.json'): ModelConfig {
  if (c.hiddenAct !== 'silu')
    throw new Error(`${file}: hidden_act '${c.hiddenAct}' is not supported (LLaMA uses silu)`);
  if (c.mlpBias) throw new Error(`${file}: mlp_bias is not supported`);
  const eos = Array.isArray(c.eosTokenId) ? (c.eosTokenId[0] ?? null) : (c.eosTokenId ?? null);
  const f = familyTensors(c);
  return makeConfig({
    vocabSize: c.vocabSize,
    hiddenSize: c.hiddenSize,
    intermediateSize: c.intermediateSize,
    numLayers: c.numHiddenLayers,
    numHeads: c.numAttentionHeads,
    numKvHeads: c.numKeyValueHeads,
    headDim: c.headDim,
    rmsNormEps: c.rmsNormEps,
    ropeTheta: c.ropeTheta,
    maxPositionEmbeddings: c.maxPositionEmbeddings,
    tieWordEmbeddings: c.tieWordEmbeddings,
    bosTokenId: c.bosTokenId ?? null,
    eosTokenId: eos,
    padTokenId: c.padTokenId ?? null,
    family: c.modelType,
    ropeScaling: c.ropeScaling,
    qkvBias: f.qkvBias,
    oBias: f.oBias,
    qkNorm: f.qkNorm,
    slidingWindow: c.slidingWindow ?? null,
  });
}

export function toLlamaConfig(c: ModelConfig): LlamaConfig {
  const family = c.family ?? 'llama';
  return makeLlamaConfig({
    modelType: family,
    hiddenSize: c.hiddenSize,
    intermediateSize: c.intermediateSize,
    numHiddenLayers: c.numLayers,
    numAttentionHeads: c.numHeads,
    numKeyValueHeads: c.numKvHeads,
    headDim: c.headDim,
    rmsNormEps: c.rmsNormEps,
    ropeTheta: c.ropeTheta,
    vocabSize: c.vocabSize,
    tieWordEmbeddings: c.tieWordEmbeddings,
    maxPositionEmbeddings: c.maxPositionEmbeddings,
    ropeScaling: c.ropeScaling ?? null,
    attentionBias: (family === 'llama' || family === 'qwen3') && !!c.oBias,
    ...(family === 'mistral' ? { slidingWindow: c.slidingWindow ?? null } : {}),
    ...(c.bosTokenId !== null ? { bosTokenId: c.bosTokenId } : {}),
    ...(c.eosTokenId !== null ? { eosTokenId: c.eosTokenId } : {}),
    ...(c.padTokenId != null ? { padTokenId: c.padTokenId } : {}),
  });
}

export interface LoadHfModelOptions {
  /**
   * 'stored' (default): the decoder layers' linear weights stored as BF16 / F16 stay in that format
   * in memory (FrozenWeight, widened inside the gemm), and so do the embedding table (rows widened
   * on lookup) and the LM head; 'f32': every tensor is decoded to f32. Norms and biases are f32.
   */
  weights?: 'stored' | 'f32';
}

const FROZEN_FORMAT: Partial<Record<DType, WeightFormat>> = { BF16: 'bf16', F16: 'f16' };

/**
 * The side file of a folder saved with `dtype: 'stored'` that holds its block-quantized matrices
 * (GGUF Q8_0 / Q4_0 blocks, which safetensors has no dtype for) as they are: U8 tensors [N, row
 * bytes], metadata `<name>: "<format> <N>x<K>"`. Those tensors are absent from the model files.
 */
export const QUANTIZED_FILE = 'quantized.safetensors';
const QUANTIZED_FORMAT = 'fedbiot-quantized/1';

/** The quantized matrices of a folder's side file, held in their blocks (not widened). */
function readQuantized(file: string): Map<string, FrozenWeight> {
  const r = SafetensorsReader.open(file);
  try {
    if (r.metadata.format !== QUANTIZED_FORMAT)
      throw new Error(`${file}: metadata format is ${r.metadata.format}, expected ${QUANTIZED_FORMAT}`);
    const out = new Map<string, FrozenWeight>();
    for (const name of r.names()) {
      const m = /^(\w+) (\d+)x(\d+)$/.exec(r.metadata[name] ?? '');
      const format = m?.[1];
      if (!m || !isWeightFormat(format) || (format !== 'q8_0' && format !== 'q4_0'))
        throw new Error(`${file}: tensor '${name}': metadata '${r.metadata[name]}' is not "q8_0|q4_0 <N>x<K>"`);
      const shape = [Number(m[2]), Number(m[3])] as const;
      const info = r.info(name);
      if (info.dtype !== 'U8' || info.shape[0] !== shape[0] || info.shape[1] !== weightRowBytes(format, shape[1]))
        throw new Error(
          `${file}: tensor '${name}' is ${info.dtype} [${info.shape.join(', ')}], a ${format} [${shape.join(', ')}] matrix is U8 [${shape[0]}, ${weightRowBytes(format, shape[1])}]`,
        );
      out.set(name, new FrozenWeight(format, r.loadRaw(name), shape, name));
    }
    return out;
  } finally {
    r.close();
  }
}

/** Loads a LLaMA-family Hugging Face folder, one tensor at a time (no copy of the whole file). */
export function loadHfModel(dir: string, opts: LoadHfModelOptions = {}): LlamaModel {
  const sideFile = path.join(dir, QUANTIZED_FILE);
  const quantized = fs.existsSync(sideFile) ? readQuantized(sideFile) : new Map<string, FrozenWeight>();
  // a folder with a side file lacks those tensors in its model files: they are checked here instead
  const reader = HfModelReader.open(dir, { validateLlama: quantized.size === 0 });
  try {
    const cfg = toModelConfig(reader.config, path.join(dir, 'config.json'));
    const get = (name: string): Tensor => {
      const rec = reader.load(name);
      return Tensor.param(fromValues(rec.data), rec.shape, name, false);
    };
    const getWeight = (name: string): Weight => {
      const q = quantized.get(name);
      if (q) return (opts.weights ?? 'stored') === 'f32' ? Tensor.param(q.toFloat32(), [...q.shape], name, false) : q;
      const info = reader.info(name);
      const fmt = FROZEN_FORMAT[info.dtype];
      if ((opts.weights ?? 'stored') === 'f32' || !fmt || info.shape.length !== 2) return get(name);
      return new FrozenWeight(fmt, reader.loadRaw(name), [info.shape[0]!, info.shape[1]!], name);
    };
    const embed = getWeight('model.embed_tokens.weight');
    const layers: DecoderLayer[] = [];
    for (let i = 0; i < cfg.numLayers; i++) {
      const p = `model.layers.${i}`;
      const lin = Object.fromEntries(LINEAR_NAMES.map((n) => [n, getWeight(`${linearPath(p, n)}.weight`)])) as Record<
        LinearName,
        Weight
      >;
      const extras: LayerExtras = {};
      const biased = LINEAR_NAMES.filter((n) => reader.has(`${linearPath(p, n)}.bias`));
      if (biased.length > 0) extras.bias = Object.fromEntries(biased.map((n) => [n, get(`${linearPath(p, n)}.bias`)]));
      if (cfg.qkNorm) {
        extras.qNorm = get(`${p}.self_attn.q_norm.weight`);
        extras.kNorm = get(`${p}.self_attn.k_norm.weight`);
      }
      layers.push(
        new DecoderLayer(
          p,
          i,
          get(`${p}.input_layernorm.weight`),
          get(`${p}.post_attention_layernorm.weight`),
          lin,
          extras,
        ),
      );
    }
    const norm = get('model.norm.weight');
    const head =
      cfg.tieWordEmbeddings || !(reader.has('lm_head.weight') || quantized.has('lm_head.weight'))
        ? embed
        : getWeight('lm_head.weight');
    return new LlamaModel({ ...cfg, tieWordEmbeddings: head === embed }, embed, layers, norm, head);
  } finally {
    reader.close();
  }
}

/**
 * Writes the model's base weights (LoRA not included: merge first to bake it in). `source` is the
 * config.json the model was read from: its layout and the fields the engine does not model are kept.
 */
export function saveHfModel(
  model: LlamaModel,
  dir: string,
  opts: {
    /** One dtype for every tensor (default: storedDtype), or 'stored': each weight as it is held (QUANTIZED_FILE). */
    dtype?: DType | 'stored';
    maxShardBytes?: number;
    source?: LlamaConfig;
  } = {},
): void {
  fs.mkdirSync(dir, { recursive: true });
  const each = opts.dtype === 'stored';
  const dtype = each ? undefined : ((opts.dtype as DType | undefined) ?? storedDtype(model));
  // records widen a stored-format weight when the writer reads it, one tensor at a time
  const tensors = new Map<string, TensorRecord>();
  const quantized = new Map<string, TensorRecord>();
  const meta: Record<string, string> = { format: QUANTIZED_FORMAT };
  for (const [name, w] of model.baseWeights()) {
    if (each && w instanceof FrozenWeight && (w.format === 'q8_0' || w.format === 'q4_0')) {
      const [N, K] = w.shape as [number, number];
      meta[name] = `${w.format} ${N}x${K}`;
      quantized.set(name, {
        dtype: 'U8',
        shape: [N, weightRowBytes(w.format, K)],
        get data() {
          return Float32Array.from(w.bytes);
        },
      });
      continue;
    }
    const own: DType =
      w instanceof FrozenWeight && w.format === 'bf16'
        ? 'BF16'
        : w instanceof FrozenWeight && w.format === 'f16'
          ? 'F16'
          : 'F32';
    tensors.set(name, {
      dtype: dtype ?? own,
      shape: [...w.shape],
      get data() {
        return widened(w).data;
      },
    });
  }
  const own = toLlamaConfig(model.config);
  const config: LlamaConfig = opts.source
    ? { ...opts.source, numHiddenLayers: own.numHiddenLayers, tieWordEmbeddings: own.tieWordEmbeddings }
    : own;
  writeHfModel(dir, {
    config,
    tensors,
    ...(dtype ? { dtype } : {}),
    maxShardBytes: opts.maxShardBytes,
    validateLlama: quantized.size === 0,
  });
  const side = path.join(dir, QUANTIZED_FILE);
  if (quantized.size > 0) writeSafetensors(side, quantized, { metadata: meta });
  else fs.rmSync(side, { force: true });
}

/** BF16 / F16 when the model keeps its linear weights in that format (so re-saving keeps the size), else F32. */
export function storedDtype(model: LlamaModel): DType {
  for (const l of model.layers) {
    const w = l.linears.q_proj.weight;
    if (w instanceof FrozenWeight) return w.format === 'bf16' ? 'BF16' : w.format === 'f16' ? 'F16' : 'F32';
  }
  return 'F32';
}

/** "model.layers.3.self_attn.q_proj.lora_A.weight" -> ["layers.3.self_attn.q_proj", "A"]. */
function splitLoraName(name: string): [string, 'A' | 'B'] {
  const m = /^model\.(layers\.\d+\.(?:self_attn|mlp)\.[a-z_]+)\.lora_(A|B)\.weight$/.exec(name);
  if (!m) throw new Error(`LoRA tensor name '${name}' is not of the form model.layers.N.<module>.lora_A|B.weight`);
  return [m[1]!, m[2] as 'A' | 'B'];
}

/** Writes an adapter state (names under model.layers.N, i.e. full-model layer indices) as PEFT. */
export function saveAdapterAsPeft(
  state: LoraState,
  dir: string,
  spec: { r: number; alpha: number; dropout: number; baseModel: string | null },
): void {
  const pairs: LoraTensors = new Map();
  const layers = new Set<number>();
  const modules = new Set<string>();
  for (const [name, v] of state) {
    const [mp, which] = splitLoraName(name);
    const pair = pairs.get(mp) ?? ({} as { A: TensorRecord; B: TensorRecord });
    pair[which] = { dtype: 'F32', shape: [...v.shape], data: v.data };
    pairs.set(mp, pair);
    layers.add(Number(/layers\.(\d+)/.exec(mp)![1]));
    modules.add(mp.split('.').pop()!);
  }
  writePeftAdapter(dir, {
    config: {
      r: spec.r,
      loraAlpha: spec.alpha,
      loraDropout: spec.dropout,
      targetModules: [...modules].sort(),
      baseModelNameOrPath: spec.baseModel,
      layersToTransform: [...layers].sort((a, b) => a - b),
    },
    tensors: pairs,
  });
}

/** Reads a PEFT adapter folder into a LoRA state plus its spec. */
export function loadPeftAsState(
  dir: string,
  base?: ModelConfig,
): { state: LoraState; r: number; alpha: number; dropout: number; targets: LinearName[]; layers: number[] } {
  const { config, tensors } = readPeftAdapter(dir, base ? { baseConfig: toLlamaConfig(base) } : {});
  const state: LoraState = new Map();
  const layers = new Set<number>();
  for (const [mp, pair] of tensors) {
    state.set(`model.${mp}.lora_A.weight`, { shape: [...pair.A.shape], data: Float32Array.from(pair.A.data) });
    state.set(`model.${mp}.lora_B.weight`, { shape: [...pair.B.shape], data: Float32Array.from(pair.B.data) });
    layers.add(Number(/layers\.(\d+)/.exec(mp)![1]));
  }
  const targets = config.targetModules.filter((t): t is LinearName => (LINEAR_NAMES as readonly string[]).includes(t));
  if (targets.length !== config.targetModules.length)
    throw new Error(
      `${dir}: target_modules ${JSON.stringify(config.targetModules)} include modules a LLaMA model does not have`,
    );
  return {
    state,
    r: config.r,
    alpha: config.loraAlpha,
    dropout: config.loraDropout,
    targets,
    layers: [...layers].sort((a, b) => a - b),
  };
}
