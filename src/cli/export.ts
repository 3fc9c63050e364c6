// `fedbiot export ...`: models and adapters in the formats other tools read.
//
//   export gguf  --model DIR [--adapter DIR] --out FILE [--dtype f32|f16 | --quant q8_0|q4_0|q4_k_m] [--adapter-out FILE]
//       A llama.cpp GGUF (llama-cli, llama-server, Ollama, LM Studio), in floats or quantized
//       (llama.cpp's Q8_0, Q4_0 or Q4_K_M mix; see quantTypeFor). With --adapter the LoRA is
//       merged into the weights, giving one self-contained file: what most llama.cpp users expect.
//       With --adapter-out as well, the base stays unmerged in --out and the adapter is written as a
//       llama.cpp LoRA GGUF, for `llama-cli -m base.gguf --lora adapter.gguf`.
//   export peft  --run DIR --out DIR
//       The final adapter of a simulation run (DIR/adapter, else the latest checkpoint) as a PEFT
//       folder, loadable with peft's PeftModel.from_pretrained and with --adapter here.
//   export merge --model DIR --adapter DIR --out DIR [--dtype f32|f16|bf16]
//       A full Hugging Face folder with the LoRA merged in, tokenizer and generation files copied.
import type { Command } from 'commander';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadTokenizer } from '../io/tokenizer.js';
import { writeLlamaGguf, writeLoraGguf, GGUF_QUANTS, type GgufQuant, type GgufVocab } from '../io/gguf-llama.js';
import { readPeftAdapter, writePeftAdapter, ADAPTER_CONFIG, type LoraTensors } from '../io/peft.js';
import { readLlamaConfig, type LlamaConfig } from '../io/hf-config.js';
import type { DType, TensorRecord } from '../io/types.js';
import { saveHfModel, saveAdapterAsPeft, toLlamaConfig } from '../models/hf-model.js';
import { loadModelWithAdapter, mergeAllLora } from '../models/adapter.js';
import { loadCheckpoint } from '../fl/checkpoint.js';
import { widened, type LlamaModel } from '../nn/llama.js';

/** Files of a model folder that describe the tokenizer and generation defaults. */
export const TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'tokenizer.model',
  'generation_config.json',
  'chat_template.json',
  'chat_template.jinja',
];

function parseDtype(flag: string, v: string, allowed: readonly string[]): DType {
  const d = v.toLowerCase();
  if (!allowed.includes(d)) throw new Error(`${flag} must be one of ${allowed.join(', ')}, got '${v}'`);
  return d.toUpperCase() as DType;
}

/** The config.json of the folder when readable (keeps fields the engine does not model), else the model's. */
function folderConfig(dir: string, model: LlamaModel): LlamaConfig {
  try {
    return { ...readLlamaConfig(path.join(dir, 'config.json')), tieWordEmbeddings: model.config.tieWordEmbeddings };
  } catch {
    return toLlamaConfig(model.config);
  }
}

/** The GGUF vocabulary, padded with unused tokens when config.json's vocab_size is larger (as llama.cpp's converter does). */
export function paddedVocab(v: GgufVocab, vocabSize: number, where: string): GgufVocab {
  if (v.tokens.length > vocabSize)
    throw new Error(
      `${where}: the tokenizer has ${v.tokens.length} tokens but config.json vocab_size is only ${vocabSize}`,
    );
  if (v.tokens.length === vocabSize) return v;
  const extra = vocabSize - v.tokens.length;
  const pad = Array.from({ length: extra }, (_, i) => `[PAD${v.tokens.length + i}]`);
  return {
    ...v,
    tokens: [...v.tokens, ...pad],
    scores: [...v.scores, ...new Array<number>(extra).fill(0)],
    tokenTypes: [...v.tokenTypes, ...new Array<number>(extra).fill(5)],
  };
}

/** The model's tensors for a writer; a stored-format (BF16/F16) weight is widened when it is read, one at a time. */
function baseRecords(model: LlamaModel): Map<string, TensorRecord> {
  const m = new Map<string, TensorRecord>();
  for (const [name, w] of model.baseWeights())
    m.set(name, {
      dtype: 'F32',
      shape: [...w.shape],
      get data() {
        return widened(w).data;
      },
    });
  return m;
}

export interface ExportGgufOptions {
  model: string;
  adapter?: string;
  out: string;
  dtype?: 'F32' | 'F16';
  /** Quantize the matrices (after merging the adapter, when one is given without adapterOut). */
  quant?: GgufQuant;
  /** Write the adapter as a separate LoRA GGUF here instead of merging it. */
  adapterOut?: string;
}

export function exportGguf(o: ExportGgufOptions): void {
  if (o.adapterOut && !o.adapter) throw new Error('--adapter-out needs --adapter');
  const { model, adapter } = loadModelWithAdapter(o.model, o.adapter);
  let tok: ReturnType<typeof loadTokenizer>;
  try {
    tok = loadTokenizer(o.model);
  } catch (e) {
    throw new Error(
      `--model ${o.model}: a GGUF file carries the tokenizer, and it cannot be read: ${(e as Error).message}`,
    );
  }
  const config = folderConfig(o.model, model);
  const vocab = paddedVocab(tok.toGgufVocab(), config.vocabSize, o.model);
  fs.mkdirSync(path.dirname(path.resolve(o.out)), { recursive: true });
  if (adapter && !o.adapterOut) mergeAllLora(model);
  writeLlamaGguf(o.out, {
    config,
    tensors: baseRecords(model),
    vocab,
    type: o.dtype ?? 'F32',
    ...(o.quant ? { quant: o.quant } : {}),
    name: path.basename(path.resolve(o.model)),
  });
  if (adapter && o.adapterOut) {
    const { config: lc, tensors } = readPeftAdapter(o.adapter!);
    fs.mkdirSync(path.dirname(path.resolve(o.adapterOut)), { recursive: true });
    writeLoraGguf(o.adapterOut, { baseConfig: config, lora: lc, tensors, type: 'F32' });
  }
}

/** Copies (re-validating) a run's final adapter to a PEFT folder. */
export function exportPeft(o: { run: string; out: string }): string {
  if (!fs.existsSync(o.run) || !fs.statSync(o.run).isDirectory())
    throw new Error(`--run ${o.run}: folder does not exist`);
  const final = path.join(o.run, 'adapter');
  if (fs.existsSync(path.join(final, ADAPTER_CONFIG))) {
    const a = readPeftAdapter(final);
    writePeftAdapter(o.out, { config: a.config, tensors: a.tensors as LoraTensors });
    return final;
  }
  const ck = loadCheckpoint<unknown>(path.join(o.run, 'checkpoints'));
  if (!ck)
    throw new Error(
      `--run ${o.run}: neither ${path.join(final, ADAPTER_CONFIG)} (a finished run) nor ${path.join(o.run, 'checkpoints', 'latest.json')} (a checkpoint) exists`,
    );
  const cfgPath = path.join(o.run, 'config.resolved.json');
  let lora: { r?: number; alpha?: number; dropout?: number } = {};
  let baseModel: string | null = null;
  try {
    const cfg = JSON.parse(fs.readFileSync(cfgPath, 'utf8')) as {
      algorithm?: { adapterLora?: typeof lora };
      model?: { path?: string };
    };
    lora = cfg.algorithm?.adapterLora ?? {};
    baseModel = cfg.model?.path ?? null;
  } catch (e) {
    throw new Error(
      `--run ${o.run}: ${cfgPath} is needed for the adapter's alpha and cannot be read: ${(e as Error).message}`,
    );
  }
  const firstA = [...ck.adapter].find(([n]) => n.endsWith('lora_A.weight'));
  if (!firstA) throw new Error(`--run ${o.run}: the checkpoint's adapter holds no LoRA weights`);
  const r = firstA[1].shape[0]!;
  if (lora.alpha === undefined) throw new Error(`${cfgPath}: algorithm.adapterLora.alpha is missing`);
  saveAdapterAsPeft(ck.adapter, o.out, { r, alpha: lora.alpha, dropout: lora.dropout ?? 0, baseModel });
  return path.join(o.run, 'checkpoints');
}

export function exportMerge(o: { model: string; adapter: string; out: string; dtype?: DType }): void {
  if (path.resolve(o.out) === path.resolve(o.model))
    throw new Error(`--out ${o.out}: must differ from --model (the base folder would be overwritten)`);
  const { model } = loadModelWithAdapter(o.model, o.adapter);
  mergeAllLora(model);
  saveHfModel(model, o.out, { dtype: o.dtype ?? 'F32', source: folderConfig(o.model, model) });
  for (const f of TOKENIZER_FILES) {
    const src = path.join(o.model, f);
    if (fs.existsSync(src)) fs.copyFileSync(src, path.join(o.out, f));
  }
}

export function registerExport(program: Command): void {
  const exp = program
    .command('export')
    .description('export models and adapters (GGUF for llama.cpp, PEFT, merged Hugging Face folders)');
  exp
    .command('gguf')
    .description(
      'write a llama.cpp GGUF; with --adapter the LoRA is merged in (or written separately with --adapter-out)',
    )
    .requiredOption('--model <dir>', 'Hugging Face model folder (with tokenizer.json)')
    .option('--adapter <dir>', 'PEFT LoRA adapter folder')
    .requiredOption('--out <file>', 'output .gguf file')
    .option('--dtype <t>', 'f32 or f16 for the matrices (norms stay f32)', 'f32')
    .option('--quant <q>', `quantize the matrices: ${GGUF_QUANTS.join(', ')} (llama.cpp's types; norms stay f32)`)
    .option('--adapter-out <file>', 'keep the base unmerged and write the adapter as a llama.cpp LoRA GGUF here')
    .action(
      (o: { model: string; adapter?: string; out: string; dtype: string; quant?: string; adapterOut?: string }) => {
        const dtype = parseDtype('--dtype', o.dtype, ['f32', 'f16']) as 'F32' | 'F16';
        const quant = o.quant?.toLowerCase();
        if (quant !== undefined && !(GGUF_QUANTS as readonly string[]).includes(quant))
          throw new Error(`--quant must be one of ${GGUF_QUANTS.join(', ')}, got '${o.quant}'`);
        exportGguf({
          model: o.model,
          out: o.out,
          dtype,
          ...(quant ? { quant: quant as GgufQuant } : {}),
          ...(o.adapter ? { adapter: o.adapter } : {}),
          ...(o.adapterOut ? { adapterOut: o.adapterOut } : {}),
        });
        process.stderr.write(`wrote ${o.out}${o.adapterOut ? ` and ${o.adapterOut}` : ''}\n`);
      },
    );
  exp
    .command('peft')
    .description("copy a simulation run's final adapter as a PEFT folder")
    .requiredOption('--run <dir>', 'output folder of `fedbiot simulate` / `fedbiot demo`')
    .requiredOption('--out <dir>', 'PEFT adapter folder to write')
    .action((o: { run: string; out: string }) => {
      const from = exportPeft(o);
      process.stderr.write(`wrote ${o.out} (from ${from})\n`);
    });
  exp
    .command('merge')
    .description('merge a LoRA adapter into a model and write a full Hugging Face folder')
    .requiredOption('--model <dir>', 'Hugging Face model folder')
    .requiredOption('--adapter <dir>', 'PEFT LoRA adapter folder')
    .requiredOption('--out <dir>', 'output folder')
    .option('--dtype <t>', 'f32, f16 or bf16', 'f32')
    .action((o: { model: string; adapter: string; out: string; dtype: string }) => {
      const dtype = parseDtype('--dtype', o.dtype, ['f32', 'f16', 'bf16']);
      exportMerge({ model: o.model, adapter: o.adapter, out: o.out, dtype });
      process.stderr.write(`wrote ${o.out}\n`);
    });
}
