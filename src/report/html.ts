// The demo's (and a single run's) HTML report: ONE self-contained file — inline CSS, inline SVG
// charts, no scripts, fonts or other external resources — that opens offline.
//   writeReport(demoDir)   -> demoDir/report.html   (summaries.json + one folder per algorithm)
//   writeRunReport(runDir) -> runDir/report.html    (metrics.jsonl + summary.json of `fedbiot simulate`)
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readDemo, readMethod, readJson, type MethodData, type Metrics } from './data.js';
import { esc, lineChart, barChart, PALETTE, type LineSeries } from './svg.js';
import { fmtBytes, fmtMetric } from '../util/format.js';

export { esc } from './svg.js';

// Same number formats as the terminal tables.
export { fmtBytes, fmtMetric };

function byteUnit(max: number): { div: number; name: string } {
  if (max < 1024) return { div: 1, name: 'B' };
  if (max < 1024 ** 2) return { div: 1024, name: 'KiB' };
  if (max < 1024 ** 3) return { div: 1024 ** 2, name: 'MiB' };
  return { div: 1024 ** 3, name: 'GiB' };
}

/** What the table shows for one method: the summary where there is one, else what metrics.jsonl says. */
interface Row {
  name: string;
  base: Metrics | null;
  emulator: Metrics | null;
  adapemu: Metrics | null;
  adapfu: Metrics | null;
  stepSeconds: number | null;
  memoryMb: number | null;
  bytesPerRound: number | null;
  bytesDown: number | null;
  bytesUp: number | null;
  bytesJoin: number | null;
  trainable: number | null;
  held: number | null;
  seconds: number | null;
  alignment: string | null;
  proximal: string | null;
}

function rowOf(m: MethodData): Row {
  const s = m.summary;
  const finite = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  const rounds = m.rounds;
  const down = rounds.map((r) => r.bytesDown).filter((v): v is number => v !== null);
  const up = rounds.map((r) => r.bytesUp).filter((v): v is number => v !== null);
  const nRounds = finite(s?.rounds) ?? rounds.length;
  const total =
    finite(s?.bytes_total) ??
    (down.length || up.length ? down.reduce((a, b) => a + b, 0) + up.reduce((a, b) => a + b, 0) : null);
  return {
    name: m.name,
    base: s?.base ?? m.prepareEval?.base ?? null,
    emulator: s?.emulator ?? m.prepareEval?.emulator ?? null,
    adapemu: s?.adapemu ?? m.final?.adapemu ?? null,
    adapfu: s?.adapfu ?? m.final?.adapfu ?? null,
    stepSeconds: finite(s?.client?.mean_step_seconds),
    memoryMb: finite(s?.client?.peak_memory_mb),
    bytesPerRound: total === null ? null : Math.round(total / Math.max(1, nRounds)),
    bytesDown: finite(s?.bytes_down_total) ?? (down.length ? down.reduce((a, b) => a + b, 0) : null),
    bytesUp: finite(s?.bytes_up_total) ?? (up.length ? up.reduce((a, b) => a + b, 0) : null),
    bytesJoin: finite(s?.bytes_join_per_client),
    trainable: finite(s?.client?.trainable_params),
    held: finite(s?.client?.model_params),
    seconds: finite(s?.seconds),
    alignment:
      typeof s?.method?.align_loss === 'string'
        ? `${s.method.align_loss}${s.method.public_data === 'corpus' ? ' (corpus)' : ''}`
        : null,
    proximal:
      typeof s?.method?.proximal_rule === 'string'
        ? s.method.proximal_rule
        : (finite(s?.method?.proximal)?.toString() ?? null),
  };
}

function comparisonTable(rows: Row[]): string {
  const keys = [...new Set(rows.flatMap((r) => [...Object.keys(r.adapfu ?? {}), ...Object.keys(r.adapemu ?? {})]))];
  if (!keys.length) for (const r of rows) keys.push(...Object.keys(r.base ?? {}).filter((k) => !keys.includes(k)));
  const th = ['method', 'view', ...keys, 'client s/step', 'client MB', 'bytes / round'];
  const cells = (vals: Metrics | null) => keys.map((k) => `<td class="num">${esc(fmtMetric(vals?.[k]))}</td>`).join('');
  const dash = '<td class="num">-</td>'.repeat(3);
  const body: string[] = [];
  const withBase = rows.find((r) => r.base);
  if (withBase)
    body.push(
      `<tr class="ref" data-ref="base"><th scope="row">base model</th><td>full</td>${cells(withBase.base)}${dash}</tr>`,
    );
  const withEmu = rows.find((r) => r.emulator);
  if (withEmu)
    body.push(
      `<tr class="ref" data-ref="emulator"><th scope="row">emulator (${esc(withEmu.name)})</th><td>compressed</td>${cells(withEmu.emulator)}${dash}</tr>`,
    );
  for (const r of rows) {
    const cost = [
      r.stepSeconds === null ? '-' : r.stepSeconds.toFixed(3),
      r.memoryMb === null ? '-' : r.memoryMb.toFixed(0),
      r.bytesPerRound === null ? '-' : fmtBytes(r.bytesPerRound),
    ]
      .map((c) => `<td class="num">${esc(c)}</td>`)
      .join('');
    body.push(
      `<tr class="method" data-method="${esc(r.name)}" data-view="AdapEmu"><th scope="row" rowspan="2">${esc(r.name)}</th><td>AdapEmu</td>${cells(r.adapemu)}${cost}</tr>`,
    );
    body.push(
      `<tr class="method second" data-method="${esc(r.name)}" data-view="AdapFu"><td>AdapFu</td>${cells(r.adapfu)}${cost}</tr>`,
    );
  }
  return `<table class="comparison"><thead><tr>${th.map((h) => `<th scope="col">${esc(h)}</th>`).join('')}</tr></thead><tbody>${body.join('')}</tbody></table>`;
}

function costTable(rows: Row[]): string {
  const n = (v: number | null) => (v === null ? '-' : v.toLocaleString('en-US'));
  const b = (v: number | null) => (v === null ? '-' : fmtBytes(v));
  const body = rows.map(
    (r) =>
      `<tr data-method="${esc(r.name)}"><th scope="row">${esc(r.name)}</th>${[b(r.bytesDown), b(r.bytesUp), b(r.bytesJoin), n(r.held), n(r.trainable), r.seconds === null ? '-' : r.seconds.toFixed(1), r.alignment ?? '-', r.proximal ?? '-'].map((c) => `<td class="num">${esc(c)}</td>`).join('')}</tr>`,
  );
  const th = [
    'method',
    'down (total)',
    'up (total)',
    'join / client',
    'params held',
    'params trained',
    'run s',
    'alignment loss',
    'proximal',
  ];
  return `<table class="cost"><thead><tr>${th.map((h) => `<th scope="col">${esc(h)}</th>`).join('')}</tr></thead><tbody>${body.join('')}</tbody></table>`;
}

function figure(title: string, body: string, note?: string): string {
  return `<figure><figcaption><h3>${esc(title)}</h3></figcaption>${body}${note ? `<p class="note">${esc(note)}</p>` : ''}</figure>`;
}

function missing(title: string, id: string, text: string): string {
  return `<figure><figcaption><h3>${esc(title)}</h3></figcaption><p class="missing" data-missing="${esc(id)}">${esc(text)}</p></figure>`;
}

export function colours(methods: MethodData[]): Map<string, string> {
  return new Map(methods.map((m, i) => [m.name, PALETTE[i % PALETTE.length]!]));
}

export function trainLossChart(methods: MethodData[], col: Map<string, string>): string {
  const title = 'Train loss per round (mean over clients)';
  const series: LineSeries[] = methods
    .map((m) => ({
      name: m.name,
      color: col.get(m.name)!,
      points: m.rounds.filter((r) => r.trainLoss !== null).map((r) => ({ x: r.round + 1, y: r.trainLoss! })),
    }))
    .filter((s) => s.points.length);
  if (!series.length) return missing(title, 'train-loss', 'No per-round train loss recorded.');
  const without = methods.filter((m) => !series.some((s) => s.name === m.name)).map((m) => m.name);
  return figure(
    title,
    lineChart({ id: 'train-loss', title, xLabel: 'round', yLabel: 'train loss', series, xInteger: true }),
    without.length ? `No train loss for: ${without.join(', ')}.` : undefined,
  );
}

export function alignCharts(methods: MethodData[], col: Map<string, string>): string {
  const out: string[] = [];
  for (const [key, label] of [
    ['nmse', 'hidden-state NMSE'],
    ['kl', 'KL divergence'],
  ] as const) {
    const title = `Emulator alignment loss per round: ${label}`;
    const series: LineSeries[] = methods
      .map((m) => {
        const points = m.rounds.filter((r) => r.align).map((r) => ({ x: r.round + 1, y: r.align![key] }));
        if (m.preAlign) points.unshift({ x: 0, y: m.preAlign[key] });
        return { name: m.name, color: col.get(m.name)!, points: points.filter((p) => Number.isFinite(p.y)) };
      })
      .filter((s) => s.points.length && methods.find((m) => m.name === s.name)!.rounds.some((r) => r.align));
    if (!series.length) {
      out.push(missing(title, `align-${key}`, 'No method aligned its emulator during the rounds (only FedBiOT does).'));
      continue;
    }
    out.push(
      figure(
        title,
        lineChart({
          id: `align-${key}`,
          title,
          xLabel: 'round ("pre": pre-alignment on the server)',
          yLabel: key,
          series,
          xInteger: true,
          xTickLabel: (x) => (x === 0 ? 'pre' : String(x)),
        }),
        'Rounds without an alignment step are left out.',
      ),
    );
  }
  return out.join('');
}

export function evalCharts(methods: MethodData[], col: Map<string, string>): string {
  const title = 'Evaluation per round';
  const evaluated = methods.filter((m) => m.rounds.some((r) => r.eval));
  const notEvaluated = methods.filter((m) => !evaluated.includes(m)).map((m) => m.name);
  if (!evaluated.length) {
    return missing(
      title,
      'eval',
      `No per-round evaluation in this run (${notEvaluated.join(', ') || 'no method'}: evaluated only after the last round — see the table; set eval.every to evaluate during training).`,
    );
  }
  const keys = [
    ...new Set(
      evaluated.flatMap((m) =>
        m.rounds.flatMap((r) => [...Object.keys(r.eval?.adapfu ?? {}), ...Object.keys(r.eval?.adapemu ?? {})]),
      ),
    ),
  ];
  const out: string[] = [];
  for (const k of keys) {
    const series: LineSeries[] = [];
    for (const m of evaluated) {
      for (const view of ['adapfu', 'adapemu'] as const) {
        const points = m.rounds
          .filter((r) => r.eval?.[view]?.[k] !== undefined)
          .map((r) => ({ x: r.round + 1, y: r.eval![view]![k]! }));
        const fin = m.final?.[view]?.[k];
        if (fin !== undefined && m.final && !points.some((p) => p.x === m.final!.round + 1))
          points.push({ x: m.final.round + 1, y: fin });
        if (points.length)
          series.push({
            name: `${m.name} ${view === 'adapfu' ? 'AdapFu' : 'AdapEmu'}`,
            color: col.get(m.name)!,
            dashed: view === 'adapemu',
            points,
          });
      }
    }
    const t = `${k} per round (solid: AdapFu, dashed: AdapEmu)`;
    out.push(
      figure(
        t,
        lineChart({ id: `eval-${k}`, title: t, xLabel: 'round', yLabel: k, series, xInteger: true }),
        notEvaluated.length
          ? `Evaluated only after the last round (see the table): ${notEvaluated.join(', ')}.`
          : undefined,
      ),
    );
  }
  return out.join('');
}

/**
 * The emulator-to-full gap per round: AdapEmu NLL - AdapFu NLL wherever both were evaluated (round
 * 0: the pre-aligned emulator against the base model), for every method with an emulator. Empty
 * when no method has two such points.
 */
export function driftChart(methods: MethodData[], col: Map<string, string>): string {
  const series: LineSeries[] = [];
  for (const m of methods) {
    const emu0 = m.prepareEval?.emulator?.nll;
    const base0 = m.prepareEval?.base?.nll;
    if (emu0 === undefined) continue; // no emulator: both views are the full model
    const points: { x: number; y: number }[] = [];
    if (base0 !== undefined) points.push({ x: 0, y: emu0 - base0 });
    for (const r of m.rounds) {
      const e = r.eval?.adapemu?.nll;
      const f = r.eval?.adapfu?.nll;
      if (e !== undefined && f !== undefined) points.push({ x: r.round + 1, y: e - f });
    }
    const e = m.final?.adapemu?.nll;
    const f = m.final?.adapfu?.nll;
    if (m.final && e !== undefined && f !== undefined && !points.some((p) => p.x === m.final!.round + 1))
      points.push({ x: m.final.round + 1, y: e - f });
    if (points.length >= 2) series.push({ name: m.name, color: col.get(m.name)!, points });
  }
  if (!series.length) return '';
  const t = 'Emulator-to-full gap per round (AdapEmu NLL - AdapFu NLL; round 0: emulator - base)';
  return figure(
    t,
    lineChart({ id: 'drift', title: t, xLabel: 'round', yLabel: 'NLL gap', series, xInteger: true }),
    'How far the emulator stands from the full model for the current adapter: it grows as the adapter drifts from where the emulator was aligned. FedBiOT re-aligns every round; the others align once.',
  );
}

export function bytesChart(methods: MethodData[]): string {
  const title = 'Traffic per round (down: server to clients, up: clients to server)';
  const groups = methods
    .map((m) => ({
      label: m.name,
      bars: m.rounds
        .filter((r) => r.bytesDown !== null || r.bytesUp !== null)
        .map((r) => ({ label: `round ${r.round + 1}`, segments: [r.bytesDown ?? 0, r.bytesUp ?? 0] })),
    }))
    .filter((g) => g.bars.length);
  if (!groups.length) return missing(title, 'bytes', 'No per-round traffic recorded.');
  const max = Math.max(...groups.flatMap((g) => g.bars.map((b) => b.segments[0]! + b.segments[1]!)));
  const unit = byteUnit(max);
  return figure(
    title,
    barChart({
      id: 'bytes',
      title,
      xLabel: 'method (one bar per round)',
      yLabel: `${unit.name} per round`,
      groups,
      unit,
      stack: [
        { name: 'down', color: '#0072B2' },
        { name: 'up', color: '#E69F00' },
      ],
    }),
  );
}

export const CSS = `
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1d1d1f;background:#fafafa;margin:0;padding:24px}
main{max-width:1180px;margin:0 auto}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px;border-bottom:1px solid #ddd;padding-bottom:4px}h3{font-size:14px;margin:0 0 6px;font-weight:600}
.meta{color:#555;margin:0 0 12px}
table{border-collapse:collapse;background:#fff;margin:6px 0 10px;font-variant-numeric:tabular-nums}
th,td{padding:4px 10px;border-bottom:1px solid #e4e4e4;text-align:left;white-space:nowrap}
thead th{background:#f0f0f3;border-bottom:2px solid #ccc}
td.num{text-align:right}tr.ref{color:#555;font-style:italic}tbody tr.method:not(.second) th,tbody tr.method:not(.second) td{border-top:1px solid #bbb}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:16px}
figure{margin:0;background:#fff;border:1px solid #e2e2e2;border-radius:6px;padding:12px}
svg.chart{width:100%;height:auto;display:block;font-size:11px}
svg.chart .axis{stroke:#333;stroke-width:1}svg.chart .tick{stroke:#333}svg.chart .grid{stroke:#eee}
svg.chart text{fill:#333}svg.chart .axis-label{font-size:12px;fill:#111}
.note{color:#666;font-size:12px;margin:6px 0 0}.missing{color:#8a5a00;background:#fff8e6;border:1px dashed #e0b44c;padding:10px;margin:0}
ul.notes{color:#8a5a00}h3.sub{margin-top:16px}
`;

function page(title: string, meta: string[], sections: string[], notes: string[]): string {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title><style>${CSS}</style></head>
<body><main>
<h1>${esc(title)}</h1>
<p class="meta">${meta.map(esc).join(' · ')}</p>
${sections.join('\n')}
${notes.length ? `<h2>Notes</h2><ul class="notes">${notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>` : ''}
</main></body></html>
`;
}

function runMeta(dir: string, methods: MethodData[]): string[] {
  const meta = [`folder ${path.basename(path.resolve(dir))}`];
  for (const m of methods) {
    const cp = path.join(dir, methods.length > 1 ? m.name : '', 'config.resolved.json');
    if (methods.length > 1 && /[/\\]/.test(m.name)) continue;
    try {
      const c = readJson(cp) as { data?: { task?: unknown }; clients?: { count?: unknown }; rounds?: unknown };
      if (typeof c.data?.task === 'string') meta.push(`task ${c.data.task}`);
      if (typeof c.clients?.count === 'number') meta.push(`${c.clients.count} clients`);
      if (typeof c.rounds === 'number') meta.push(`${c.rounds} rounds`);
      break;
    } catch {
      /* no config: fine */
    }
  }
  meta.push(`generated ${new Date().toISOString().replace('T', ' ').slice(0, 16)} UTC`);
  return meta;
}

/** Client-level differential privacy spent, for the runs that had it. */
function privacyTable(methods: MethodData[]): string {
  const withDp = methods.filter((m) => m.summary?.privacy);
  if (withDp.length === 0) return '';
  const rows = withDp.map((m) => {
    const p = m.summary!.privacy!;
    return `<tr data-method="${esc(m.name)}"><td>${esc(m.name)}</td><td class="privacy-epsilon">${p.epsilon === null ? '&infin;' : p.epsilon.toFixed(3)}</td><td>${esc(String(p.delta))}</td></tr>`;
  });
  return `<h3 class="sub">Differential privacy</h3><table class="privacy"><thead><tr><th>method</th><th>epsilon</th><th>delta</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

/** The report's HTML for a list of methods (the building blocks shared by both entry points). */
export function renderReport(title: string, meta: string[], methods: MethodData[], notes: string[] = []): string {
  const rows = methods.map(rowOf);
  const col = colours(methods);
  const allNotes = [...notes, ...methods.flatMap((m) => m.notes.map((n) => `${m.name}: ${n}`))];
  const sections = [
    '<h2>Comparison</h2>',
    methods.length ? comparisonTable(rows) : '<p class="missing" data-missing="table">No results found.</p>',
    '<p class="note">AdapEmu: the trained adapter on the emulator (what clients run); AdapFu: the same adapter plugged into the full model. Bytes per round: down + up, all clients.</p>',
    methods.length ? `<h3 class="sub">Traffic and client cost</h3>${costTable(rows)}` : '',
    privacyTable(methods),
    '<h2>Training</h2>',
    `<div class="charts">${trainLossChart(methods, col)}${bytesChart(methods)}</div>`,
    '<h2>Emulator alignment</h2>',
    `<div class="charts">${alignCharts(methods, col)}${driftChart(methods, col)}</div>`,
    '<h2>Evaluation</h2>',
    `<div class="charts">${evalCharts(methods, col)}</div>`,
  ];
  return page(title, meta, sections, allNotes);
}

/** Writes DIR/report.html for a `fedbiot demo` output folder; returns its path. */
export function writeReport(dir: string): string {
  const { methods, notes } = readDemo(dir);
  const html = renderReport('FedBiOT demo report', runMeta(dir, methods), methods, notes);
  const out = path.join(dir, 'report.html');
  fs.writeFileSync(out, html);
  return out;
}

/** Writes RUNDIR/report.html for one `fedbiot simulate` output folder; returns its path. */
export function writeRunReport(runDir: string): string {
  if (!fs.existsSync(runDir) || !fs.statSync(runDir).isDirectory())
    throw new Error(`report: '${runDir}' is not a folder`);
  const m = readMethod(runDir);
  const html = renderReport(`FedBiOT run report: ${m.name}`, runMeta(runDir, [m]), [m]);
  const out = path.join(runDir, 'report.html');
  fs.writeFileSync(out, html);
  return out;
}
