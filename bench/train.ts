// Training-step benchmark: our engine against plain PyTorch on the same model, weights and data.
//
//   npm run bench:train -- [--steps 5] [--warmup 2] [--threads N] [--mode full|lora|both]
//                          [--no-torch] [--torch-threads N] [--torch-tune] [--profile]
//
// Reference model: vocab 4096, hidden 512, 8 layers, 8 heads (8 kv heads), ffn 1376, SwiGLU, RoPE
// (theta 10000), RMSNorm eps 1e-5, untied head; batch 4 x seq 256 of seeded random token ids.
// Two modes: full (every parameter trainable, AdamW) and lora (rank 8, alpha 16 on q,k,v,o; AdamW on
// the LoRA factors only).
//
// Each mode runs in its own child process (so peak RSS is per mode). When the PyTorch interpreter
// (FEDBIOT_TORCH_PYTHON, default the venv of `npm run setup:torch`) has
// torch, the child first exports its initial weights, LoRA factors and the batch (raw float32 /
// int32 + a JSON manifest) and bench/train_torch.py trains the same model from them, also in its
// own process. Timings are over the timed steps only: tokens/s = B*T*steps / seconds.
//
// --profile (or FEDBIOT_BENCH_PROFILE=1) wraps every kernel call with a timer and prints where a
// timed step's time goes: forward / backward / optimiser, per kernel (gemm split by shape), and the
// time spent in JavaScript between kernel calls.
//
// The last line printed is one JSON object:
//   {"full":{"ours_tok_s":..,"torch_tok_s":..,"ratio":..,"ours_rss_mb":..,"torch_rss_mb":..,"loss_rel_diff":..,
//            "torch_version":..,"torch_threads":..},"lora":{...}}
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TORCH_PYTHON } from './torch-python.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const TORCH_PY = TORCH_PYTHON;

type Mode = 'full' | 'lora';

/** The reference model (src/nn/config.ts names). */
const MODEL = {
  vocabSize: 4096,
  hiddenSize: 512,
  intermediateSize: 1376,
  numLayers: 8,
  numHeads: 8,
  numKvHeads: 8,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  tieWordEmbeddings: false,
  maxPositionEmbeddings: 2048,
};
const BATCH = 4;
const SEQ = 256;
const LORA = { r: 8, alpha: 16, dropout: 0, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] as const };
const ADAMW = { lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 };
const SEEDS = { model: 1234, lora: 4321, data: 777 };

/**
 * PyTorch's thread counts tried in every mode (pip's torch uses MKL/oneDNN with OpenMP, and which
 * count is faster depends on the machine's load): the benchmark reports the faster run. Threads
 * never exceed the cores. --torch-threads N runs only N; extra environment (never
 * OPENBLAS_CORETYPE / L2_SIZE) can be tried with --torch-tune.
 */
const TORCH_THREADS = [1, 2].filter((n) => n <= os.availableParallelism());

// ---- flags -------------------------------------------------------------------------------------

interface Flags {
  steps: number;
  warmup: number;
  threads: number | null;
  modes: Mode[];
  torch: boolean;
  torchThreads: number | null;
  torchTune: boolean;
  profile: boolean;
  child: Mode | null;
  dir: string | null;
}

function parseFlags(argv: string[]): Flags {
  const f: Flags = {
    steps: 5,
    warmup: 2,
    threads: null,
    modes: ['full', 'lora'],
    torch: true,
    torchThreads: null,
    torchTune: false,
    profile: process.env.FEDBIOT_BENCH_PROFILE === '1',
    child: null,
    dir: null,
  };
  const num = (name: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`bench:train: ${name} needs an integer >= ${min}, got ${v}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [key, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const val = () => inline ?? argv[++i];
    switch (key) {
      case '--steps':
        f.steps = num(key, val(), 1);
        break;
      case '--warmup':
        f.warmup = num(key, val(), 0);
        break;
      case '--threads':
        f.threads = num(key, val(), 1);
        break;
      case '--torch-threads':
        f.torchThreads = num(key, val(), 1);
        break;
      case '--mode': {
        const m = val();
        if (m === 'both') f.modes = ['full', 'lora'];
        else if (m === 'full' || m === 'lora') f.modes = [m];
        else throw new Error(`bench:train: --mode must be full, lora or both, got ${m}`);
        break;
      }
      case '--no-torch':
        f.torch = false;
        break;
      case '--torch-tune':
        f.torchTune = true;
        break;
      case '--profile':
        f.profile = true;
        break;
      case '--child': {
        const m = val();
        if (m !== 'full' && m !== 'lora') throw new Error(`bench:train: --child needs full or lora, got ${m}`);
        f.child = m;
        break;
      }
      case '--dir':
        f.dir = val() ?? null;
        break;
      case '--help':
      case '-h':
        console.log(
          'npm run bench:train -- [--steps 5] [--warmup 2] [--threads N] [--mode full|lora|both] [--no-torch] [--torch-threads N] [--torch-tune] [--profile]',
        );
        process.exit(0);
        break;
      default:
        throw new Error(`bench:train: unknown flag ${a}`);
    }
  }
  return f;
}

// ---- child: one mode of our engine ---------------------------------------------------------------

interface ChildResult {
  mode: Mode;
  steps: number;
  warmup: number;
  kernels: string;
  threads: number;
  losses: number[];
  stepMs: number[];
  /** CPU time of the process per step (all threads). */
  stepCpuMs: number[];
  fwdMs: number[];
  bwdMs: number[];
  optMs: number[];
  timedSeconds: number;
  tokS: number;
  rssMb: number;
  trainable: number;
  profile: ProfileEntry[] | null;
}

interface ProfileEntry {
  phase: string;
  op: string;
  calls: number;
  ms: number;
  /** CPU time of the whole process (all threads) during the calls: robust to other processes' load. */
  cpuMs: number;
}

type Phase = 'fwd' | 'bwd' | 'opt' | 'other';

/** Wraps every kernel method of the engine's kernel object with a timer keyed by phase and op. */
function installProfiler(
  k: object,
  getPhase: () => Phase,
): { table: Map<string, ProfileEntry>; active: { on: boolean } } {
  const table = new Map<string, ProfileEntry>();
  const active = { on: false };
  const dimName = (n: number): string => {
    const names: Record<number, string> = {
      [BATCH * SEQ]: 'BT',
      [MODEL.hiddenSize]: 'd',
      [MODEL.intermediateSize]: 'ffn',
      [MODEL.vocabSize]: 'V',
      [LORA.r]: 'r',
    };
    return names[n] ?? String(n);
  };
  const target = k as Record<string, unknown>;
  let proto: object | null = k;
  const names = new Set<string>();
  while (proto && proto !== Object.prototype) {
    for (const n of Object.getOwnPropertyNames(proto)) names.add(n);
    proto = Object.getPrototypeOf(proto) as object | null;
  }
  for (const name of names) {
    if (name === 'constructor' || name === 'setThreads' || name === 'getThreads') continue;
    const fn = target[name];
    if (typeof fn !== 'function') continue;
    const orig = fn as (...args: unknown[]) => unknown;
    const wrapped = function (this: unknown, ...args: unknown[]): unknown {
      if (!active.on) return orig.apply(k, args);
      let op = name;
      if (name === 'gemm') {
        const p = args[0] as {
          transA: boolean;
          transB: boolean;
          M: number;
          N: number;
          K: number;
          batch: number;
          beta: number;
        };
        op = `gemm ${p.transA ? 'T' : 'N'}${p.transB ? 'T' : 'N'} ${dimName(p.M)}x${dimName(p.N)}x${dimName(p.K)}${p.batch > 1 ? ` *${p.batch}` : ''}${p.beta !== 0 ? ' (+=)' : ''}`;
      }
      if (name === 'weightGroupGemm') {
        const p = args[0] as { transW: boolean; M: number; K: number; parts: { N: number }[] };
        const ns = p.parts.map((q) => dimName(q.N)).join('+');
        const kind = p.parts.length > 1 ? 'fused linear' : 'linear';
        op = p.transW
          ? `${kind} ${dimName(p.M)}x(${ns})x${dimName(p.K)}`
          : `${kind} dx ${dimName(p.M)}x${dimName(p.K)}x(${ns}) (+=)`;
      }
      const key = `${getPhase()}|${op}`;
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const r = orig.apply(k, args);
      const dt = performance.now() - t0;
      const c1 = process.cpuUsage(c0);
      let e = table.get(key);
      if (!e) table.set(key, (e = { phase: getPhase(), op, calls: 0, ms: 0, cpuMs: 0 }));
      e.calls++;
      e.ms += dt;
      e.cpuMs += (c1.user + c1.system) / 1000;
      return r;
    };
    try {
      target[name] = wrapped;
    } catch {
      throw new Error(`bench:train --profile: cannot wrap kernel '${name}' (the kernel object is frozen)`);
    }
    if (target[name] !== wrapped)
      throw new Error(`bench:train --profile: cannot wrap kernel '${name}' (read-only property)`);
  }
  return { table, active };
}

async function runChild(f: Flags, mode: Mode): Promise<void> {
  if (f.threads !== null) process.env.FEDBIOT_THREADS = String(f.threads);
  const engine = await import('../src/tensor/engine.js');
  const { tape } = await import('../src/tensor/tensor.js');
  const { makeConfig } = await import('../src/nn/config.js');
  const { LlamaModel } = await import('../src/nn/llama.js');
  const { lmLoss } = await import('../src/nn/lm.js');
  const { Optimizer } = await import('../src/nn/optim.js');
  const { mulberry32 } = await import('../src/util/rng.js');

  const k = engine.kernels();
  if (f.threads !== null) engine.setThreads(f.threads);
  let phase: Phase = 'other';
  const prof = f.profile ? installProfiler(k, () => phase) : null;

  const config = makeConfig(MODEL);
  const model = LlamaModel.random(config, SEEDS.model);
  if (mode === 'lora') {
    model.attachLora({ r: LORA.r, alpha: LORA.alpha, dropout: LORA.dropout, targets: LORA.targets }, SEEDS.lora);
  } else {
    for (const t of model.baseTensors().values()) t.requiresGrad = true;
  }
  const params = mode === 'lora' ? model.loraParams() : [...model.baseTensors().values()];
  const opt = new Optimizer(params, { kind: 'adamw', ...ADAMW });
  const trainable = opt.params.reduce((s, p) => s + p.size, 0);

  const rand = mulberry32(SEEDS.data);
  const ids = new Int32Array(BATCH * SEQ);
  for (let i = 0; i < ids.length; i++) ids[i] = Math.floor(rand() * MODEL.vocabSize);
  const batch = { B: BATCH, T: SEQ, ids, labels: ids, attention: new Uint8Array(ids.length).fill(1) };

  if (f.dir) exportForTorch(f.dir, mode, model, ids, f);

  const losses: number[] = [];
  const stepMs: number[] = [];
  const stepCpuMs: number[] = [];
  const fwdMs: number[] = [];
  const bwdMs: number[] = [];
  const optMs: number[] = [];
  const total = f.warmup + f.steps;
  for (let s = 0; s < total; s++) {
    if (prof) prof.active.on = s >= f.warmup;
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    phase = 'fwd';
    const loss = lmLoss(model, batch);
    const t1 = performance.now();
    phase = 'bwd';
    tape.backward(loss);
    const t2 = performance.now();
    phase = 'opt';
    opt.step();
    opt.zeroGrad();
    losses.push(loss.item());
    tape.reset();
    phase = 'other';
    const t3 = performance.now();
    stepMs.push(t3 - t0);
    const c = process.cpuUsage(c0);
    stepCpuMs.push((c.user + c.system) / 1000);
    fwdMs.push(t1 - t0);
    bwdMs.push(t2 - t1);
    optMs.push(t3 - t2);
    process.stderr.write(
      `  [ours ${mode}] step ${s + 1}/${total}${s < f.warmup ? ' (warm-up)' : ''}: loss ${losses[s]!.toFixed(6)}, ${(t3 - t0).toFixed(0)} ms (fwd ${(t1 - t0).toFixed(0)}, bwd ${(t2 - t1).toFixed(0)}, opt ${(t3 - t2).toFixed(0)})\n`,
    );
  }
  const timed = stepMs.slice(f.warmup);
  const timedSeconds = timed.reduce((a, b) => a + b, 0) / 1000;
  const res: ChildResult = {
    mode,
    steps: f.steps,
    warmup: f.warmup,
    kernels: k.name,
    threads: engine.getThreads(),
    losses,
    stepMs,
    stepCpuMs,
    fwdMs,
    bwdMs,
    optMs,
    timedSeconds,
    tokS: (BATCH * SEQ * f.steps) / timedSeconds,
    rssMb: peakRssMb(),
    trainable,
    profile: prof
      ? [...prof.table.values()].map((e) => ({
          ...e,
          ms: e.ms / f.steps,
          cpuMs: e.cpuMs / f.steps,
          calls: e.calls / f.steps,
        }))
      : null,
  };
  console.log(JSON.stringify(res));
}

/** Peak resident set of this process in MB (VmHWM, else resourceUsage().maxRSS). */
function peakRssMb(): number {
  try {
    const m = /VmHWM:\s+(\d+)\s+kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) / 1024;
  } catch {
    // not Linux: fall through
  }
  return process.resourceUsage().maxRSS / 1024;
}

/**
 * Writes weights.bin (every tensor as raw little-endian float32, back to back), ids.bin (int32) and
 * manifest.json (config, hyper-parameters, and each tensor's name, shape, offset and trainability).
 */
function exportForTorch(
  dir: string,
  mode: Mode,
  model: import('../src/nn/llama.js').LlamaModel,
  ids: Int32Array,
  f: Flags,
): void {
  if (os.endianness() !== 'LE') throw new Error('bench:train: the export format assumes a little-endian machine');
  fs.mkdirSync(dir, { recursive: true });
  const tensors: { name: string; shape: number[]; offset: number; trainable: boolean }[] = [];
  const fd = fs.openSync(path.join(dir, 'weights.bin'), 'w');
  let offset = 0;
  const write = (name: string, t: { data: Float32Array; shape: readonly number[]; requiresGrad: boolean }) => {
    if (!(t.data instanceof Float32Array)) throw new Error(`bench:train: tensor ${name} is not float32`);
    fs.writeSync(fd, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    tensors.push({ name, shape: [...t.shape], offset, trainable: t.requiresGrad });
    offset += t.data.byteLength;
  };
  for (const [name, t] of model.baseTensors()) write(name, t);
  for (const t of model.loraParams()) write(t.name, t);
  fs.closeSync(fd);
  fs.writeFileSync(path.join(dir, 'ids.bin'), new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength));
  const manifest = {
    mode,
    config: model.config,
    B: BATCH,
    T: SEQ,
    lora: mode === 'lora' ? { r: LORA.r, alpha: LORA.alpha, targets: LORA.targets } : null,
    adamw: ADAMW,
    steps: f.steps,
    warmup: f.warmup,
    tensors,
  };
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest, null, 1));
}

// ---- parent: orchestration -----------------------------------------------------------------------

interface TorchResult {
  losses: number[];
  step_ms: number[];
  fwd_ms: number[];
  bwd_ms: number[];
  opt_ms: number[];
  timed_seconds: number;
  tok_s: number;
  rss_mb: number;
  threads: number;
  env: Record<string, string | null>;
  torch_version: string;
}

function lastJsonLine<T>(stdout: string, who: string): T {
  const lines = stdout.trim().split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const l = lines[i]!.trim();
    if (l.startsWith('{')) return JSON.parse(l) as T;
  }
  throw new Error(`bench:train: ${who} printed no JSON result`);
}

function torchAvailable(): boolean {
  if (!fs.existsSync(TORCH_PY)) return false;
  const r = spawnSync(TORCH_PY, ['-c', 'import torch, numpy'], { stdio: 'ignore', timeout: 120_000 });
  return r.status === 0;
}

function runOurs(f: Flags, mode: Mode, dir: string | null): ChildResult {
  const args = [
    '--import',
    'tsx',
    path.join(HERE, 'train.ts'),
    '--child',
    mode,
    '--steps',
    String(f.steps),
    '--warmup',
    String(f.warmup),
  ];
  if (f.threads !== null) args.push('--threads', String(f.threads));
  if (f.profile) args.push('--profile');
  if (dir) args.push('--dir', dir);
  const r = spawnSync(process.execPath, args, {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0)
    throw new Error(`bench:train: our ${mode} run failed (exit ${r.status ?? r.signal})\n${r.stdout}`);
  return lastJsonLine<ChildResult>(r.stdout, `our ${mode} run`);
}

function runTorch(
  dir: string,
  threads: number,
  env: Record<string, string>,
  steps?: { steps: number; warmup: number },
): TorchResult {
  const args = [path.join(HERE, 'train_torch.py'), dir, '--threads', String(threads)];
  if (steps) args.push('--steps', String(steps.steps), '--warmup', String(steps.warmup));
  for (const k of Object.keys(env)) {
    if (k === 'OPENBLAS_CORETYPE' || k === 'OPENBLAS_L2_SIZE') throw new Error(`bench:train: refusing to change ${k}`);
  }
  const r = spawnSync(TORCH_PY, args, {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`bench:train: PyTorch run failed (exit ${r.status ?? r.signal})\n${r.stdout}`);
  return lastJsonLine<TorchResult>(r.stdout, 'PyTorch run');
}

/** Tries PyTorch thread settings on the full-model step and returns the fastest. */
function tuneTorch(dir: string): { threads: number; env: Record<string, string> } {
  const candidates: { threads: number; env: Record<string, string> }[] = [
    { threads: 2, env: {} },
    { threads: 1, env: {} },
    { threads: 2, env: { OMP_NUM_THREADS: '2', OPENBLAS_NUM_THREADS: '1' } },
    { threads: 1, env: { OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '2' } },
    { threads: 2, env: { OMP_NUM_THREADS: '2', OPENBLAS_NUM_THREADS: '2' } },
    { threads: 1, env: { OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1' } },
  ];
  let best = candidates[0]!;
  let bestTok = 0;
  for (const c of candidates) {
    const r = runTorch(dir, c.threads, c.env, { steps: 3, warmup: 1 });
    const label = `set_num_threads(${c.threads}) ${
      Object.entries(c.env)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ') || '(env as is)'
    }`;
    console.log(
      `  torch tune: ${label}: ${r.tok_s.toFixed(0)} tok/s (${(r.timed_seconds / 3).toFixed(2)} s/step), rss ${r.rss_mb.toFixed(0)} MB`,
    );
    if (r.tok_s > bestTok) {
      bestTok = r.tok_s;
      best = c;
    }
  }
  return best;
}

const round = (x: number | null, d: number): number | null =>
  x === null || !Number.isFinite(x) ? x : Number(x.toFixed(d));

function printProfile(mode: Mode, r: ChildResult): void {
  if (!r.profile) return;
  const n = r.steps;
  const phaseWall: Record<string, number> = {
    fwd: mean(r.fwdMs.slice(-n)),
    bwd: mean(r.bwdMs.slice(-n)),
    opt: mean(r.optMs.slice(-n)),
  };
  const stepWall = mean(r.stepMs.slice(-n));
  console.log(`\n  profile (${mode}, mean of ${n} timed steps, ${r.threads} threads): step ${stepWall.toFixed(1)} ms`);
  for (const ph of ['fwd', 'bwd', 'opt'] as const) {
    const entries = r.profile.filter((e) => e.phase === ph).sort((a, b) => b.ms - a.ms);
    const kern = entries.reduce((s, e) => s + e.ms, 0);
    console.log(
      `  ${ph}: ${phaseWall[ph]!.toFixed(1)} ms (${((100 * phaseWall[ph]!) / stepWall).toFixed(1)}% of step); kernels ${kern.toFixed(1)} ms, JS/other ${(phaseWall[ph]! - kern).toFixed(1)} ms`,
    );
    for (const e of entries) {
      if (e.ms < 0.05) continue;
      console.log(
        `    ${e.op.padEnd(34)} ${e.ms.toFixed(1).padStart(8)} ms ${((100 * e.ms) / stepWall).toFixed(1).padStart(5)}%  ${String(Math.round(e.calls)).padStart(4)} calls  CPU ${e.cpuMs.toFixed(1).padStart(7)} ms`,
      );
    }
  }
  // Totals by kernel kind across phases.
  const byKind = new Map<string, number>();
  for (const e of r.profile) {
    const kind = `${e.phase}:${e.op.startsWith('gemm') ? 'gemm' : e.op}`;
    byKind.set(kind, (byKind.get(kind) ?? 0) + e.ms);
  }
  const kinds = [...byKind.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12);
  console.log(
    `  top kinds: ${kinds.map(([kd, ms]) => `${kd} ${ms.toFixed(0)} ms (${((100 * ms) / stepWall).toFixed(0)}%)`).join(', ')}`,
  );
  // Where a step's CPU time goes, by category: CPU time (all our threads) rather than wall time,
  // so that other processes' load on a shared machine inflates the shares less.
  const stepCpu = mean(r.stepCpuMs.slice(-n));
  const byCat = new Map<string, number>();
  for (const e of r.profile) byCat.set(category(e.op), (byCat.get(category(e.op)) ?? 0) + e.cpuMs);
  const kernCpu = [...byCat.values()].reduce((a, b) => a + b, 0);
  byCat.set('JavaScript between kernels', stepCpu - kernCpu);
  const cats = [...byCat.entries()].sort((a, b) => b[1] - a[1]);
  console.log(`  breakdown by CPU time (step ${stepCpu.toFixed(0)} ms of CPU on ${r.threads} threads):`);
  for (const [c, ms] of cats)
    console.log(
      `    ${c.padEnd(28)} ${ms.toFixed(1).padStart(8)} ms ${((100 * ms) / stepCpu).toFixed(1).padStart(5)}%`,
    );
}

/** The category of a profiled kernel call, for the breakdown. */
function category(op: string): string {
  if (/^(gemm|linear|fused linear)/.test(op)) return 'gemm (linear layers)';
  if (op.startsWith('attention')) return 'attention';
  if (op.startsWith('rmsnorm')) return 'norms';
  if (op.startsWith('rope')) return 'rope';
  if (/^(add|mul|axpy|scale|fill|swiglu|silu)/.test(op)) return 'elementwise (residual, SwiGLU)';
  if (/^(crossEntropy|kl|nmse|softmax|logSoftmax)/.test(op)) return 'loss';
  if (op.startsWith('embedding')) return 'embedding';
  if (/^(adamw|sgd|sumSquares)/.test(op)) return 'optimizer';
  return op;
}

/** Timings on a shared 2-core machine are only meaningful when nothing else runs: say so. */
function warnIfBusy(): void {
  const load = os.loadavg()[0]!;
  if (load > 1.5)
    console.log(
      `  note: 1-minute load average is ${load.toFixed(2)} on ${os.cpus().length} cores: other processes compete, timings are noisy`,
    );
}

function mean(a: number[]): number {
  return a.length ? a.reduce((s, x) => s + x, 0) / a.length : NaN;
}

async function main(): Promise<void> {
  const f = parseFlags(process.argv.slice(2));
  if (f.child) {
    await runChild(f, f.child);
    return;
  }
  const haveTorch = f.torch && torchAvailable();
  if (f.torch && !haveTorch)
    console.log(
      `PyTorch is not available (${TORCH_PY} -c "import torch, numpy" failed; run npm run setup:torch or set FEDBIOT_TORCH_PYTHON): torch fields are null`,
    );
  let torchSettings = (f.torchThreads !== null ? [f.torchThreads] : TORCH_THREADS).map((threads) => ({
    threads,
    env: {} as Record<string, string>,
  }));
  const out: Record<string, Record<string, number | string | null>> = {};
  const tmpRoot = haveTorch ? fs.mkdtempSync(path.join(os.tmpdir(), 'fedbiot-bench-')) : null;
  try {
    for (const mode of f.modes) {
      const dir = tmpRoot ? path.join(tmpRoot, mode) : null;
      console.log(`\n== ${mode}: B=${BATCH} T=${SEQ}, ${f.warmup} warm-up + ${f.steps} timed steps`);
      warnIfBusy();
      const ours = runOurs(f, mode, dir);
      console.log(
        `ours  (${ours.kernels} kernels, ${ours.threads} threads, ${ours.trainable} trainable): ${ours.tokS.toFixed(0)} tok/s, ${(ours.timedSeconds / f.steps).toFixed(3)} s/step, peak RSS ${ours.rssMb.toFixed(0)} MB`,
      );
      console.log(
        `      losses ${ours.losses.map((l) => l.toFixed(6)).join(' ')}; fastest timed step ${Math.min(...ours.stepMs.slice(f.warmup)).toFixed(0)} ms`,
      );
      printProfile(mode, ours);
      let tr: TorchResult | null = null;
      if (dir) {
        if (f.torchTune && f.torchThreads === null) {
          torchSettings = [tuneTorch(dir)];
          f.torchTune = false;
        }
        for (const setting of torchSettings) {
          const run = runTorch(dir, setting.threads, setting.env);
          console.log(`torch set_num_threads(${run.threads}): ${run.tok_s.toFixed(0)} tok/s`);
          if (!tr || run.tok_s > tr.tok_s) tr = run;
        }
        tr = tr!;
        const envs = Object.entries(tr.env)
          .map(([k, v]) => `${k}=${v ?? 'unset'}`)
          .join(' ');
        console.log(
          `torch (${tr.torch_version}, set_num_threads(${tr.threads}), ${envs}): ${tr.tok_s.toFixed(0)} tok/s, ${(tr.timed_seconds / f.steps).toFixed(3)} s/step, peak RSS ${tr.rss_mb.toFixed(0)} MB`,
        );
        console.log(
          `      losses ${tr.losses.map((l) => l.toFixed(6)).join(' ')}; fastest timed step ${Math.min(...tr.step_ms.slice(f.warmup)).toFixed(0)} ms`,
        );
        console.log(
          `      step ms fwd ${mean(tr.fwd_ms.slice(f.warmup)).toFixed(0)} / bwd ${mean(tr.bwd_ms.slice(f.warmup)).toFixed(0)} / opt ${mean(tr.opt_ms.slice(f.warmup)).toFixed(0)}  (ours ${mean(ours.fwdMs.slice(f.warmup)).toFixed(0)} / ${mean(ours.bwdMs.slice(f.warmup)).toFixed(0)} / ${mean(ours.optMs.slice(f.warmup)).toFixed(0)})`,
        );
        fs.rmSync(dir, { recursive: true, force: true });
      }
      let rel: number | null = null;
      if (tr) {
        rel = 0;
        for (let i = 0; i < ours.losses.length; i++) {
          const a = ours.losses[i]!;
          const b = tr.losses[i]!;
          rel = Math.max(rel, Math.abs(a - b) / Math.max(Math.abs(b), 1e-12));
        }
        console.log(
          `      ratio ours/torch ${(ours.tokS / tr.tok_s).toFixed(3)}, loss max rel diff ${rel.toExponential(3)}${rel < 1e-3 ? '' : '  (ABOVE 1e-3)'}`,
        );
      }
      out[mode] = {
        ours_tok_s: round(ours.tokS, 1),
        torch_tok_s: tr ? round(tr.tok_s, 1) : null,
        ratio: tr ? round(ours.tokS / tr.tok_s, 4) : null,
        ours_rss_mb: round(ours.rssMb, 1),
        torch_rss_mb: tr ? round(tr.rss_mb, 1) : null,
        loss_rel_diff: rel === null ? null : Number(rel.toPrecision(4)),
        torch_version: tr ? tr.torch_version : null,
        torch_threads: tr ? tr.threads : null,
      };
    }
  } finally {
    if (tmpRoot) fs.rmSync(tmpRoot, { recursive: true, force: true });
  }
  console.log(JSON.stringify(out));
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : e);
  process.exit(1);
});
