/**
 * LLaMA models and LoRA adapters as llama.cpp reads them from GGUF.
 *
 * Rotary layout: Hugging Face checkpoints rotate q/k by halves ("rotate_half": the
 * pair of dimension i is i + head_dim/2), llama.cpp's LLaMA graph rotates adjacent
 * pairs (2i, 2i+1). The HF->GGUF converter therefore permutes the output rows of
 * q_proj and k_proj within every head: row (half, j) moves to row (j, half). We do the
 * same (`permuteRotary`), and undo it on read. k uses the key/value head count.
 * A LoRA update B@A changes W's rows through B only, so lora_b of q and k is
 * permuted the same way and lora_a is left alone.
 *
 * Families: llama and mistral use llama.cpp's "llama" architecture (permuted q/k, as above);
 * qwen2 and qwen3 have architectures of their own that rotate by halves like Hugging Face, so
 * nothing is permuted. Qwen2's q/k/v biases become blk.N.attn_q.bias etc., Qwen3's per-head norms
 * blk.N.attn_q_norm.weight / attn_k_norm.weight. Llama 3's rope scaling is written as llama.cpp's
 * rope_freqs.weight (one frequency divisor per rotary pair), linear and YaRN as rope.scaling keys.
 */
import type { LlamaConfig } from './hf-config.js';
import { parseLlamaConfig } from './hf-config.js';
import { GgufReader, gv, writeGguf, type GgufTensorInput, type GgufTensorType, type GgufValue } from './gguf.js';
import { llamaTensorShapes } from './llama-names.js';
import { quantBlock, quantizeRows, type GgufQuantType } from './gguf-quant.js';
import { ropeTables } from '../nn/rope.js';
import type { LoraConfig, LoraTensors } from './peft.js';
import { tensorEntries, type TensorInput } from './safetensors.js';
import { FormatError, type TensorRecord } from './types.js';

const LAYER_MAP: Record<string, string> = {
  'self_attn.q_proj': 'attn_q',
  'self_attn.k_proj': 'attn_k',
  'self_attn.v_proj': 'attn_v',
  'self_attn.o_proj': 'attn_output',
  'mlp.gate_proj': 'ffn_gate',
  'mlp.up_proj': 'ffn_up',
  'mlp.down_proj': 'ffn_down',
  input_layernorm: 'attn_norm',
  post_attention_layernorm: 'ffn_norm',
  'self_attn.q_norm': 'attn_q_norm',
  'self_attn.k_norm': 'attn_k_norm',
};
const LAYER_UNMAP = Object.fromEntries(Object.entries(LAYER_MAP).map(([k, v]) => [v, k]));

/** Hugging Face tensor name -> llama.cpp GGUF name (undefined for names llama.cpp does not use). */
export function hfToGgufName(name: string): string | undefined {
  if (name === 'model.embed_tokens.weight') return 'token_embd.weight';
  if (name === 'model.norm.weight') return 'output_norm.weight';
  if (name === 'lm_head.weight') return 'output.weight';
  const m = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(name);
  if (m && LAYER_MAP[m[2]!]) return `blk.${m[1]}.${LAYER_MAP[m[2]!]}.${m[3]}`;
  return undefined;
}

export function ggufToHfName(name: string): string | undefined {
  if (name === 'token_embd.weight') return 'model.embed_tokens.weight';
  if (name === 'output_norm.weight') return 'model.norm.weight';
  if (name === 'output.weight') return 'lm_head.weight';
  const m = /^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$/.exec(name);
  if (m && LAYER_UNMAP[m[2]!]) return `model.layers.${m[1]}.${LAYER_UNMAP[m[2]!]}.${m[3]}`;
  return undefined;
}

/**
 * Reorders the rows of a [nHead*headDim, cols] matrix from HF's rotate-half layout
 * to llama.cpp's interleaved layout (inverse = true undoes it).
 */
export function permuteRotary(
  data: Float32Array,
  rows: number,
  cols: number,
  nHead: number,
  inverse = false,
): Float32Array {
  if (rows % nHead !== 0 || (rows / nHead) % 2 !== 0)
    throw new RangeError(`cannot permute ${rows} rows into ${nHead} heads of even size`);
  if (data.length !== rows * cols) throw new RangeError('data length does not match rows * cols');
  const hd = rows / nHead;
  const half = hd / 2;
  const out = new Float32Array(data.length);
  for (let h = 0; h < nHead; h++) {
    for (let s = 0; s < 2; s++) {
      for (let j = 0; j < half; j++) {
        const hfRow = h * hd + s * half + j;
        const ggRow = h * hd + j * 2 + s;
        const [from, to] = inverse ? [ggRow, hfRow] : [hfRow, ggRow];
        out.set(data.subarray(from * cols, (from + 1) * cols), to * cols);
      }
    }
  }
  return out;
}

/** llama.cpp's architecture name for a model type. */
export function ggufArch(c: LlamaConfig): 'llama' | 'qwen2' | 'qwen3' {
  return c.modelType === 'qwen2' || c.modelType === 'qwen3' ? c.modelType : 'llama';
}

/** Heads used to permute a module's rows, or undefined if it is not q/k (or the architecture rotates by halves). */
function rotaryHeads(c: LlamaConfig, ggufBase: string): number | undefined {
  if (ggufArch(c) !== 'llama') return undefined;
  if (ggufBase === 'attn_q') return c.numAttentionHeads;
  if (ggufBase === 'attn_k') return c.numKeyValueHeads;
  return undefined;
}

/** The vocabulary as GGUF stores it (see tokenizer.ts toGgufVocab). */
export interface GgufVocab {
  /** "llama" = SentencePiece-style BPE with byte fallback; "gpt2" = byte-level BPE. */
  model: 'llama' | 'gpt2';
  /** llama.cpp pre-tokenizer name for gpt2 vocabularies, e.g. "gpt-2" or "llama-bpe". */
  pre?: string;
  tokens: string[];
  scores: number[];
  /** 1 normal, 2 unknown, 3 control, 4 user defined, 5 unused, 6 byte. */
  tokenTypes: number[];
  merges?: string[];
  bosId?: number;
  eosId?: number;
  unkId?: number;
  padId?: number;
  addBos: boolean;
  addEos: boolean;
  chatTemplate?: string;
}

export function vocabKv(v: GgufVocab): [string, GgufValue][] {
  const kv: [string, GgufValue][] = [['tokenizer.ggml.model', gv.str(v.model)]];
  if (v.pre) kv.push(['tokenizer.ggml.pre', gv.str(v.pre)]);
  kv.push(['tokenizer.ggml.tokens', gv.arr('string', v.tokens)]);
  kv.push(['tokenizer.ggml.scores', gv.arr('f32', v.scores)]);
  kv.push(['tokenizer.ggml.token_type', gv.arr('i32', v.tokenTypes)]);
  if (v.merges) kv.push(['tokenizer.ggml.merges', gv.arr('string', v.merges)]);
  if (v.bosId !== undefined) kv.push(['tokenizer.ggml.bos_token_id', gv.u32(v.bosId)]);
  if (v.eosId !== undefined) kv.push(['tokenizer.ggml.eos_token_id', gv.u32(v.eosId)]);
  if (v.unkId !== undefined) kv.push(['tokenizer.ggml.unknown_token_id', gv.u32(v.unkId)]);
  if (v.padId !== undefined) kv.push(['tokenizer.ggml.padding_token_id', gv.u32(v.padId)]);
  kv.push(['tokenizer.ggml.add_bos_token', gv.bool(v.addBos)]);
  kv.push(['tokenizer.ggml.add_eos_token', gv.bool(v.addEos)]);
  if (v.chatTemplate) kv.push(['tokenizer.chat_template', gv.str(v.chatTemplate)]);
  return kv;
}

function archKv(c: LlamaConfig, path: string): [string, GgufValue][] {
  const a = ggufArch(c);
  const kv: [string, GgufValue][] = [
    [`${a}.context_length`, gv.u32(c.maxPositionEmbeddings)],
    [`${a}.embedding_length`, gv.u32(c.hiddenSize)],
    [`${a}.block_count`, gv.u32(c.numHiddenLayers)],
    [`${a}.feed_forward_length`, gv.u32(c.intermediateSize)],
    [`${a}.attention.head_count`, gv.u32(c.numAttentionHeads)],
    [`${a}.attention.head_count_kv`, gv.u32(c.numKeyValueHeads)],
    [`${a}.attention.key_length`, gv.u32(c.headDim)],
    [`${a}.attention.value_length`, gv.u32(c.headDim)],
    [`${a}.rope.freq_base`, gv.f32(c.ropeTheta)],
    [`${a}.rope.dimension_count`, gv.u32(c.headDim)],
    [`${a}.attention.layer_norm_rms_epsilon`, gv.f32(c.rmsNormEps)],
    [`${a}.vocab_size`, gv.u32(c.vocabSize)],
  ];
  const rs = c.ropeScaling;
  if (rs?.type === 'linear')
    kv.push([`${a}.rope.scaling.type`, gv.str('linear')], [`${a}.rope.scaling.factor`, gv.f32(rs.factor)]);
  else if (rs?.type === 'yarn') {
    kv.push([`${a}.rope.scaling.type`, gv.str('yarn')], [`${a}.rope.scaling.factor`, gv.f32(rs.factor)]);
    kv.push([
      `${a}.rope.scaling.original_context_length`,
      gv.u32(rs.originalMaxPositionEmbeddings ?? c.maxPositionEmbeddings),
    ]);
  } else if (rs?.type === 'dynamic')
    throw new FormatError(path, 'rope_scaling type "dynamic" has no llama.cpp counterpart; GGUF export refuses it');
  return kv;
}

/** Llama 3 rope scaling as llama.cpp's rope_freqs.weight: the divisor of each rotary pair's frequency. */
function llama3RopeFreqs(c: LlamaConfig): Float32Array | null {
  const rs = c.ropeScaling;
  if (rs?.type !== 'llama3') return null;
  const plain = ropeTables(c.ropeTheta, c.headDim, null, c.maxPositionEmbeddings).invFreq;
  const scaled = ropeTables(c.ropeTheta, c.headDim, rs, c.maxPositionEmbeddings).invFreq;
  return plain.map((f, i) => f / scaled[i]!);
}

export interface WriteLlamaGgufOptions {
  config: LlamaConfig;
  /** Hugging Face names and layouts. */
  tensors: TensorInput;
  vocab: GgufVocab;
  /** Encoding of the matrices (1-D norm weights are always F32, as llama.cpp's converter does). */
  type?: GgufTensorType;
  /** Quantize the matrices instead (see quantTypeFor); `type` is then ignored. */
  quant?: GgufQuant;
  name?: string;
}

/** The quantized file types `fedbiot export gguf --quant` writes. */
export type GgufQuant = 'q8_0' | 'q4_0' | 'q4_k_m';
export const GGUF_QUANTS: readonly GgufQuant[] = ['q8_0', 'q4_0', 'q4_k_m'];

/** llama.cpp's general.file_type for each (LLAMA_FTYPE_MOSTLY_Q8_0 / Q4_0 / Q4_K_M). */
const QUANT_FILE_TYPE: Record<GgufQuant, number> = { q8_0: 7, q4_0: 2, q4_k_m: 15 };

/**
 * The type of one matrix in a quantized file, after llama.cpp's choices: q8_0 puts every matrix in
 * Q8_0; q4_0 keeps the output projection in more bits; q4_k_m uses Q4_K with more bits for the
 * output, attn_v and ffn_down. Where llama.cpp's mix uses Q6_K we use Q8_0 (we do not write Q6_K),
 * and a matrix whose rows do not fill whole blocks falls back as in llama.cpp (Q4_K to Q4_0, the
 * 32-blocks to F16).
 */
export function quantTypeFor(quant: GgufQuant, ggufName: string, cols: number): GgufQuantType | 'F16' {
  const moreBits =
    ggufName === 'output.weight' || (quant === 'q4_k_m' && /\.(attn_v|ffn_down)\.weight$/.test(ggufName));
  let t: GgufQuantType = quant === 'q8_0' || moreBits ? 'Q8_0' : quant === 'q4_0' ? 'Q4_0' : 'Q4_K';
  if (cols % quantBlock(t) !== 0 && t === 'Q4_K') t = 'Q4_0';
  return cols % quantBlock(t) === 0 ? t : 'F16';
}

/** Writes a llama.cpp-loadable LLaMA GGUF from HF-named tensors. */
export function writeLlamaGguf(path: string, o: WriteLlamaGgufOptions): void {
  const c = o.config;
  if (o.vocab.tokens.length !== c.vocabSize) {
    throw new FormatError(
      path,
      `tokenizer has ${o.vocab.tokens.length} tokens but config.vocab_size is ${c.vocabSize}`,
    );
  }
  const have = new Map(tensorEntries(o.tensors));
  const tensors: GgufTensorInput[] = [];
  const freqs = llama3RopeFreqs(c);
  if (freqs) tensors.push({ name: 'rope_freqs.weight', shape: [freqs.length], type: 'F32', data: freqs });
  for (const [name, shape] of llamaTensorShapes(c)) {
    const t = have.get(name);
    if (!t) throw new FormatError(path, `tensor "${name}" is missing`);
    if (t.shape.join(',') !== shape.join(','))
      throw new FormatError(path, `tensor "${name}" has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
    const gname = hfToGgufName(name)!;
    const base = /^blk\.\d+\.([a-z_]+)\.(?:weight|bias)$/.exec(gname)?.[1] ?? '';
    const heads = rotaryHeads(c, base);
    // computed when the writer reads it, so a large model need not be held in f32 all at once
    const data = () => (heads ? permuteRotary(t.data, shape[0]!, shape[1] ?? 1, heads) : t.data);
    const qt = o.quant && shape.length === 2 ? quantTypeFor(o.quant, gname, shape[1]!) : null;
    if (qt && qt !== 'F16')
      tensors.push({ name: gname, shape, type: qt, raw: quantizeRows(qt, data(), shape[0]!, shape[1]!) });
    else
      tensors.push({
        name: gname,
        shape,
        type: shape.length === 1 ? 'F32' : (qt ?? o.type ?? 'F32'),
        get data() {
          return data();
        },
      });
  }
  // LLAMA_FTYPE_ALL_F32 / MOSTLY_F16 / MOSTLY_BF16, or the quantized file type
  const fileType = o.quant ? QUANT_FILE_TYPE[o.quant] : (o.type ?? 'F32') === 'F32' ? 0 : o.type === 'F16' ? 1 : 32;
  writeGguf(path, {
    kv: [
      ['general.architecture', gv.str(ggufArch(c))],
      ['general.type', gv.str('model')],
      ['general.name', gv.str(o.name ?? 'fedbiot-llama')],
      ['general.alignment', gv.u32(32)],
      ['general.file_type', gv.u32(fileType)],
      ...archKv(c, path),
      ...vocabKv(o.vocab),
    ],
    tensors,
  });
}

function num(r: GgufReader, key: string): number {
  const v = r.get(key);
  if (typeof v !== 'number' && typeof v !== 'bigint')
    throw new FormatError('<gguf>', `key "${key}" missing or not a number`);
  return Number(v);
}

/** Reads a LLaMA GGUF back into a config and HF-named, HF-layout tensors. */
export function readLlamaGguf(path: string): {
  config: LlamaConfig;
  tensors: Map<string, TensorRecord>;
  reader: GgufReader;
} {
  const r = GgufReader.open(path);
  try {
    const a = r.get('general.architecture');
    if (a !== 'llama' && a !== 'qwen2' && a !== 'qwen3')
      throw new FormatError(path, `general.architecture is ${JSON.stringify(a)}, expected "llama", "qwen2" or "qwen3"`);
    if (r.get(`${a}.rope.scaling.type`) !== undefined || r.tensors.has('rope_freqs.weight'))
      throw new FormatError(path, 'reading rope scaling back from GGUF is not supported');
    const tokens = r.get('tokenizer.ggml.tokens');
    const heads = num(r, `${a}.attention.head_count`);
    const hidden = num(r, `${a}.embedding_length`);
    const config = parseLlamaConfig(
      {
        model_type: a,
        hidden_size: hidden,
        intermediate_size: num(r, `${a}.feed_forward_length`),
        num_hidden_layers: num(r, `${a}.block_count`),
        num_attention_heads: heads,
        num_key_value_heads:
          r.get(`${a}.attention.head_count_kv`) !== undefined ? num(r, `${a}.attention.head_count_kv`) : heads,
        head_dim:
          r.get(`${a}.rope.dimension_count`) !== undefined ? num(r, `${a}.rope.dimension_count`) : hidden / heads,
        rms_norm_eps: num(r, `${a}.attention.layer_norm_rms_epsilon`),
        rope_theta: r.get(`${a}.rope.freq_base`) !== undefined ? num(r, `${a}.rope.freq_base`) : 10000,
        vocab_size:
          r.get(`${a}.vocab_size`) !== undefined
            ? num(r, `${a}.vocab_size`)
            : Array.isArray(tokens)
              ? tokens.length
              : 0,
        max_position_embeddings: num(r, `${a}.context_length`),
        tie_word_embeddings: !r.tensors.has('output.weight'),
        ...(a !== 'qwen2' && r.tensors.has('blk.0.attn_output.bias') ? { attention_bias: true } : {}),
      },
      path,
    );
    const tensors = new Map<string, TensorRecord>();
    for (const name of r.tensors.keys()) {
      const hf = ggufToHfName(name);
      if (!hf) continue;
      const t = r.load(name);
      const base = /^blk\.\d+\.([a-z_]+)\.(?:weight|bias)$/.exec(name)?.[1] ?? '';
      const h = rotaryHeads(config, base);
      if (h) t.data = permuteRotary(t.data, t.shape[0]!, t.shape[1] ?? 1, h, true);
      tensors.set(hf, t);
    }
    return { config, tensors, reader: r };
  } catch (e) {
    r.close();
    throw e;
  }
}

export interface WriteLoraGgufOptions {
  baseConfig: LlamaConfig;
  lora: LoraConfig;
  tensors: LoraTensors;
  type?: GgufTensorType;
}

/** Writes a llama.cpp LoRA adapter GGUF (blk.N.<name>.weight.lora_a / .lora_b). */
export function writeLoraGguf(path: string, o: WriteLoraGgufOptions): void {
  const c = o.baseConfig;
  const tensors: GgufTensorInput[] = [];
  for (const [mp, { A, B }] of o.tensors) {
    const gname = hfToGgufName(`model.${mp}.weight`);
    if (!gname) throw new FormatError(path, `LoRA module "${mp}" has no llama.cpp counterpart`);
    const base = /^blk\.\d+\.([a-z_]+)\.weight$/.exec(gname)![1]!;
    const heads = rotaryHeads(c, base);
    const b = heads ? permuteRotary(B.data, B.shape[0]!, B.shape[1]!, heads) : B.data;
    tensors.push({ name: `${gname}.lora_a`, shape: A.shape, type: o.type ?? 'F32', data: A.data });
    tensors.push({ name: `${gname}.lora_b`, shape: B.shape, type: o.type ?? 'F32', data: b });
  }
  writeGguf(path, {
    kv: [
      ['general.architecture', gv.str(ggufArch(c))],
      ['general.type', gv.str('adapter')],
      ['general.alignment', gv.u32(32)],
      ['adapter.type', gv.str('lora')],
      // llama.cpp scales by alpha / rank (rank read from lora_a), matching PEFT's alpha / r
      ['adapter.lora.alpha', gv.f32(o.lora.loraAlpha)],
    ],
    tensors,
  });
}

/** Reads a LoRA GGUF back into PEFT-layout pairs keyed by module path. */
export function readLoraGguf(path: string, baseConfig: LlamaConfig): { alpha: number; tensors: LoraTensors } {
  const r = GgufReader.open(path);
  try {
    if (r.get('general.type') !== 'adapter' || r.get('adapter.type') !== 'lora')
      throw new FormatError(path, 'not a LoRA adapter GGUF');
    const alpha = Number(r.get('adapter.lora.alpha'));
    const pairs = new Map<string, { A?: TensorRecord; B?: TensorRecord }>();
    for (const name of r.tensors.keys()) {
      const m = /^(blk\.\d+\.([a-z_]+)\.weight)\.lora_(a|b)$/.exec(name);
      const hf = m ? ggufToHfName(m[1]!) : undefined;
      if (!m || !hf) throw new FormatError(path, `unexpected tensor "${name}" in a LoRA adapter`);
      const mp = hf.slice('model.'.length, -'.weight'.length);
      const t = r.load(name);
      const p = pairs.get(mp) ?? {};
      if (m[3] === 'a') p.A = t;
      else {
        const h = rotaryHeads(baseConfig, m[2]!);
        if (h) t.data = permuteRotary(t.data, t.shape[0]!, t.shape[1]!, h, true);
        p.B = t;
      }
      pairs.set(mp, p);
    }
    const tensors: LoraTensors = new Map();
    for (const [mp, p] of pairs) {
      if (!p.A || !p.B) throw new FormatError(path, `module "${mp}" lacks lora_a or lora_b`);
      tensors.set(mp, { A: p.A, B: p.B });
    }
    return { alpha, tensors };
  } finally {
    r.close();
  }
}
