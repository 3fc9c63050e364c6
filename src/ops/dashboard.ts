// The live dashboard's HTML: one page whose live part is re-rendered on the server from a
// RunSnapshot and pushed over server-sent events. Charts are the HTML report's (same SVG code, drawn
// from the metrics lines so far); the page loads nothing from anywhere else, and its only script
// (a few lines that swap the live part in) is pinned by hash in the Content-Security-Policy.
import { createHash } from 'node:crypto';
import { methodFromLines } from '../report/data.js';
import { CSS, alignCharts, bytesChart, colours, evalCharts, trainLossChart } from '../report/html.js';
import { esc, lineChart } from '../report/svg.js';
import { fmtAgo, fmtBytes, fmtDuration, fmtMetric, fmtTime } from '../util/format.js';
import type { RunSnapshot } from './run-state.js';

const EXTRA_CSS = `
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:10px;margin:10px 0 4px}
.card{background:#fff;border:1px solid #e2e2e2;border-radius:6px;padding:8px 12px}
.card .label{display:block;color:#666;font-size:12px}.card .value{display:block;font-size:20px;font-weight:600;font-variant-numeric:tabular-nums}
.card .sub{display:block;color:#666;font-size:12px}
#conn{font-weight:600}#conn.live{color:#00795a}#conn.down{color:#b00020}
td.yes{color:#00795a;font-weight:600}td.no{color:#888}
.charts{grid-template-columns:repeat(auto-fill,minmax(520px,1fr))}
.phase{display:inline-block;padding:1px 8px;border-radius:10px;background:#e8f0fb;color:#0b4f9c}
`;
const STYLE = CSS + EXTRA_CSS;

// Swaps the live part in on every "state" event; EventSource reconnects by itself.
const SCRIPT = `(function(){var live=document.getElementById('live'),conn=document.getElementById('conn');
var es=new EventSource('dashboard/events');
es.addEventListener('state',function(e){var s=JSON.parse(e.data);live.innerHTML=s.html;document.title=s.title;conn.textContent='live';conn.className='live';});
es.onerror=function(){conn.textContent='reconnecting';conn.className='down';};})();`;

const hash = (s: string) => `'sha256-${createHash('sha256').update(s, 'utf8').digest('base64')}'`;

/** The page's Content-Security-Policy: its own script and style (by hash), SSE to itself, nothing else. */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  `script-src ${hash(SCRIPT)}`,
  `style-src ${hash(STYLE)}`,
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export function dashboardTitle(s: RunSnapshot): string {
  return `fedbiot ${s.algorithm || 'run'}: ${s.completedRounds}/${s.rounds} rounds, ${s.phase}`;
}

function card(id: string, label: string, value: string, sub = '', attrs = ''): string {
  return `<div class="card" data-card="${esc(id)}"${attrs}><span class="label">${esc(label)}</span><span class="value">${esc(value)}</span>${sub ? `<span class="sub">${esc(sub)}</span>` : ''}</div>`;
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

function cards(s: RunSnapshot, now: number): string {
  const seenWindow = s.activeSeconds * 1000;
  const active = s.clients.filter((c) => c.lastSeen !== null && now - c.lastSeen <= seenWindow).length;
  const refused = Object.values(s.refusals).reduce((a, b) => a + b, 0);
  const eps = s.privacy.at(-1);
  const round =
    s.currentRound !== null
      ? `round ${s.currentRound + 1} open`
      : s.completedRounds >= s.rounds && s.rounds > 0
        ? 'all rounds done'
        : 'between rounds';
  return `<div class="cards">${[
    card(
      'rounds',
      'rounds completed',
      `${s.completedRounds} / ${s.rounds}`,
      round,
      ` data-completed-rounds="${s.completedRounds}"`,
    ),
    card('phase', 'phase', s.phase, s.deadline ? `deadline ${fmtAgo(s.deadline, now)}` : ''),
    card(
      'clients',
      s.mode === 'server' ? `clients active (${s.activeSeconds} s)` : 'clients',
      s.mode === 'server' ? `${active} / ${s.clients.length}` : String(s.clients.length),
      `${s.clients.filter((c) => c.sampled).length} sampled now`,
    ),
    card(
      'traffic',
      'traffic down / up',
      `${fmtBytes(s.traffic.down)} / ${fmtBytes(s.traffic.up)}`,
      `model downloads ${fmtBytes(s.traffic.join)}`,
    ),
    card(
      'refusals',
      'refusals',
      String(refused),
      Object.entries(s.refusals)
        .map(([k, v]) => `${k} ${v}`)
        .join(', '),
    ),
    ...(eps
      ? [
          card(
            'epsilon',
            'privacy epsilon',
            eps.epsilon.toFixed(3),
            `after round ${eps.round + 1}${eps.delta !== undefined ? `, delta ${eps.delta.toExponential(1)}` : ''}`,
          ),
        ]
      : []),
    card('elapsed', 'running for', fmtDuration((now - s.startedAt) / 1000), `updated ${fmtAgo(s.updatedAt, now)}`),
  ].join('')}</div>`;
}

function clientsTable(s: RunSnapshot, now: number): string {
  if (!s.clients.length) return '<p class="missing" data-missing="clients">No client has been heard from yet.</p>';
  const th = ['client', 'sampled now', 'last seen', 'uploads', 'refusals', 'down', 'up', 'model download'];
  const rows = s.clients.map(
    (c) =>
      `<tr data-client="${esc(c.name)}"><th scope="row">${esc(c.name)}</th><td class="${c.sampled ? 'yes' : 'no'}">${c.sampled ? 'yes' : 'no'}</td><td>${esc(fmtAgo(c.lastSeen, now))}</td>${[
        String(c.uploads),
        String(c.refusals),
        fmtBytes(c.bytesDown),
        fmtBytes(c.bytesUp),
        fmtBytes(c.bytesJoin),
      ]
        .map((v) => `<td class="num">${esc(v)}</td>`)
        .join('')}</tr>`,
  );
  return `<table class="clients"><thead><tr>${th.map((h) => `<th scope="col">${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function roundsTable(s: RunSnapshot): string {
  const rounds = s.lines.filter((l) => num(l.round) !== null && (l.round as number) >= 0 && !l.phase);
  if (!rounds.length) return '<p class="missing" data-missing="rounds">No round completed yet.</p>';
  const eps = new Map(s.privacy.map((p) => [p.round, p.epsilon]));
  const th = [
    'round',
    'uploads',
    'train loss',
    'align NMSE',
    'align KL',
    'eval NLL (AdapFu)',
    'down',
    'up',
    'time',
    ...(eps.size ? ['epsilon'] : []),
  ];
  const rows = rounds.map((l) => {
    const r = l.round as number;
    const losses = Object.values((l.train_loss ?? {}) as Record<string, unknown>)
      .map(num)
      .filter((v): v is number => v !== null);
    const align = (l.align_loss ?? null) as Record<string, unknown> | null;
    const ev = (l.eval ?? null) as { adapfu?: Record<string, unknown> } | null;
    const sampled = Array.isArray(l.sampled) ? l.sampled.length : losses.length;
    const cells = [
      `${Array.isArray(l.clients) ? l.clients.length : losses.length} / ${sampled}${l.skipped ? ' (skipped)' : ''}`,
      fmtMetric(losses.length ? losses.reduce((a, b) => a + b, 0) / losses.length : null),
      fmtMetric(num(align?.nmse ?? align?.hidden)),
      fmtMetric(num(align?.kl)),
      fmtMetric(num(ev?.adapfu?.nll)),
      num(l.bytes_down) === null ? '-' : fmtBytes(l.bytes_down as number),
      num(l.bytes_up) === null ? '-' : fmtBytes(l.bytes_up as number),
      num(l.seconds) === null ? '-' : fmtDuration(l.seconds as number),
      ...(eps.size ? [eps.has(r) ? eps.get(r)!.toFixed(3) : '-'] : []),
    ];
    return `<tr data-round="${r + 1}"><th scope="row">${r + 1}</th>${cells.map((c) => `<td class="num">${esc(c)}</td>`).join('')}</tr>`;
  });
  return `<table class="rounds"><thead><tr>${th.map((h) => `<th scope="col">${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.reverse().join('')}</tbody></table>`;
}

function privacyChart(s: RunSnapshot): string {
  if (!s.privacy.length) return '';
  const title = 'Privacy: epsilon spent after each round';
  const chart = lineChart({
    id: 'epsilon',
    title,
    xLabel: 'round',
    yLabel: 'epsilon',
    xInteger: true,
    yFromZero: true,
    series: [{ name: 'epsilon', color: '#CC79A7', points: s.privacy.map((p) => ({ x: p.round + 1, y: p.epsilon })) }],
  });
  return `<figure><figcaption><h3>${esc(title)}</h3></figcaption>${chart}</figure>`;
}

/** The part of the page that changes: cards, tables and charts. */
export function renderLive(s: RunSnapshot, now = Date.now()): string {
  const method = methodFromLines(s.algorithm || 'run', s.lines);
  const col = colours([method]);
  return [
    `<p class="meta">${esc(s.mode === 'server' ? 'deployment' : 'simulation')} · algorithm ${esc(s.algorithm)} · phase <span class="phase" data-phase="${esc(s.phase)}">${esc(s.phase)}</span> · started ${esc(fmtTime(s.startedAt))}</p>`,
    cards(s, now),
    '<h2>Clients</h2>',
    clientsTable(s, now),
    '<h2>Rounds</h2>',
    roundsTable(s),
    '<h2>Training</h2>',
    `<div class="charts">${trainLossChart([method], col)}${bytesChart([method])}${privacyChart(s)}</div>`,
    '<h2>Emulator alignment</h2>',
    `<div class="charts">${alignCharts([method], col)}</div>`,
    '<h2>Evaluation</h2>',
    `<div class="charts">${evalCharts([method], col)}</div>`,
  ].join('\n');
}

/** The whole page (first paint with the current state; the script keeps it live). */
export function renderDashboard(s: RunSnapshot, now = Date.now()): string {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,"><title>${esc(dashboardTitle(s))}</title><style>${STYLE}</style></head>
<body><main>
<h1>FedBiOT dashboard <span id="conn" class="down">connecting</span></h1>
<div id="live">${renderLive(s, now)}</div>
</main><script>${SCRIPT}</script></body></html>
`;
}
