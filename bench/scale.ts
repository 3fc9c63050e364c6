// What one round costs at real sizes: random checkpoints in the exact shapes of Qwen2.5-0.5B (tied,
// q/k/v bias) and TinyLlama-1.1B (GQA 32/4, 22 layers), written as BF16 safetensors by our exporter
// (cached under .cache/bench-scale). Each measurement runs in a process of its own
// (bench/scale-worker.ts), so peak RSS is the server's or the client's alone:
//   load_s          loading the folder (linear weights stay BF16 in memory)
//   forward_ratio   our forward tokens/s at seq 512 / PyTorch's best (float32 or bfloat16, 1 or 2 threads),
//                   ours the better of the default f32-accumulating gemm path and FEDBIOT_GEMM=avx512bf16
//                   (where the CPU has AVX512-BF16); like for like: forward_f32_ratio (ours f32 path /
//                   PyTorch float32) and forward_bf16_ratio (ours avx512bf16 / PyTorch bfloat16), with
//                   the FLOPs per token, each side's GFLOP/s and this CPU's fp32 FMA peak (bf16's is
//                   twice that: vdpbf16ps does two multiply-adds per f32 lane)
//   server_rss_mb   full model + FedBiOT split (adapter 2, beta 0.2, LoRA r 8) + one alignment step
//   client_rss_mb   the compressed model the server wrote + one local step (seq 512, batch 1)
//   generate_ratio  our greedy tokens/s / llama.cpp's on an F16 GGUF of the same weights (ours the
//                   better of the default path and avx512bf16, whose prompt prefill runs on vdpbf16ps;
//                   decoding's matrix-vector products are the same on both)
//   npm run bench:scale [-- --only qwen2_5_0_5b|tinyllama_1_1b] [-- --parts load,forward,server,client,generate]
//   FEDBIOT_TORCH_PYTHON=<python with torch + transformers> (default .cache/torch-venv/bin/python)
//   FEDBIOT_NODE_LLAMA_CPP=<node-llama-cpp folder> (default .cache/llama-cpp/node_modules/node-llama-cpp)
// Last line: {"qwen2_5_0_5b": {...}, "tinyllama_1_1b": {...}}.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { TORCH_PYTHON } from './torch-python.js';
import { gemmPaths } from '../src/kernels/native.js';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const CACHE = path.join(ROOT, '.cache', 'bench-scale');
const WORKER = path.join(ROOT, 'bench', 'scale-worker.ts');
const SHAPES = ['qwen2_5_0_5b', 'tinyllama_1_1b'];
const VOCAB: Record<string, number> = { qwen2_5_0_5b: 151936, tinyllama_1_1b: 32000 };

const onlyIdx = process.argv.indexOf('--only');
const only = onlyIdx >= 0 ? process.argv[onlyIdx + 1] : undefined;
const partsIdx = process.argv.indexOf('--parts');
const parts = new Set(
  partsIdx >= 0 ? process.argv[partsIdx + 1]!.split(',') : ['load', 'forward', 'server', 'client', 'generate'],
);
const python = TORCH_PYTHON;
const llamaCpp =
  process.env.FEDBIOT_NODE_LLAMA_CPP ?? path.join(ROOT, '.cache', 'llama-cpp', 'node_modules', 'node-llama-cpp');

function worker(...args: string[]): Record<string, unknown> {
  return workerEnv({}, ...args);
}

function workerEnv(env: Record<string, string>, ...args: string[]): Record<string, unknown> {
  const r = spawnSync(process.execPath, ['--import', 'tsx', WORKER, ...args], {
    encoding: 'utf8',
    env: { ...process.env, FEDBIOT_NODE_LLAMA_CPP: llamaCpp, ...env },
    maxBuffer: 1 << 26,
  });
  if (r.status !== 0) throw new Error(`scale-worker ${args.join(' ')} failed (${r.status}):\n${r.stderr}`);
  const line = r.stdout.trim().split('\n').pop()!;
  const out = JSON.parse(line) as Record<string, unknown>;
  console.log(`  ${args[0]}: ${line}`);
  return out;
}

interface TorchRun {
  dtype: string;
  threads: number;
  tok_s: number;
}

function torchForward(dir: string): TorchRun[] | null {
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
  return (JSON.parse(line) as { all: TorchRun[] }).all;
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
  const load = parts.has('load') ? worker('load', dir) : null;
  let fwd: Record<string, unknown> | null = null,
    fwdBf16: Record<string, unknown> | null = null,
    torch: TorchRun[] | null = null;
  if (parts.has('forward')) {
    fwd = worker('forward', dir);
    if (gemmPaths().includes('avx512bf16')) fwdBf16 = workerEnv({ FEDBIOT_GEMM: 'avx512bf16' }, 'forward', dir);
    torch = torchForward(dir);
  }
  const clientDir = path.join(CACHE, `${name}-client`);
  const server = parts.has('server') || parts.has('client') ? worker('server', dir, clientDir) : null;
  const client = parts.has('client') ? worker('client', clientDir) : null;
  // Ours and llama.cpp alternate (ours default, llama.cpp, ours avx512bf16, llama.cpp), each side's
  // best counting, so a change in the machine's load during the runs hits both sides alike.
  const hasLlama = fs.existsSync(path.join(llamaCpp, 'dist', 'index.js'));
  const gguf = path.join(CACHE, `${name}-f16.gguf`);
  const llamaRates: number[] = [];
  const llamaRun = () => {
    if (!hasLlama) return;
    if (!fs.existsSync(gguf)) worker('gguf', dir, gguf);
    const t = worker('llamacpp', gguf, String(VOCAB[name])).llamacpp_tok_s;
    if (typeof t === 'number') llamaRates.push(t);
  };
  const gen = parts.has('generate') ? worker('generate', dir) : null;
  if (gen) llamaRun();
  // the prompt's prefill is a seq-64 forward: on avx512bf16 its bf16 gemms run on vdpbf16ps
  const genBf16 =
    gen && gemmPaths().includes('avx512bf16') ? workerEnv({ FEDBIOT_GEMM: 'avx512bf16' }, 'generate', dir) : null;
  if (genBf16) llamaRun();
  const llamaTokS = llamaRates.length ? Math.max(...llamaRates) : null;
  if (gen && !hasLlama)
    console.log(`  llama.cpp: ${llamaCpp} not found (npm run setup:llama-cpp), generate_ratio left out`);
  const num = (r: Record<string, unknown> | null, k: string, d = 3) =>
    r && typeof r[k] === 'number' ? round(r[k] as number, d) : null;
  const torchBest = (dtype?: string) => {
    const runs = (torch ?? []).filter((t) => !dtype || t.dtype === dtype);
    return runs.length ? Math.max(...runs.map((t) => t.tok_s)) : null;
  };
  const flops = (fwd?.flops_per_token as number | undefined) ?? null;
  const gflops = (tokS: number | null) => (tokS === null || flops === null ? null : round((tokS * flops) / 1e9, 1));
  const ratio = (a: number | null, b: number | null) => (a === null || b === null ? null : round(a / b));
  const oursF32 = num(fwd, 'forward_tok_s', 1),
    oursBf16 = num(fwdBf16, 'forward_tok_s', 1);
  const oursBest = oursBf16 === null ? oursF32 : Math.max(oursF32 ?? 0, oursBf16);
  const tF32 = torchBest('float32'),
    tBf16 = torchBest('bfloat16'),
    tBest = torchBest();
  const genF32 = num(gen, 'generate_tok_s', 2),
    genB = num(genBf16, 'generate_tok_s', 2);
  const genBest = genB === null ? genF32 : Math.max(genF32 ?? 0, genB);
  results[name] = {
    load_s: num(load, 'load_s', 2),
    forward_tok_s: oursBest,
    torch_forward_tok_s: tBest === null ? null : round(tBest, 1),
    forward_ratio: ratio(oursBest, tBest),
    forward_f32_tok_s: oursF32,
    torch_f32_tok_s: tF32 === null ? null : round(tF32, 1),
    forward_f32_ratio: ratio(oursF32, tF32),
    forward_bf16_tok_s: oursBf16,
    torch_bf16_tok_s: tBf16 === null ? null : round(tBf16, 1),
    forward_bf16_ratio: ratio(oursBf16, tBf16),
    forward_gflop_per_token: flops === null ? null : round(flops / 1e9, 3),
    ours_f32_gflop_s: gflops(oursF32),
    ours_bf16_gflop_s: gflops(oursBf16),
    torch_f32_gflop_s: gflops(tF32),
    torch_bf16_gflop_s: gflops(tBf16),
    fp32_peak_gflop_s: num(fwd, 'fp32_peak_gflop_s', 1),
    ckpt_mb: round(ckptMb, 1),
    server_rss_mb: num(server, 'server_rss_mb', 1),
    client_rss_mb: num(client, 'client_rss_mb', 1),
    align_step_s: num(server, 'align_step_s', 2),
    client_step_s: num(client, 'client_step_s', 2),
    generate_tok_s: genBest,
    generate_f32_tok_s: num(gen, 'generate_tok_s', 2),
    generate_bf16_tok_s: num(genBf16, 'generate_tok_s', 2),
    llamacpp_tok_s: llamaTokS === null ? null : round(llamaTokS, 2),
    generate_ratio: ratio(genBest, llamaTokS),
  };
}
console.log(JSON.stringify(results));
