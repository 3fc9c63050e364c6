// Attaching a PEFT LoRA adapter folder to a loaded model: LoRA factors with the adapter's rank and
// alpha are attached to exactly the modules the adapter has weights for (normally its
// target_modules on its layers_to_transform), then the weights are loaded. The adapter is checked
// against the model's config first, so a mismatch names the adapter file and the module.
import * as path from 'node:path';
import * as fs from 'node:fs';
import type { LlamaModel, LinearName } from '../nn/llama.js';
import { LINEAR_NAMES } from '../nn/llama.js';
import { loadLora, captureLora, type LoraState } from '../fedbiot/lora-state.js';
import { mulberry32 } from '../util/rng.js';
import { loadHfModel, loadPeftAsState } from './hf-model.js';
import { ADAPTER_CONFIG } from '../io/peft.js';

export interface AttachedAdapter {
  r: number;
  alpha: number;
  dropout: number;
  targets: LinearName[];
  layers: number[];
  state: LoraState;
}

const MODULE_RE = /^model\.layers\.(\d+)\.(?:self_attn|mlp)\.([a-z_]+)\.lora_A\.weight$/;

/** Reads the PEFT adapter in `dir`, attaches LoRA to the model's layers and loads its weights. */
export function attachPeftAdapter(model: LlamaModel, dir: string): AttachedAdapter {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new Error(`adapter folder ${dir} does not exist`);
  if (!fs.existsSync(path.join(dir, ADAPTER_CONFIG)))
    throw new Error(`${dir} is not a PEFT adapter folder: ${path.join(dir, ADAPTER_CONFIG)} is missing`);
  const a = loadPeftAsState(dir, model.config);
  const spec = { r: a.r, alpha: a.alpha, dropout: a.dropout };
  const rand = mulberry32(0);
  const where = path.join(dir, 'adapter_model.safetensors');
  for (const name of a.state.keys()) {
    const m = MODULE_RE.exec(name);
    if (!m) continue;
    const li = Number(m[1]);
    const mod = m[2] as LinearName;
    const layer =
      model.layers.find((l) => l.sourceIndex === li && l.prefix === `model.layers.${li}`) ?? model.layers[li];
    if (!layer) throw new Error(`${where}: LoRA for layer ${li} but the model has ${model.layers.length} layers`);
    if (!(LINEAR_NAMES as readonly string[]).includes(mod))
      throw new Error(`${where}: '${mod}' is not a LLaMA linear layer`);
    const lin = layer.linears[mod];
    if (lin.lora)
      throw new Error(
        `${where}: ${lin.name} already carries a LoRA adapter (attach one adapter at a time, or merge first)`,
      );
    lin.attachLora(spec, rand);
  }
  loadLora(model.layers, a.state, where);
  return { ...a, state: a.state };
}

/** Merges every attached LoRA into the base weights (W += alpha/r B A). */
export function mergeAllLora(model: LlamaModel): void {
  for (const l of model.layers) for (const n of LINEAR_NAMES) l.linears[n].merge();
}

export function unmergeAllLora(model: LlamaModel): void {
  for (const l of model.layers) for (const n of LINEAR_NAMES) l.linears[n].unmerge();
}

/** The model's current LoRA weights (names under model.layers.N). */
export function currentLora(model: LlamaModel): LoraState {
  return captureLora(model.layers);
}

/** Checks that `dir` looks like a Hugging Face model folder; the error names the flag and the file. */
export function checkModelFolder(dir: string, flag = '--model'): void {
  if (!fs.existsSync(dir)) throw new Error(`${flag} ${dir}: folder does not exist`);
  if (!fs.statSync(dir).isDirectory()) throw new Error(`${flag} ${dir}: not a folder`);
  if (!fs.existsSync(path.join(dir, 'config.json')))
    throw new Error(
      `${flag} ${dir}: ${path.join(dir, 'config.json')} is missing (expected a Hugging Face model folder)`,
    );
}

/** Loads a model folder (and optionally a PEFT adapter onto it) for inference. */
export function loadModelWithAdapter(
  modelDir: string,
  adapterDir?: string,
): { model: LlamaModel; adapter: AttachedAdapter | null } {
  checkModelFolder(modelDir);
  const model = loadHfModel(modelDir);
  let adapter: AttachedAdapter | null = null;
  if (adapterDir !== undefined) {
    try {
      adapter = attachPeftAdapter(model, adapterDir);
    } catch (e) {
      throw new Error(`--adapter ${adapterDir}: ${(e as Error).message}`);
    }
  }
  return { model, adapter };
}
