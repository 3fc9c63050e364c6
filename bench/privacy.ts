// `npm run bench:privacy [-- --model DIR] [--seeds 0,1,2] [--clip 2] [--quick] [--skip-training] [--parts dp,robust]`
// Privacy and robustness on the demo setting (FedBiOT, math task, 4 clients, 4 rounds):
//   1. AdapFu NLL with central DP at epsilon = infinity (no DP), 8 and 2 (delta 1e-5);
//   2. the cost of one secure-aggregation round at 4 and 16 clients on the demo adapter's size
//      (protocol seconds for all parties in one process, bytes per client, with one dropout);
//   3. AdapFu NLL of FedAvg, median and trimmed mean when client 0 uploads its update times -100.
// --quick uses the demo's quick setting (2 rounds of 3 local steps, 6 test examples). Each result
// is printed to stderr as it comes, so a run cut short still leaves its numbers. --parts chooses the
// training parts (dp, robust; default both), so the two can run as separate processes.
// Evaluation is NLL only, at the end. Prints Markdown tables; the last line is one JSON object.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfig } from '../src/config/load.js';
import { buildExperiment } from '../src/fl/experiment.js';
import { runSimulation, settingsFromConfig, type Summary } from '../src/fl/simulation.js';
import { demoOverrides, defaultDemoModel } from '../src/cli/demo.js';
import { ServerAlgorithm } from '../src/fedbiot/algorithms.js';
import { stateAddScaled, type LoraState } from '../src/fedbiot/lora-state.js';
import { simulateSecureRound } from '../src/secagg/round.js';
import { fillNormal, mulberry32 } from '../src/util/rng.js';
import { fmtBytes } from '../src/util/format.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}

const model = arg('model', defaultDemoModel() ?? '');
const seeds = arg('seeds', '0,1,2').split(',').map(Number);
const clip = Number(arg('clip', '2'));
const skipTraining = process.argv.includes('--skip-training');
const quick = process.argv.includes('--quick');
const parts = arg('parts', 'dp,robust').split(',');
for (const p of parts)
  if (!['dp', 'robust'].includes(p)) throw new Error(`--parts: unknown part '${p}' (known: dp, robust)`);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fedbiot-bench-privacy-'));
const base = [
  ...demoOverrides('math', model || null, quick),
  `eval={every: 0, maxExamples: ${quick ? 6 : 40}, generate: false}`,
  'algorithm.name=fedbiot',
];
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const sd = (xs: number[]) =>
  xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1));
let baseEval: Summary['base'] | undefined;

async function nll(label: string, sets: string[], poison?: { client: string; scale: number }): Promise<number[]> {
  const out: number[] = [];
  for (const seed of seeds) {
    process.stderr.write(`${label} seed=${seed}\n`);
    const cfg = loadConfig(null, [...base, ...sets, `seed=${seed}`]);
    const s = await runSimulation(await buildExperiment(cfg), {
      outDir: path.join(tmp, `${label}-${seed}`),
      baseEval,
      poison,
    });
    baseEval ??= s!.base;
    out.push(s!.adapfu.nll!);
    process.stderr.write(
      `${label} seed=${seed}: AdapFu NLL ${s!.adapfu.nll!.toFixed(4)} (base ${s!.base.nll!.toFixed(4)})${s!.privacy ? `, epsilon ${s!.privacy.epsilon}` : ''}\n`,
    );
  }
  return out;
}

// 2. Secure aggregation's cost, on updates the size of the demo adapter.
const cfg0 = loadConfig(null, [...base, 'algorithm.preAlignSteps=0']);
const exp0 = await buildExperiment(cfg0);
const adapter = new ServerAlgorithm(
  exp0.base,
  settingsFromConfig(cfg0),
  () => {
    throw new Error('no alignment here');
  },
  0,
).adapterState();
const values = [...adapter.values()].reduce((a, v) => a + v.data.length, 0);
const secure: Array<{
  clients: number;
  dropped: number;
  seconds: number;
  overhead_up_per_client: number;
  down_per_client: number;
  masked_input_bytes: number;
}> = [];
for (const clients of [4, 16]) {
  for (const dropped of [0, 1]) {
    const r = mulberry32(clients);
    const uploads = Array.from({ length: clients }, (_, i) => {
      const d: LoraState = new Map(
        [...adapter].map(([k, v]) => [
          k,
          { shape: [...v.shape], data: fillNormal(r, new Float32Array(v.data.length), 0.01) },
        ]),
      );
      return { client: `c${i}`, samples: 100, state: stateAddScaled(adapter, d) };
    });
    const t0 = performance.now();
    const res = await simulateSecureRound({
      round: 0,
      start: adapter,
      uploads,
      settings: { range: 1, threshold: 0.5 },
      uniform: false,
      dropAfterShares: dropped ? ['c1'] : [],
    });
    // The masked input is as large as a plain f32 upload; what secure aggregation adds is the rest.
    const masked = values * 4;
    secure.push({
      clients,
      dropped,
      seconds: (performance.now() - t0) / 1000,
      overhead_up_per_client: (res.bytesUp - masked * res.survivors.length) / clients,
      down_per_client: res.bytesDown / clients,
      masked_input_bytes: masked,
    });
  }
}

let dp: Array<{ epsilon: string; nll: number[] }> = [];
let robust: Array<{ rule: string; nll: number[] }> = [];
if (!skipTraining) {
  // 1. Central DP at epsilon infinity, 8, 2 (all 4 clients every round: sampling rate 1).
  if (parts.includes('dp'))
    dp = [
      { epsilon: 'inf', nll: await nll('no-dp', []) },
      {
        epsilon: '8',
        nll: await nll('eps8', [`privacy={mode: central, targetEpsilon: 8, clip: ${clip}, delta: 1e-5}`]),
      },
      {
        epsilon: '2',
        nll: await nll('eps2', [`privacy={mode: central, targetEpsilon: 2, clip: ${clip}, delta: 1e-5}`]),
      },
    ];
  // 3. One malicious client among 4.
  const evil = { client: '0', scale: -100 };
  if (parts.includes('robust'))
    robust = [
      { rule: 'fedavg', nll: await nll('fedavg-evil', [], evil) },
      { rule: 'median', nll: await nll('median-evil', ['aggregation={rule: median}'], evil) },
      { rule: 'trimmed-mean', nll: await nll('trimmed-evil', ['aggregation={rule: trimmed-mean, trim: 0.25}'], evil) },
    ];
}

const f = (xs: number[]) => `${mean(xs).toFixed(4)} ± ${sd(xs).toFixed(4)}`;
const lines = [
  `# bench:privacy (demo${quick ? ' quick' : ''} setting, FedBiOT, math, 4 clients, ${quick ? 2 : 4} rounds, seeds ${seeds.join(',')}, DP clip ${clip})`,
  '',
];
if (baseEval) lines.push(`base model NLL ${baseEval.nll!.toFixed(4)}`, '');
if (dp.length) {
  lines.push(
    '| central DP | AdapFu NLL |',
    '|---|---|',
    ...dp.map((r) => `| epsilon ${r.epsilon === 'inf' ? '∞ (no DP)' : r.epsilon} | ${f(r.nll)} |`),
    '',
  );
}
if (robust.length) {
  lines.push(
    '| one client uploads update x -100 | AdapFu NLL |',
    '|---|---|',
    ...robust.map((r) => `| ${r.rule} | ${f(r.nll)} |`),
    '',
  );
}
lines.push(
  `| secure aggregation (${values} values) | seconds / round, all parties | masked upload | extra up per client | down per client |`,
  '|---|---|---|---|---|',
  ...secure.map(
    (s) =>
      `| ${s.clients} clients${s.dropped ? ', 1 drops after sharing' : ''} | ${s.seconds.toFixed(2)} | ${fmtBytes(s.masked_input_bytes)} | ${fmtBytes(Math.round(s.overhead_up_per_client))} | ${fmtBytes(Math.round(s.down_per_client))} |`,
  ),
);
console.log(lines.join('\n'));
console.log(
  JSON.stringify({
    quick,
    seeds,
    clip,
    base_nll: baseEval?.nll ?? null,
    dp: dp.map((r) => ({ epsilon: r.epsilon, nll_mean: mean(r.nll), nll: r.nll })),
    robust: robust.map((r) => ({ rule: r.rule, nll_mean: mean(r.nll), nll: r.nll })),
    secure,
  }),
);
