// Renders the demo report in headless Chromium (playwright-core, system Chromium): the charts and
// the table must really be there, the page must make no network request, and a screenshot must
// come out. Skips, saying why, where /usr/bin/chromium (Debian package `chromium`) is missing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeReport, writeRunReport } from '../../src/report/html.js';
import { copyFixture } from './helpers.js';
import { CHROMIUM, CHROMIUM_ARGS, chromiumLauncher } from '../helpers/chromium.js';

test('report.html renders in headless Chromium: charts, table rows, screenshot, offline', {
  timeout: 90_000,
}, async (t) => {
  const chromium = await chromiumLauncher('the browser test');
  if (typeof chromium === 'string') {
    t.skip(chromium);
    return;
  }
  const demo = copyFixture('demo');
  const run = copyFixture('run');
  const userData = fs.mkdtempSync(path.join(os.tmpdir(), 'fedbiot-chromium-'));
  const shot = path.join(userData, 'report.png');
  const ctx = await chromium.launchPersistentContext(userData, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 900 },
    timeout: 60_000,
  });
  try {
    const page = await ctx.newPage();
    const external: string[] = [];
    const errors: string[] = [];
    await page.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith('file:')) return route.continue();
      external.push(url);
      return route.abort();
    });
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });

    const methods = (
      JSON.parse(fs.readFileSync(path.join(demo, 'summaries.json'), 'utf8')) as { algorithm: string }[]
    ).map((s) => s.algorithm);
    await page.goto(pathToFileURL(writeReport(demo)).href, { waitUntil: 'load' });
    await page.screenshot({ path: shot, fullPage: true });
    const png = fs.readFileSync(shot);
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG');
    assert.ok(png.length > 20_000, `screenshot too small to show anything: ${png.length} bytes`);

    const charts = await page.$$eval('svg.chart', (svgs) =>
      svgs.map((s) => {
        const r = s.getBoundingClientRect();
        return {
          id: s.getAttribute('data-chart'),
          marks: s.querySelectorAll('path, polyline, rect').length,
          w: r.width,
          h: r.height,
          ticks: s.querySelectorAll('.tick-label').length,
          legend: s.querySelectorAll('.legend-item').length,
        };
      }),
    );
    assert.ok(charts.length >= 3, `expected at least 3 charts, got ${charts.length}`);
    for (const c of charts) {
      assert.ok(c.marks > 0, `chart ${c.id} draws nothing`);
      assert.ok(c.w > 200 && c.h > 150, `chart ${c.id} is ${c.w}x${c.h}`);
      assert.ok(c.ticks >= 4, `chart ${c.id} has ${c.ticks} tick labels`);
      assert.ok(c.legend >= 1, `chart ${c.id} has no legend`);
    }
    assert.deepEqual(
      charts.map((c) => c.id),
      ['train-loss', 'bytes', 'align-nmse', 'align-kl', 'drift'],
    );
    const rowMethods = await page.$$eval('table.comparison tbody tr[data-method]', (trs) =>
      trs.map((tr) => tr.getAttribute('data-method')),
    );
    assert.deepEqual([...new Set(rowMethods)], methods, 'a row (AdapEmu and AdapFu) per method');
    assert.equal(rowMethods.length, methods.length * 2);
    assert.equal(await page.locator('[data-missing="eval"]').count(), 1);

    // The single-run report, with per-round evaluation.
    await page.goto(pathToFileURL(writeRunReport(run)).href, { waitUntil: 'load' });
    const runCharts = await page.$$eval('svg.chart', (svgs) => svgs.map((s) => s.getAttribute('data-chart')));
    assert.ok(runCharts.includes('eval-nll') && runCharts.length >= 5, `run charts: ${runCharts.join(', ')}`);

    assert.deepEqual(external, [], 'the report must not load anything from the network');
    assert.deepEqual(errors, []);
  } finally {
    await ctx.close();
    for (const d of [demo, run, userData]) fs.rmSync(d, { recursive: true, force: true });
  }
});
