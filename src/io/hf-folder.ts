/**
 * Hugging Face model folders: config.json + model.safetensors, or shards
 * model-0000i-of-0000N.safetensors listed by model.safetensors.index.json.
 * Reading is lazy (tensors load on demand); writing shards by a size limit.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeTextAtomic } from './byte-source.js';
import { DTYPE_BYTES } from './dtype.js';
import { readLlamaConfig, writeLlamaConfig, type LlamaConfig } from './hf-config.js';
import { llamaTensorShapes } from './llama-names.js';
import { SafetensorsReader, tensorEntries, writeSafetensors, type TensorInput } from './safetensors.js';
import { FormatError, numel, type DType, type TensorInfo, type TensorRecord } from './types.js';

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';
const SHARD_RE = /^model-(\d{5})-of-(\d{5})\.safetensors$/;

export interface HfTensorInfo extends TensorInfo {
  /** Shard file name inside the folder. */
  shard: string;
}

export interface OpenHfModelOptions {
  /** Check that every LLaMA tensor the config implies is present with the right shape (default true). */
  validateLlama?: boolean;
}

export class HfModelReader {
  private constructor(
    readonly dir: string,
    readonly config: LlamaConfig,
    readonly generationConfig: Record<string, unknown> | undefined,
    private readonly shards: Map<string, SafetensorsReader>,
    private readonly where: Map<string, string>,
  ) {}

  static open(dir: string, opts: OpenHfModelOptions = {}): HfModelReader {
    const config = readLlamaConfig(path.join(dir, 'config.json'));
    const genPath = path.join(dir, 'generation_config.json');
    let generationConfig: Record<string, unknown> | undefined;
    if (fs.existsSync(genPath)) {
      const g = readJson(genPath);
      if (g === null || typeof g !== 'object' || Array.isArray(g)) throw new FormatError(genPath, 'not a JSON object');
      generationConfig = g as Record<string, unknown>;
    }
    const shards = new Map<string, SafetensorsReader>();
    const where = new Map<string, string>();
    try {
      const indexPath = path.join(dir, INDEX_FILE);
      if (fs.existsSync(indexPath)) {
        const weightMap = readIndex(indexPath);
        for (const shard of new Set(weightMap.values())) {
          const p = path.join(dir, shard);
          if (!fs.existsSync(p))
            throw new FormatError(indexPath, `shard "${shard}" listed in weight_map does not exist`);
          shards.set(shard, SafetensorsReader.open(p));
        }
        for (const [name, shard] of weightMap) {
          if (!shards.get(shard)!.has(name))
            throw new FormatError(
              indexPath,
              `tensor "${name}" is mapped to "${shard}" but that shard does not contain it`,
            );
          where.set(name, shard);
        }
        for (const [shard, r] of shards) {
          for (const name of r.names()) {
            if (where.get(name) !== shard)
              throw new FormatError(
                indexPath,
                `tensor "${name}" in shard "${shard}" is not in the weight_map (or mapped to another shard)`,
              );
          }
        }
      } else {
        const p = path.join(dir, SINGLE_FILE);
        if (!fs.existsSync(p)) throw new FormatError(dir, `neither ${SINGLE_FILE} nor ${INDEX_FILE} found`);
        const r = SafetensorsReader.open(p);
        shards.set(SINGLE_FILE, r);
        for (const name of r.names()) where.set(name, SINGLE_FILE);
      }
      const reader = new HfModelReader(dir, config, generationConfig, shards, where);
      if (opts.validateLlama ?? true) reader.validateLlama();
      return reader;
    } catch (e) {
      for (const r of shards.values()) r.close();
      throw e;
    }
  }

  names(): string[] {
    return [...this.where.keys()];
  }
  has(name: string): boolean {
    return this.where.has(name);
  }
  info(name: string): HfTensorInfo {
    const shard = this.shardOf(name);
    return { ...this.shards.get(shard)!.info(name), shard };
  }
  load(name: string): TensorRecord {
    return this.shards.get(this.shardOf(name))!.load(name);
  }
  /** The tensor's stored bytes, undecoded (16-bit weights are kept as they are). */
  loadRaw(name: string): Uint8Array {
    return this.shards.get(this.shardOf(name))!.loadRaw(name);
  }
  /** Metadata of the first shard (HF writes {"format": "pt"}). */
  get metadata(): Record<string, string> {
    return this.shards.values().next().value?.metadata ?? {};
  }
  close(): void {
    for (const r of this.shards.values()) r.close();
  }

  private shardOf(name: string): string {
    const s = this.where.get(name);
    if (s === undefined) throw new FormatError(this.dir, `no tensor named "${name}"`);
    return s;
  }

  private validateLlama(): void {
    const expected = llamaTensorShapes(this.config);
    for (const name of this.where.keys()) {
      // a tied head may still be stored; old checkpoints keep rotary tables (recomputed from the config)
      if (expected.has(name) || name === 'lm_head.weight' || name.endsWith('.rotary_emb.inv_freq')) continue;
      throw new FormatError(
        this.dir,
        `tensor "${name}" is not part of a ${this.config.modelType} model with this config.json (a bias or norm the config does not declare?)`,
      );
    }
    for (const [name, shape] of expected) {
      if (!this.where.has(name)) throw new FormatError(this.dir, `tensor "${name}" required by config.json is missing`);
      const got = this.info(name).shape;
      if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) {
        throw new FormatError(
          this.dir,
          `tensor "${name}" has shape [${got.join(', ')}], config.json implies [${shape.join(', ')}]`,
        );
      }
    }
  }
}

export function openHfModel(dir: string, opts?: OpenHfModelOptions): HfModelReader {
  return HfModelReader.open(dir, opts);
}

function readJson(p: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(p, 'utf8'));
  } catch (e) {
    throw new FormatError(p, `cannot parse JSON: ${(e as Error).message}`);
  }
}

function readIndex(indexPath: string): Map<string, string> {
  const raw = readJson(indexPath);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new FormatError(indexPath, 'not a JSON object');
  const wm = (raw as Record<string, unknown>).weight_map;
  if (wm === null || typeof wm !== 'object' || Array.isArray(wm))
    throw new FormatError(indexPath, 'weight_map missing or not an object');
  const out = new Map<string, string>();
  for (const [name, shard] of Object.entries(wm as Record<string, unknown>)) {
    if (typeof shard !== 'string' || !shard.endsWith('.safetensors'))
      throw new FormatError(indexPath, `weight_map["${name}"] is not a .safetensors file name`);
    // only plain names: an index must not point outside its folder
    if (shard !== path.basename(shard) || shard.includes('\\') || shard.startsWith('.')) {
      throw new FormatError(indexPath, `weight_map["${name}"] = "${shard}" is not a plain file name in the folder`);
    }
    out.set(name, shard);
  }
  if (out.size === 0) throw new FormatError(indexPath, 'weight_map is empty');
  return out;
}

export interface WriteHfModelOptions {
  config: LlamaConfig;
  tensors: TensorInput;
  /** Encode all tensors as this dtype (default F32 unless records say otherwise). */
  dtype?: DType;
  /** Start a new shard before a shard would exceed this many bytes of tensor data (default: one file). */
  maxShardBytes?: number;
  /** Check tensors against the config's LLaMA layout before writing (default true). */
  validateLlama?: boolean;
}

const TORCH_DTYPE: Partial<Record<DType, string>> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

/** Writes config.json and the weights (one file or shards + index); returns the shard file names. */
export function writeHfModel(dir: string, opts: WriteHfModelOptions): string[] {
  const entries = tensorEntries(opts.tensors);
  if (opts.validateLlama ?? true) {
    const have = new Map(entries);
    for (const [name, shape] of llamaTensorShapes(opts.config)) {
      const t = have.get(name);
      if (!t) throw new FormatError(dir, `tensor "${name}" required by the config is missing`);
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        throw new FormatError(
          dir,
          `tensor "${name}" has shape [${t.shape.join(', ')}], the config implies [${shape.join(', ')}]`,
        );
      }
    }
  }
  const dtypeOf = (t: TensorRecord): DType => opts.dtype ?? t.dtype;
  const sizeOf = (t: TensorRecord) => numel(t.shape) * DTYPE_BYTES[dtypeOf(t)];
  const groups: [string, TensorRecord][][] = [[]];
  let cur = 0;
  const limit = opts.maxShardBytes ?? Infinity;
  if (!(limit > 0)) throw new RangeError('maxShardBytes must be positive');
  for (const e of entries) {
    const s = sizeOf(e[1]);
    if (groups[groups.length - 1]!.length > 0 && cur + s > limit) {
      groups.push([]);
      cur = 0;
    }
    groups[groups.length - 1]!.push(e);
    cur += s;
  }
  fs.mkdirSync(dir, { recursive: true });
  const dtypes = new Set(entries.map(([, t]) => dtypeOf(t)));
  const torchDtype = dtypes.size === 1 ? TORCH_DTYPE[[...dtypes][0]!] : undefined;
  writeLlamaConfig(path.join(dir, 'config.json'), { ...opts.config, ...(torchDtype ? { torchDtype } : {}) });
  const meta = { format: 'pt' };
  const written: string[] = [];
  if (groups.length === 1) {
    writeSafetensors(path.join(dir, SINGLE_FILE), groups[0]!, {
      ...(opts.dtype ? { dtype: opts.dtype } : {}),
      metadata: meta,
    });
    written.push(SINGLE_FILE);
  } else {
    const n = groups.length;
    const weightMap: Record<string, string> = {};
    let total = 0;
    groups.forEach((g, i) => {
      const name = `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
      writeSafetensors(path.join(dir, name), g, { ...(opts.dtype ? { dtype: opts.dtype } : {}), metadata: meta });
      for (const [t, rec] of g) {
        weightMap[t] = name;
        total += sizeOf(rec);
      }
      written.push(name);
    });
    writeTextAtomic(
      path.join(dir, INDEX_FILE),
      JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2) + '\n',
    );
  }
  // remove weights left from an earlier write so the folder is unambiguous
  for (const f of fs.readdirSync(dir)) {
    const stale =
      (f === SINGLE_FILE || f === INDEX_FILE || SHARD_RE.test(f)) &&
      !written.includes(f) &&
      !(f === INDEX_FILE && groups.length > 1);
    if (stale) fs.unlinkSync(path.join(dir, f));
  }
  return written;
}
