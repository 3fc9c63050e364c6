// What one round costs at real sizes: random checkpoints in the exact shapes of Qwen2.5-0.5B (tied,
// q/k/v bias) and TinyLlama-1.1B (GQA 32/4, 22 layers), written as BF16 safetensors by our exporter
// (cached under .cache/bench-scale). Each measurement runs in a process of its own
// (bench/scale-worker.ts), so peak RSS is the server's or the client's alone:
//   load_s          loading the folder (linear weights stay BF16 in memory)
//   forward_ratio   our forward tokens/s at seq 512 / PyTorch's best (float32 or bfloat16, 1 or 2 threads)
//   server_rss_mb   full model + FedBiOT split (adapter 2, beta 0.2, LoRA r 8) + one alignment step
//   client_rss_mb   the compressed model the server wrote + one local step (seq 512, batch 1)
//   generate_ratio  our greedy tokens/s / llama.cpp's on an F16 GGUF of the same weights
//   npm run bench:scale [-- --only qwen2_5_0_5b|tinyllama_1_1b]
//   FEDBIOT_TORCH_PYTHON=<python with torch + transformers> (default .cache/torch-venv/bin/python)
//   FEDBIOT_NODE_LLAMA_CPP=<node-llama-cpp folder> (default .cache/llama-cpp/node_modules/node-llama-cpp)
// Last line: {"qwen2_5_0_5b": {...}, "tinyllama_1_1b": {...}}.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { TORCH_PYTHON } from './torch-python.js';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const CACHE = path.join(ROOT, '.cache', 'bench-scale');
const WORKER = path.join(ROOT, 'bench', 'scale-worker.ts');
const SHAPES = ['qwen2_5_0_5b', 'tinyllama_1_1b'];
const VOCAB: Record<string, number> = { qwen2_5_0_5b: 151936, tinyllama_1_1b: 32000 };

const onlyIdx = process.argv.indexOf('--only');
const only = onlyIdx >= 0 ? process.argv[onlyIdx + 1] : undefined;
const python = TORCH_PYTHON;
const llamaCpp =
  process.env.FEDBIOT_NODE_LLAMA_CPP ?? path.join(ROOT, '.cache', 'llama-cpp', 'node_modules', 'node-llama-cpp');

function worker(...args: string[]): Record<string, unknown> {
  const r = spawnSync(process.execPath, ['--import', 'tsx', WORKER, ...args], {
    encoding: 'utf8',
    env: { ...process.env, FEDBIOT_NODE_LLAMA_CPP: llamaCpp },
    maxBuffer: 1 << 26,
  });
  if (r.status !== 0) throw new Error(`scale-worker ${args.join(' ')} failed (${r.status}):\n${r.stderr}`);
  const line = r.stdout.trim().split('\n').pop()!;
  const out = JSON.parse(line) as Record<string, unknown>;
  console.log(`  ${args[0]}: ${line}`);
  return out;
}

function torchForward(dir: string): number | null {
  if (!fs.existsSync(python)) {
    console.log(`  torch: ${python} not found (FEDBIOT_TORCH_PYTHON), forward_ratio left out`);
    return null;
  }
  const r = spawnSync(python, [path.join(ROOT, 'bench', 'scale_torch.py'), dir], {
    encoding: 'utf8',
    maxBuffer: 1 << 26,
  });
  if (r.status !== 0) throw new Error(`scale_torch.py failed:\n${r.stderr}`);
  const line = r.stdout.trim().split('\n').pop()!;
  console.log(`  torch: ${line}`);
  return (JSON.parse(line) as { best: { tok_s: number } }).best.tok_s;
}

const round = (x: number, d = 3) => Number(x.toFixed(d));
const results: Record<string, Record<string, number | null>> = {};
for (const name of SHAPES) {
  if (only && name !== only) continue;
  console.log(`${name}:`);
  const dir = path.join(CACHE, name);
  if (!fs.existsSync(path.join(dir, 'config.json'))) worker('write', dir, name);
  const ckptMb =
    fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.safetensors'))
      .reduce((s, f) => s + fs.statSync(path.join(dir, f)).size, 0) /
    2 ** 20;
  const load = worker('load', dir);
  const fwd = worker('forward', dir);
  const torchTokS = torchForward(dir);
  const clientDir = path.join(CACHE, `${name}-client`);
  const server = worker('server', dir, clientDir);
  const client = worker('client', clientDir);
  const gen = worker('generate', dir);
  let llamaTokS: number | null = null;
  if (fs.existsSync(path.join(llamaCpp, 'dist', 'index.js'))) {
    const gguf = path.join(CACHE, `${name}-f16.gguf`);
    if (!fs.existsSync(gguf)) worker('gguf', dir, gguf);
    llamaTokS = worker('llamacpp', gguf, String(VOCAB[name])).llamacpp_tok_s as number | null;
  } else console.log(`  llama.cpp: ${llamaCpp} not found (npm run setup:llama-cpp), generate_ratio left out`);
  results[name] = {
    load_s: round(load.load_s as number, 2),
    forward_tok_s: round(fwd.forward_tok_s as number, 1),
    torch_forward_tok_s: torchTokS === null ? null : round(torchTokS, 1),
    forward_ratio: torchTokS === null ? null : round((fwd.forward_tok_s as number) / torchTokS),
    ckpt_mb: round(ckptMb, 1),
    server_rss_mb: round(server.server_rss_mb as number, 1),
    client_rss_mb: round(client.client_rss_mb as number, 1),
    align_step_s: round(server.align_step_s as number, 2),
    client_step_s: round(client.client_step_s as number, 2),
    generate_tok_s: round(gen.generate_tok_s as number, 2),
    llamacpp_tok_s: llamaTokS === null ? null : round(llamaTokS, 2),
    generate_ratio: llamaTokS === null ? null : round((gen.generate_tok_s as number) / llamaTokS),
  };
}
console.log(JSON.stringify(results));
