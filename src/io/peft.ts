/**
 * PEFT LoRA adapter folders: adapter_config.json + adapter_model.safetensors with
 * keys base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight ([r, in]) and
 * ...lora_B.weight ([out, r]). The update is W' = W + (alpha / r) * B @ A.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeTextAtomic } from './byte-source.js';
import type { LlamaConfig } from './hf-config.js';
import { HF_ATTN_MODULES, HF_MLP_MODULES, hfLinearShape, type HfLinearModule } from './llama-names.js';
import { SafetensorsReader, writeSafetensors } from './safetensors.js';
import { FormatError, type DType, type TensorRecord } from './types.js';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';

export interface LoraConfig {
  r: number;
  loraAlpha: number;
  loraDropout: number;
  /** Module names, e.g. ["q_proj", "v_proj"]. */
  targetModules: string[];
  baseModelNameOrPath: string | null;
  /** Only these layers carry LoRA (omitted: all layers). */
  layersToTransform?: number[];
}

export interface LoraPair {
  /** [r, in] */
  A: TensorRecord;
  /** [out, r] */
  B: TensorRecord;
}

/** Keyed by module path, e.g. "layers.3.self_attn.q_proj". */
export type LoraTensors = Map<string, LoraPair>;

const KEY_RE = /^base_model\.model\.model\.(layers\.(\d+)\.(self_attn|mlp)\.([A-Za-z0-9_]+))\.lora_(A|B)\.weight$/;
const PATH_RE = /^layers\.(\d+)\.(self_attn|mlp)\.([A-Za-z0-9_]+)$/;

export function peftKey(modulePath: string, which: 'A' | 'B'): string {
  return `base_model.model.model.${modulePath}.lora_${which}.weight`;
}

export function loraConfigToJson(c: LoraConfig): Record<string, unknown> {
  return {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    r: c.r,
    lora_alpha: c.loraAlpha,
    lora_dropout: c.loraDropout,
    target_modules: c.targetModules,
    base_model_name_or_path: c.baseModelNameOrPath,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layers_to_transform: c.layersToTransform ?? null,
    layers_pattern: null,
    modules_to_save: null,
    rank_pattern: {},
    alpha_pattern: {},
    use_rslora: false,
    use_dora: false,
    revision: null,
  };
}

export function parseLoraConfig(raw: unknown, file = ADAPTER_CONFIG): LoraConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new FormatError(file, 'not a JSON object');
  const r = raw as Record<string, unknown>;
  const bad = (f: string, m: string): never => {
    throw new FormatError(file, `field "${f}": ${m}`);
  };
  if (r.peft_type !== 'LORA') bad('peft_type', `expected "LORA", got ${JSON.stringify(r.peft_type)}`);
  if (r.task_type !== undefined && r.task_type !== null && r.task_type !== 'CAUSAL_LM')
    bad('task_type', `expected "CAUSAL_LM", got ${JSON.stringify(r.task_type)}`);
  if (typeof r.r !== 'number' || !Number.isSafeInteger(r.r) || r.r <= 0)
    bad('r', `must be a positive integer, got ${JSON.stringify(r.r)}`);
  const alpha = r.lora_alpha ?? 8;
  if (typeof alpha !== 'number' || !Number.isFinite(alpha) || alpha <= 0)
    bad('lora_alpha', `must be a positive number, got ${JSON.stringify(alpha)}`);
  const dropout = r.lora_dropout ?? 0;
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1))
    bad('lora_dropout', `must be in [0, 1), got ${JSON.stringify(dropout)}`);
  const tm = r.target_modules;
  if (typeof tm === 'string')
    bad('target_modules', 'regular-expression targets are not supported; list the module names');
  if (!Array.isArray(tm) || tm.length === 0 || tm.some((m) => typeof m !== 'string' || !m))
    bad('target_modules', 'must be a non-empty list of module names');
  if ((r.bias ?? 'none') !== 'none') bad('bias', `only "none" is supported, got ${JSON.stringify(r.bias)}`);
  if (r.fan_in_fan_out === true) bad('fan_in_fan_out', 'true is not supported for LLaMA linear layers');
  if (r.use_dora === true) bad('use_dora', 'DoRA adapters are not supported');
  for (const f of ['rank_pattern', 'alpha_pattern'] as const) {
    const v = r[f];
    if (v !== undefined && v !== null && (typeof v !== 'object' || Object.keys(v).length > 0))
      bad(f, 'per-module ranks/alphas are not supported');
  }
  if (r.use_rslora === true) bad('use_rslora', 'rank-stabilised scaling is not supported');
  let layers: number[] | undefined;
  const lt = r.layers_to_transform;
  if (typeof lt === 'number') layers = [lt];
  else if (Array.isArray(lt)) layers = lt as number[];
  else if (lt !== undefined && lt !== null)
    bad('layers_to_transform', 'must be an integer, a list of integers or null');
  if (layers?.some((l) => typeof l !== 'number' || !Number.isSafeInteger(l) || l < 0))
    bad('layers_to_transform', 'must hold non-negative integers');
  const base = r.base_model_name_or_path ?? null;
  if (base !== null && typeof base !== 'string') bad('base_model_name_or_path', 'must be a string or null');
  return {
    r: r.r as number,
    loraAlpha: alpha as number,
    loraDropout: dropout as number,
    targetModules: [...(tm as string[])],
    baseModelNameOrPath: base as string | null,
    ...(layers ? { layersToTransform: layers } : {}),
  };
}

export interface WritePeftOptions {
  config: LoraConfig;
  tensors: LoraTensors;
  /** Encoding of the weights (default F32). */
  dtype?: DType;
}

export function writePeftAdapter(dir: string, opts: WritePeftOptions): void {
  validatePairs(dir, opts.config, opts.tensors);
  const out = new Map<string, TensorRecord>();
  for (const mp of [...opts.tensors.keys()].sort(compareModulePaths)) {
    const p = opts.tensors.get(mp)!;
    out.set(peftKey(mp, 'A'), p.A);
    out.set(peftKey(mp, 'B'), p.B);
  }
  fs.mkdirSync(dir, { recursive: true });
  writeSafetensors(path.join(dir, ADAPTER_WEIGHTS), out, { dtype: opts.dtype ?? 'F32', metadata: { format: 'pt' } });
  writeTextAtomic(path.join(dir, ADAPTER_CONFIG), JSON.stringify(loraConfigToJson(opts.config), null, 2) + '\n');
}

export interface ReadPeftOptions {
  /** When given, also check each module's in/out sizes against the base model. */
  baseConfig?: LlamaConfig;
}

export function readPeftAdapter(dir: string, opts: ReadPeftOptions = {}): { config: LoraConfig; tensors: LoraTensors } {
  const cfgPath = path.join(dir, ADAPTER_CONFIG);
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(cfgPath, 'utf8'));
  } catch (e) {
    throw new FormatError(cfgPath, `cannot read: ${(e as Error).message}`);
  }
  const config = parseLoraConfig(raw, cfgPath);
  const wPath = path.join(dir, ADAPTER_WEIGHTS);
  if (!fs.existsSync(wPath)) {
    const hasBin = fs.existsSync(path.join(dir, 'adapter_model.bin'));
    throw new FormatError(
      wPath,
      hasBin ? 'missing (only the pickle adapter_model.bin exists, which is not supported)' : 'missing',
    );
  }
  const reader = SafetensorsReader.open(wPath);
  const halves = new Map<string, Partial<LoraPair>>();
  try {
    for (const name of reader.names()) {
      const m = KEY_RE.exec(name);
      if (!m) throw new FormatError(wPath, `tensor "${name}" is not a LoRA A/B weight of a LLaMA layer`);
      const mp = m[1]!;
      const h = halves.get(mp) ?? {};
      h[m[5] as 'A' | 'B'] = reader.load(name);
      halves.set(mp, h);
    }
  } finally {
    reader.close();
  }
  const tensors: LoraTensors = new Map();
  for (const [mp, h] of halves) {
    if (!h.A || !h.B)
      throw new FormatError(wPath, `module "${mp}" has lora_${h.A ? 'A' : 'B'} but no lora_${h.A ? 'B' : 'A'}`);
    tensors.set(mp, { A: h.A, B: h.B });
  }
  validatePairs(wPath, config, tensors, opts.baseConfig);
  return { config, tensors };
}

const MODULE_ORDER: string[] = [...HF_ATTN_MODULES, ...HF_MLP_MODULES];

function compareModulePaths(a: string, b: string): number {
  const ma = PATH_RE.exec(a);
  const mb = PATH_RE.exec(b);
  if (!ma || !mb) return a < b ? -1 : 1;
  return Number(ma[1]) - Number(mb[1]) || MODULE_ORDER.indexOf(ma[3]!) - MODULE_ORDER.indexOf(mb[3]!);
}

function validatePairs(file: string, c: LoraConfig, t: LoraTensors, base?: LlamaConfig): void {
  if (t.size === 0) throw new FormatError(file, 'adapter holds no LoRA weights');
  const seenTargets = new Set<string>();
  for (const [mp, { A, B }] of t) {
    const m = PATH_RE.exec(mp);
    if (!m) throw new FormatError(file, `module path "${mp}" is not like "layers.N.self_attn.q_proj"`);
    const layer = Number(m[1]);
    const mod = m[3]!;
    const group = (HF_ATTN_MODULES as readonly string[]).includes(mod)
      ? 'self_attn'
      : (HF_MLP_MODULES as readonly string[]).includes(mod)
        ? 'mlp'
        : undefined;
    if (group !== m[2]) throw new FormatError(file, `module "${mp}": "${mod}" is not a LLaMA ${m[2]} linear layer`);
    if (!c.targetModules.includes(mod))
      throw new FormatError(file, `module "${mp}": "${mod}" is not in target_modules [${c.targetModules.join(', ')}]`);
    if (c.layersToTransform && !c.layersToTransform.includes(layer))
      throw new FormatError(file, `module "${mp}": layer ${layer} is not in layers_to_transform`);
    if (base && layer >= base.numHiddenLayers)
      throw new FormatError(file, `module "${mp}": the base model has only ${base.numHiddenLayers} layers`);
    if (A.shape.length !== 2 || B.shape.length !== 2)
      throw new FormatError(file, `module "${mp}": lora_A and lora_B must be matrices`);
    if (A.shape[0] !== c.r)
      throw new FormatError(file, `module "${mp}": lora_A has shape [${A.shape.join(', ')}], expected [r=${c.r}, in]`);
    if (B.shape[1] !== c.r)
      throw new FormatError(file, `module "${mp}": lora_B has shape [${B.shape.join(', ')}], expected [out, r=${c.r}]`);
    for (const [n, x] of [
      ['lora_A', A],
      ['lora_B', B],
    ] as const) {
      if (x.data.length !== x.shape[0]! * x.shape[1]!)
        throw new FormatError(file, `module "${mp}": ${n} data length does not match its shape`);
    }
    if (base) {
      const [out, inp] = hfLinearShape(base, mod as HfLinearModule);
      if (A.shape[1] !== inp || B.shape[0] !== out) {
        throw new FormatError(
          file,
          `module "${mp}": LoRA maps ${A.shape[1]} -> ${B.shape[0]} but the base layer maps ${inp} -> ${out}`,
        );
      }
    }
    seenTargets.add(mod);
  }
  for (const tm of c.targetModules)
    if (!seenTargets.has(tm)) throw new FormatError(file, `target module "${tm}" has no LoRA weights`);
}
