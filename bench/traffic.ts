// `npm run bench:traffic [-- --model DIR] [--seeds 0,1,2] [--quick] [--variants none,q8,...] [--topk F] [--set key=value ...]`
// FedBiOT at the demo's setting with each update codec and emulator weight format: bytes per round
// (down + up, encoded bodies), join bytes per client, client peak memory (weights as held, LoRA
// state, measured working memory) and AdapFu NLL, averaged over seeds. Every variant's client holds
// the compressed model uncompressed (algorithm.emulator.weights f32) and sends f32 round traffic
// (compression.codec none) unless it sets another: the ratios compare against the uncompressed
// client. Clients train memory-lean (algorithm.local.recompute, microBatch 1; --set changes it).
// Last line: {"none": {...}, "q8": {...}, "q4": {...}, "q4_topk": {...}, "emulator_q8_0": {...},
// "emulator_q4": {...}, "qlora_q8_0": {...}}, each {"bytes_round", "bytes_join", "client_mb",
// "adapfu_nll", "adapfu_nll_seeds"} plus the ratios against none (bytes_ratio, join_ratio,
// mem_ratio, nll_rel). The JSON line is printed after each variant, with every variant so far.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfig } from '../src/config/load.js';
import { buildExperiment } from '../src/fl/experiment.js';
import { runSimulation, type Summary } from '../src/fl/simulation.js';
import { demoOverrides, defaultDemoModel } from '../src/cli/demo.js';
import { fmtBytes } from '../src/util/format.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}

const model = arg('model', defaultDemoModel() ?? '');
const seeds = arg('seeds', '0,1,2').split(',').map(Number);
const quick = process.argv.includes('--quick');
// q4_topk's upload fraction: 0.5 keeps q4 + top-k within 0.3% of none's AdapFu NLL at >= 8x fewer
// bytes (README, "bench:traffic"); --topk measures another
const topk = Number(arg('topk', '0.5'));
// In order of the targets first (none, q4_topk, emulator_q8_0, q8), so a run cut short has them.
const VARIANTS: Record<string, string[]> = {
  none: [],
  q4_topk: [`compression={codec: q4, topk: ${topk}}`],
  emulator_q8_0: ['algorithm.emulator={weights: q8_0}'],
  q8: ['compression={codec: q8}'],
  q4: ['compression={codec: q4}'],
  emulator_q4: ['algorithm.emulator={weights: q4}'],
  // QLoRA-style: the server's whole frozen model in Q8_0 too (the clients' download is already Q8_0
  // with emulator_q8_0), q8 round traffic
  qlora_q8_0: ['algorithm.full={weights: q8_0}', 'algorithm.emulator={weights: q8_0}', 'compression={codec: q8}'],
};
// --set key=value (repeatable): extra config overrides for every variant.
const extraSets = process.argv.flatMap((a, i) => (a === '--set' && process.argv[i + 1] ? [process.argv[i + 1]!] : []));
const names = arg('variants', Object.keys(VARIANTS).join(',')).split(',');

interface Row {
  bytes_round: number;
  bytes_join: number;
  client_mb: number;
  adapfu_nll: number;
  /** Each seed's AdapFu NLL, in --seeds order. */
  adapfu_nll_seeds: number[];
}
const rows: Record<string, Row> = {};
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fedbiot-bench-traffic-'));
let baseEval: Summary['base'] | undefined;
type Out = Row & { bytes_ratio?: number; join_ratio?: number; mem_ratio?: number; nll_rel?: number };
/** The JSON of every variant measured so far (printed after each, so a cut-off run still ends with one). */
function report(): void {
  const none = rows.none;
  const out: Record<string, Out> = {};
  for (const [k, r] of Object.entries(rows)) {
    out[k] = none
      ? {
          ...r,
          bytes_ratio: Number((none.bytes_round / r.bytes_round).toFixed(2)),
          join_ratio: Number((none.bytes_join / r.bytes_join).toFixed(2)),
          mem_ratio: Number((none.client_mb / r.client_mb).toFixed(2)),
          nll_rel: Number((r.adapfu_nll / none.adapfu_nll - 1).toFixed(5)),
        }
      : r;
  }
  console.log(`seeds ${seeds.join(',')}${quick ? ', quick demo settings' : ''}, q4_topk fraction ${topk}`);
  console.log(JSON.stringify(out));
}
for (const name of names) {
  const over = VARIANTS[name];
  if (!over) throw new Error(`--variants: unknown variant '${name}' (known: ${Object.keys(VARIANTS).join(', ')})`);
  const runs: Summary[] = [];
  for (const seed of seeds) {
    process.stderr.write(`${name} seed=${seed}\n`);
    const cfg = loadConfig(null, [
      ...demoOverrides('math', model || null, quick),
      'algorithm.name=fedbiot',
      'eval={every: 0, maxExamples: 40, generate: false}',
      `seed=${seed}`,
      'algorithm.emulator={weights: f32}',
      'compression={codec: none}',
      // Memory-lean clients (activation checkpointing, micro-batches of one row: the same update):
      // their working memory is a few MB, so client memory compares what the weight formats hold.
      'algorithm.local.recompute=true',
      'algorithm.local.microBatch=1',
      ...extraSets,
      ...over,
    ]);
    const s = await runSimulation(await buildExperiment(cfg), { outDir: path.join(tmp, `${name}-${seed}`), baseEval });
    if (!s) throw new Error('the run stopped');
    baseEval ??= s.base;
    runs.push(s);
  }
  const mean = (f: (s: Summary) => number) => runs.reduce((a, s) => a + f(s), 0) / runs.length;
  rows[name] = {
    bytes_round: Math.round(mean((s) => s.bytes_total / s.rounds)),
    bytes_join: Math.round(mean((s) => s.bytes_join_per_client)),
    client_mb: Number(mean((s) => s.client.peak_memory_mb ?? NaN).toFixed(1)),
    adapfu_nll: Number(mean((s) => s.adapfu.nll ?? NaN).toFixed(5)),
    adapfu_nll_seeds: runs.map((s) => Number((s.adapfu.nll ?? NaN).toFixed(5))),
  };
  const r = rows[name]!;
  console.log(
    `${name.padEnd(14)} ${fmtBytes(r.bytes_round).padStart(10)}/round  join ${fmtBytes(r.bytes_join).padStart(10)}  client ${r.client_mb.toFixed(1)} MB  AdapFu NLL ${r.adapfu_nll.toFixed(4)}`,
  );
  report();
}
fs.rmSync(tmp, { recursive: true, force: true });
