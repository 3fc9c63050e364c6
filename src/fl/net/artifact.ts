// The compressed model as clients receive it: a Hugging Face folder whose layers are renamed
// consecutively (adapter bottom, emulator, adapter top), the split manifest that says which layer is
// which, and the tokenizer. The full model's dropped layers are never written here. Each weight
// travels and is held in the format the server computes with (algorithm.emulator.weights: a Q8_0 /
// Q4 emulator's blocks in a side file, loaded as they are).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import type { DecoderLayer, LlamaModel } from '../../nn/llama.js';
import { saveHfModel, loadHfModel } from '../../models/hf-model.js';
import { makeManifest, type SplitManifest } from '../../fedbiot/split.js';
import { modelHash } from '../../models/hash.js';
import type { SplitModels, LoraConfig } from '../../fedbiot/compress.js';
import type { TokenizerLike } from '../../data/types.js';
import { ByteTokenizer } from '../../data/byte-tokenizer.js';
import { loadTokenizer } from '../../io/tokenizer.js';
import { writeAtomic } from '../../io/byte-source.js';
import type { ServerAlgorithm } from '../../fedbiot/algorithms.js';
import { artifactSchema, type Artifact, type ModelFile } from './protocol.js';

export const MANIFEST_FILE = 'split-manifest.json';
export const CLIENT_INFO_FILE = 'fedbiot-client.json';
export const ARTIFACT_FILE = 'artifact.json';

export function sha256File(file: string): string {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n <= 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

export function artifactHash(files: readonly ModelFile[]): string {
  const lines = [...files].sort((a, b) => (a.name < b.name ? -1 : 1)).map((f) => `${f.name} ${f.size} ${f.sha256}\n`);
  return createHash('sha256').update(lines.join('')).digest('hex');
}

/** Describes the files of a folder (all plain files except artifact.json). */
export function describeFolder(dir: string): Artifact {
  const files: ModelFile[] = fs
    .readdirSync(dir)
    .filter((n) => n !== ARTIFACT_FILE && !n.includes('.tmp-') && fs.statSync(path.join(dir, n)).isFile())
    .sort()
    .map((name) => ({ name, size: fs.statSync(path.join(dir, name)).size, sha256: sha256File(path.join(dir, name)) }));
  return { format: 'fedbiot-compressed/1', sha256: artifactHash(files), files };
}

/**
 * Writes what clients download into `dir` (emptied first) and returns its description. Only the
 * compressed model's layers are written: the dropped block stays on the server.
 */
export function writeCompressedModel(split: SplitModels, dir: string, o: { modelPath?: string }): Artifact {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const layers = split.compressed.layers.map((l, i) => l.cloneShared(`model.layers.${i}`, i));
  // every weight as the clients compute with it: a quantized emulator's Q8_0 / Q4_0 blocks as they
  // are (QUANTIZED_FILE), 16-bit weights in 16 bits, the rest f32
  saveHfModel(split.compressed.withLayers(layers), dir, { dtype: 'stored' });
  // The same content hash of the full model's weights as the simulation's split.json.
  const manifest = makeManifest(split.plan, split.placement, modelHash(split.full));
  writeAtomic(path.join(dir, MANIFEST_FILE), JSON.stringify(manifest, null, 2));
  let tokenizer: 'byte' | 'tokenizer.json' = 'byte';
  if (o.modelPath) {
    for (const f of [
      'tokenizer.json',
      'tokenizer_config.json',
      'special_tokens_map.json',
      'chat_template.jinja',
      'chat_template.json',
    ]) {
      const src = path.join(o.modelPath, f);
      if (fs.existsSync(src)) fs.copyFileSync(src, path.join(dir, f));
    }
    if (fs.existsSync(path.join(dir, 'tokenizer.json'))) tokenizer = 'tokenizer.json';
  }
  writeAtomic(path.join(dir, CLIENT_INFO_FILE), JSON.stringify({ format: 'fedbiot-client/1', tokenizer }, null, 2));
  const art = describeFolder(dir);
  writeAtomic(path.join(dir, ARTIFACT_FILE), JSON.stringify(art, null, 2));
  return art;
}

/**
 * Writes the files a client of `server` downloads to join (the compressed model; the full model
 * when there is no emulator) into `dir` and returns their total size.
 */
export function clientDownloadBytes(server: ServerAlgorithm, dir: string, modelPath?: string): number {
  if (server.split) return writeCompressedModel(server.split, dir, { modelPath }).files.reduce((a, f) => a + f.size, 0);
  fs.rmSync(dir, { recursive: true, force: true });
  saveHfModel(server.fullModel(), dir);
  if (modelPath)
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'])
      if (fs.existsSync(path.join(modelPath, f))) fs.copyFileSync(path.join(modelPath, f), path.join(dir, f));
  return describeFolder(dir).files.reduce((a, f) => a + f.size, 0);
}

/** The artifact previously written in `dir`, re-verified, or null when absent or stale. */
export function readArtifact(dir: string): Artifact | null {
  const p = path.join(dir, ARTIFACT_FILE);
  if (!fs.existsSync(p)) return null;
  try {
    const art = artifactSchema.parse(JSON.parse(fs.readFileSync(p, 'utf8')));
    const now = describeFolder(dir);
    return now.sha256 === art.sha256 ? art : null;
  } catch {
    return null;
  }
}

export interface ClientModel {
  model: LlamaModel;
  adapter: DecoderLayer[];
  emulator: DecoderLayer[];
  tokenizer: TokenizerLike;
  manifest: SplitManifest;
}

/**
 * Rebuilds the client's model from a downloaded folder: layers get back the names the server's
 * LoRA states use (model.layers.<source> for adapter layers, emulator.layers.<k> for the emulator),
 * and LoRA is attached to both (its values come with the first round's payload).
 */
export function loadClientModel(dir: string, lora: { adapter: LoraConfig; emulator: LoraConfig }): ClientModel {
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, MANIFEST_FILE), 'utf8')) as SplitManifest;
  if (manifest.format !== 'fedbiot-split/1') throw new Error(`${dir}: not a fedbiot split manifest`);
  const info = JSON.parse(fs.readFileSync(path.join(dir, CLIENT_INFO_FILE), 'utf8')) as {
    tokenizer: 'byte' | 'tokenizer.json';
  };
  const loaded = loadHfModel(dir);
  if (loaded.layers.length !== manifest.layers.length)
    throw new Error(`${dir}: ${loaded.layers.length} layers, the manifest lists ${manifest.layers.length}`);
  const adapter: DecoderLayer[] = [];
  const emulator: DecoderLayer[] = [];
  const layers = loaded.layers.map((l, i) => {
    const m = manifest.layers[i]!;
    const prefix = m.role === 'adapter' ? `model.layers.${m.source}` : `emulator.layers.${emulator.length}`;
    const nl = l.cloneShared(prefix, m.source);
    (m.role === 'adapter' ? adapter : emulator).push(nl);
    return nl;
  });
  const model = loaded.withLayers(layers);
  model.attachLora(lora.adapter, 1, adapter);
  model.attachLora(lora.emulator, 2, emulator);
  const tokenizer: TokenizerLike = info.tokenizer === 'byte' ? new ByteTokenizer() : loadTokenizer(dir);
  return { model, adapter, emulator, tokenizer, manifest };
}
