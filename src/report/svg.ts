// Self-contained SVG charts (line and grouped/stacked bar) for the HTML report: no scripts, no
// external resources; every piece of text is escaped.

/** Escapes text for HTML/XML element content and attribute values. */
export function esc(s: unknown): string {
  return String(s).replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );
}

/** Okabe-Ito colours (colour-blind safe), then a few extra. */
export const PALETTE = [
  '#0072B2',
  '#D55E00',
  '#009E73',
  '#CC79A7',
  '#E69F00',
  '#56B4E9',
  '#7F7F7F',
  '#000000',
  '#8C564B',
  '#BCBD22',
];

export interface Ticks {
  lo: number;
  hi: number;
  step: number;
  values: number[];
}

function niceNum(x: number, round: boolean): number {
  const e = Math.floor(Math.log10(x));
  const f = x / 10 ** e;
  let nf: number;
  if (round) nf = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
  else nf = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
  return nf * 10 ** e;
}

/** "Nice" axis ticks covering [min, max] (about `count` of them). */
export function niceTicks(min: number, max: number, count = 5, integer = false): Ticks {
  if (!Number.isFinite(min) || !Number.isFinite(max)) {
    min = 0;
    max = 1;
  }
  if (min > max) [min, max] = [max, min];
  if (min === 0 && max === 0) max = 1;
  else if (max - min < 1e-12 * Math.max(1, Math.abs(max))) {
    const pad = Math.abs(max) > 0 ? Math.abs(max) * 0.1 : 1;
    min -= pad;
    max += pad;
  }
  let step = niceNum(niceNum(max - min, false) / Math.max(1, count - 1), true);
  if (integer) step = Math.max(1, Math.round(step));
  const lo = Math.floor(min / step) * step;
  const hi = Math.ceil(max / step) * step;
  const values: number[] = [];
  const n = Math.round((hi - lo) / step);
  for (let i = 0; i <= n; i++) values.push(Number((lo + i * step).toPrecision(12)) || 0);
  return { lo, hi, step, values };
}

/** A tick label with as many decimals as the step needs. */
export function fmtTick(v: number, step: number): string {
  if (Math.abs(v) >= 1e6 || (v !== 0 && Math.abs(v) < 1e-4)) return v.toExponential(1);
  const decimals = Math.min(6, Math.max(0, -Math.floor(Math.log10(step) + 1e-9)));
  return v.toFixed(decimals);
}

export interface Point {
  x: number;
  y: number;
}

export interface LineSeries {
  name: string;
  points: Point[];
  color: string;
  dashed?: boolean;
}

export interface ChartCommon {
  /** The data-chart attribute (e.g. "train-loss"). */
  id: string;
  /** Accessible title (an SVG <title>). */
  title: string;
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
}

export interface LineChartSpec extends ChartCommon {
  series: LineSeries[];
  /** Integer x ticks (rounds). */
  xInteger?: boolean;
  /** Custom x tick labels (e.g. 0 -> "pre"). */
  xTickLabel?: (x: number) => string;
  /** Start the y axis at zero when all values are positive. */
  yFromZero?: boolean;
}

const M = { left: 64, right: 18, top: 14, bottom: 46 };
const LEGEND_ROW = 20;

function fmtNum(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}

/** Legend items laid out in rows below the plot; returns the markup and its height. */
function legend(
  items: { name: string; color: string; dashed?: boolean; swatch: 'line' | 'box' }[],
  x0: number,
  y0: number,
  width: number,
): { svg: string; height: number } {
  const parts: string[] = [];
  let x = x0;
  let y = y0;
  for (const it of items) {
    const w = Math.min(width, 34 + it.name.length * 7 + 14);
    if (x > x0 && x + w > x0 + width) {
      x = x0;
      y += LEGEND_ROW;
    }
    const sw =
      it.swatch === 'line'
        ? `<line x1="${x}" y1="${y}" x2="${x + 24}" y2="${y}" stroke="${esc(it.color)}" stroke-width="2.5"${it.dashed ? ' stroke-dasharray="6 4"' : ''}/>`
        : `<rect x="${x + 6}" y="${y - 6}" width="12" height="12" fill="${esc(it.color)}"/>`;
    parts.push(`<g class="legend-item">${sw}<text x="${x + 30}" y="${y + 4}">${esc(it.name)}</text></g>`);
    x += w;
  }
  return { svg: `<g class="legend">${parts.join('')}</g>`, height: items.length ? y - y0 + LEGEND_ROW : 0 };
}

function frame(spec: ChartCommon, width: number, height: number, body: string): string {
  return `<svg class="chart" data-chart="${esc(spec.id)}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${esc(spec.title)}"><title>${esc(spec.title)}</title>${body}</svg>`;
}

function axes(
  spec: ChartCommon,
  plotW: number,
  plotH: number,
  xTicks: { pos: number; label: string }[],
  yTicks: { pos: number; label: string }[],
): string {
  const x0 = M.left;
  const y0 = M.top + plotH;
  const out: string[] = [];
  for (const t of yTicks) {
    out.push(`<line class="grid" x1="${x0}" y1="${t.pos.toFixed(1)}" x2="${x0 + plotW}" y2="${t.pos.toFixed(1)}"/>`);
    out.push(`<line class="tick" x1="${x0 - 5}" y1="${t.pos.toFixed(1)}" x2="${x0}" y2="${t.pos.toFixed(1)}"/>`);
    out.push(
      `<text class="tick-label" x="${x0 - 8}" y="${(t.pos + 4).toFixed(1)}" text-anchor="end">${esc(t.label)}</text>`,
    );
  }
  for (const t of xTicks) {
    out.push(`<line class="tick" x1="${t.pos.toFixed(1)}" y1="${y0}" x2="${t.pos.toFixed(1)}" y2="${y0 + 5}"/>`);
    out.push(
      `<text class="tick-label" x="${t.pos.toFixed(1)}" y="${y0 + 18}" text-anchor="middle">${esc(t.label)}</text>`,
    );
  }
  out.push(`<line class="axis" x1="${x0}" y1="${M.top}" x2="${x0}" y2="${y0}"/>`);
  out.push(`<line class="axis" x1="${x0}" y1="${y0}" x2="${x0 + plotW}" y2="${y0}"/>`);
  out.push(
    `<text class="axis-label" x="${x0 + plotW / 2}" y="${y0 + 38}" text-anchor="middle">${esc(spec.xLabel)}</text>`,
  );
  out.push(
    `<text class="axis-label" transform="translate(14 ${M.top + plotH / 2}) rotate(-90)" text-anchor="middle">${esc(spec.yLabel)}</text>`,
  );
  return out.join('');
}

/** A line chart with markers (single-point series still show). Non-finite points are dropped. */
export function lineChart(spec: LineChartSpec): string {
  const width = spec.width ?? 560;
  const plotH = (spec.height ?? 300) - M.top - M.bottom;
  const plotW = width - M.left - M.right;
  const series = spec.series.map((s) => ({
    ...s,
    points: s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y)),
  }));
  const all = series.flatMap((s) => s.points);
  const xs = all.map((p) => p.x);
  const ys = all.map((p) => p.y);
  let xMin = xs.length ? Math.min(...xs) : 0;
  let xMax = xs.length ? Math.max(...xs) : 1;
  if (xMin === xMax) {
    xMin -= 1;
    xMax += 1;
  }
  let yMin = ys.length ? Math.min(...ys) : 0;
  const yMax = ys.length ? Math.max(...ys) : 1;
  if (spec.yFromZero && yMin > 0) yMin = 0;
  const yt = niceTicks(yMin, yMax, 5);
  // x: the data's own range plus a little room so no marker sits on the y axis; with integer x
  // (rounds) and few of them, a tick per integer.
  let xTickValues: number[];
  if (spec.xInteger && xMax - xMin <= 12) {
    xTickValues = [];
    for (let v = Math.ceil(xMin); v <= xMax; v++) xTickValues.push(v);
  } else {
    xTickValues = niceTicks(xMin, xMax, 6, spec.xInteger).values.filter((v) => v >= xMin && v <= xMax);
  }
  const pad = (xMax - xMin) * 0.04;
  const xLo = xMin - pad;
  const xHi = xMax + pad;
  const sx = (x: number) => M.left + ((x - xLo) / (xHi - xLo || 1)) * plotW;
  const sy = (y: number) => M.top + plotH - ((y - yt.lo) / (yt.hi - yt.lo || 1)) * plotH;
  const xTicks = xTickValues.map((v) => ({ pos: sx(v), label: spec.xTickLabel ? spec.xTickLabel(v) : fmtNum(v) }));
  const yTicks = yt.values.map((v) => ({ pos: sy(v), label: fmtTick(v, yt.step) }));
  const lines: string[] = [];
  for (const s of series) {
    if (!s.points.length) continue;
    const pts = s.points.map((p) => `${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(' ');
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : '';
    const marks = s.points
      .map(
        (p) =>
          `<circle cx="${sx(p.x).toFixed(1)}" cy="${sy(p.y).toFixed(1)}" r="3.2" fill="${esc(s.color)}"><title>${esc(`${s.name}: ${p.x} → ${p.y.toPrecision(5)}`)}</title></circle>`,
      )
      .join('');
    lines.push(
      `<g class="series" data-series="${esc(s.name)}"><polyline points="${pts}" fill="none" stroke="${esc(s.color)}" stroke-width="2"${dash}/>${marks}</g>`,
    );
  }
  const lg = legend(
    series.map((s) => ({ name: s.name, color: s.color, dashed: s.dashed, swatch: 'line' as const })),
    M.left,
    M.top + plotH + M.bottom + 4,
    plotW,
  );
  const height = M.top + plotH + M.bottom + lg.height + 6;
  return frame(spec, width, height, axes(spec, plotW, plotH, xTicks, yTicks) + lines.join('') + lg.svg);
}

export interface BarGroup {
  /** The category label on the x axis (a method). */
  label: string;
  /** One bar per entry (e.g. per round); each bar stacks `segments` (same order as `stack`). */
  bars: { label: string; segments: number[] }[];
}

export interface BarChartSpec extends ChartCommon {
  groups: BarGroup[];
  /** The stacked parts' names and colours (e.g. down, up). */
  stack: { name: string; color: string }[];
  /** Scale of the values for the y axis: values are divided by `unit.div` and labelled `unit.name`. */
  unit?: { div: number; name: string };
}

/** Grouped, stacked bars: one group per category, one bar per entry, segments stacked. */
export function barChart(spec: BarChartSpec): string {
  const width = spec.width ?? 560;
  const plotH = (spec.height ?? 300) - M.top - M.bottom;
  const plotW = width - M.left - M.right;
  const div = spec.unit?.div ?? 1;
  const totals = spec.groups.flatMap((g) =>
    g.bars.map((b) => b.segments.reduce((a, v) => a + (Number.isFinite(v) ? v : 0), 0) / div),
  );
  const yt = niceTicks(0, totals.length ? Math.max(...totals, 0) : 1, 5);
  const sy = (y: number) => M.top + plotH - ((y - yt.lo) / (yt.hi - yt.lo || 1)) * plotH;
  const groupW = plotW / Math.max(1, spec.groups.length);
  const out: string[] = [];
  const xTicks: { pos: number; label: string }[] = [];
  spec.groups.forEach((g, gi) => {
    const gx = M.left + gi * groupW;
    xTicks.push({ pos: gx + groupW / 2, label: g.label });
    const inner = groupW * 0.8;
    const barW = Math.max(1, inner / Math.max(1, g.bars.length));
    g.bars.forEach((b, bi) => {
      const x = gx + groupW * 0.1 + bi * barW;
      let acc = 0;
      b.segments.forEach((v, si) => {
        const val = Number.isFinite(v) ? v / div : 0;
        const top = sy(acc + val);
        const h = sy(acc) - top;
        acc += val;
        const part = spec.stack[si];
        const tip = `${g.label}, ${b.label}, ${part?.name ?? si}: ${fmtNum(Number(val.toFixed(3)))}${spec.unit ? ' ' + spec.unit.name : ''}`;
        out.push(
          `<rect x="${(x + 0.5).toFixed(1)}" y="${top.toFixed(1)}" width="${Math.max(0.5, barW - 1).toFixed(1)}" height="${Math.max(0, h).toFixed(1)}" fill="${esc(part?.color ?? '#888')}"><title>${esc(tip)}</title></rect>`,
        );
      });
    });
  });
  const yTicks = yt.values.map((v) => ({ pos: sy(v), label: fmtTick(v, yt.step) }));
  const lg = legend(
    spec.stack.map((s) => ({ name: s.name, color: s.color, swatch: 'box' as const })),
    M.left,
    M.top + plotH + M.bottom + 4,
    plotW,
  );
  const height = M.top + plotH + M.bottom + lg.height + 6;
  return frame(
    spec,
    width,
    height,
    axes(spec, plotW, plotH, xTicks, yTicks) + `<g class="bars">${out.join('')}</g>` + lg.svg,
  );
}
