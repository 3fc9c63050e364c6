import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeReport, writeRunReport, esc, fmtMetric } from '../../src/report/html.js';
import { niceTicks } from '../../src/report/svg.js';
import { FIXTURES, copyFixture } from './helpers.js';

const stripTags = (s: string) =>
  s
    .replace(/<[^>]*>/g, '')
    .replace(/&amp;/g, '&')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .trim();

/** The cells (th and td, text only) of the table rows matching an opening-tag regex. */
function rowCells(html: string, open: RegExp): string[][] {
  const rows: string[][] = [];
  for (const m of html.matchAll(/<tr[^>]*>[\s\S]*?<\/tr>/g)) {
    const tr = m[0];
    if (!open.test(tr.slice(0, tr.indexOf('>') + 1))) continue;
    rows.push([...tr.matchAll(/<t[hd][^>]*>([\s\S]*?)<\/t[hd]>/g)].map((c) => stripTags(c[1]!)));
  }
  return rows;
}

function chartIds(html: string): string[] {
  return [...html.matchAll(/<svg class="chart" data-chart="([^"]*)"/g)].map((m) => m[1]!);
}

function assertSelfContained(html: string): void {
  assert.ok(!/<script/i.test(html), 'no scripts');
  assert.ok(!/\b(src|href)\s*=/i.test(html), 'no src/href attributes');
  assert.ok(!/url\(|@import|<link/i.test(html), 'no external CSS');
  const urls = [...html.matchAll(/https?:\/\/[^\s"'<)]+/g)]
    .map((m) => m[0])
    .filter((u) => u !== 'http://www.w3.org/2000/svg');
  assert.deepEqual(urls, [], 'no external URLs');
}

test('demo report: the comparison table matches table.txt, charts present, eval gap said', () => {
  const dir = copyFixture('demo');
  try {
    const out = writeReport(dir);
    assert.equal(out, path.join(dir, 'report.html'));
    const html = fs.readFileSync(out, 'utf8');
    assert.ok(html.startsWith('<!DOCTYPE html>'));
    assertSelfContained(html);

    // Every row of the text table appears, cell for cell, in the HTML table.
    const lines = fs.readFileSync(path.join(dir, 'table.txt'), 'utf8').trim().split('\n');
    const header = lines[0]!.trim().split(/\s{2,}/);
    const htmlHeader = rowCells(html, /<tr>/)[0]!;
    assert.deepEqual(htmlHeader.slice(0, header.length - 1), header.slice(0, -1));
    const methods = new Set<string>();
    for (const line of lines.slice(2)) {
      const cells = line.trim().split(/\s{2,}/);
      const [name, view] = cells as [string, string];
      let got: string[];
      if (name === 'base model') got = rowCells(html, /data-ref="base"/)[0]!;
      else if (name.startsWith('emulator')) got = rowCells(html, /data-ref="emulator"/)[0]!;
      else {
        methods.add(name);
        const r = rowCells(html, new RegExp(`data-method="${name}" data-view="${view}"`));
        assert.equal(r.length, 1, `${name} ${view}`);
        got = view === 'AdapFu' ? [name, ...r[0]!] : r[0]!; // the method cell spans both rows
      }
      assert.deepEqual(got, cells, `row '${line}'`);
    }
    assert.deepEqual([...methods], ['fedbiot', 'fedot', 'offsite', 'fedavg-full', 'local']);

    assert.deepEqual(chartIds(html), ['train-loss', 'bytes', 'align-nmse', 'align-kl', 'drift']);
    // The emulator-to-full gap: every method with an emulator (fedavg-full has none), before and after.
    const drift = html.slice(
      html.indexOf('data-chart="drift"'),
      html.indexOf('</svg>', html.indexOf('data-chart="drift"')),
    );
    assert.equal((drift.match(/<polyline /g) ?? []).length, 4);
    assert.ok(!drift.includes('fedavg-full'));
    // Train loss: one line per method, two rounds each.
    const train = html.slice(
      html.indexOf('data-chart="train-loss"'),
      html.indexOf('</svg>', html.indexOf('data-chart="train-loss"')),
    );
    assert.equal((train.match(/<polyline /g) ?? []).length, 5);
    assert.equal((train.match(/<circle /g) ?? []).length, 10);
    // Traffic: 5 methods x 2 rounds x (down, up).
    const bytes = html.slice(
      html.indexOf('data-chart="bytes"'),
      html.indexOf('</svg>', html.indexOf('data-chart="bytes"')),
    );
    assert.equal((bytes.match(/<rect x="[\d.]+" y="[\d.]+" width/g) ?? []).length, 5 * 2 * 2 + 2 /* legend */);
    assert.match(bytes, /KiB per round/);
    // Axis ticks and labels, a legend.
    assert.match(train, /class="tick-label"/);
    assert.match(train, /class="axis-label"[^>]*>round</);
    assert.match(train, /class="legend"/);
    // No per-round eval in the quick demo: said in place of the chart.
    assert.match(html, /data-missing="eval"[^>]*>No per-round evaluation/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('run report: per-round eval charts, alignment and traffic for one simulate folder', () => {
  const dir = copyFixture('run');
  try {
    const html = fs.readFileSync(writeRunReport(dir), 'utf8');
    assertSelfContained(html);
    assert.deepEqual(chartIds(html), [
      'train-loss',
      'bytes',
      'align-nmse',
      'align-kl',
      'drift',
      'eval-nll',
      'eval-ppl',
      'eval-accuracy',
    ]);
    const summary = JSON.parse(fs.readFileSync(path.join(dir, 'summary.json'), 'utf8'));
    const fu = rowCells(html, /data-view="AdapFu"/)[0]!;
    assert.equal(fu[1], fmtMetric(summary.adapfu.nll));
    assert.equal(fu[2], fmtMetric(summary.adapfu.ppl));
    const nll = html.slice(
      html.indexOf('data-chart="eval-nll"'),
      html.indexOf('</svg>', html.indexOf('data-chart="eval-nll"')),
    );
    assert.equal((nll.match(/<polyline /g) ?? []).length, 2, 'AdapFu and AdapEmu');
    assert.match(nll, /stroke-dasharray/);
    assert.ok(!html.includes('data-missing="eval"'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('hostile names and metric keys are escaped; missing and malformed data degrade gracefully', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fedbiot-report-hostile-'));
  try {
    const evil = '<img src=x onerror="alert(1)">&\'';
    const evilSlash = '<script>alert("x")</script>';
    const evilKey = '<b onclick=1>nll</b>';
    const m = { [evilKey]: 1.5, ppl: 300 };
    const summary = (algorithm: string) => ({
      algorithm,
      rounds: 1,
      base: m,
      emulator: null,
      adapemu: m,
      adapfu: m,
      bytes_total: 2048,
      bytes_down_total: 1024,
      bytes_up_total: 1024,
      bytes_join_per_client: 10,
      client: { model_params: 10, trainable_params: 2, mean_step_seconds: 0.5, peak_memory_mb: 12 },
      seconds: 1,
    });
    fs.writeFileSync(path.join(dir, 'summaries.json'), JSON.stringify([summary(evil), summary(evilSlash)]));
    fs.mkdirSync(path.join(dir, evil));
    fs.writeFileSync(
      path.join(dir, evil, 'metrics.jsonl'),
      [
        JSON.stringify({ round: -1, phase: 'prepare', align_loss: null, eval: { base: m, emulator: null } }),
        '{not json',
        JSON.stringify({
          round: 0,
          algorithm: evil,
          clients: ['0'],
          train_loss: { '<i>0</i>': 2.5 },
          align_loss: { nmse: 0.1, kl: 0.01, ce: 0, total: 0.11 },
          bytes_down: 1024,
          bytes_up: 1024,
          seconds: 1,
          eval: { adapemu: m, adapfu: m },
        }),
        JSON.stringify({ round: 0, phase: 'final', eval: { adapemu: m, adapfu: m } }),
      ].join('\n') + '\n',
    );
    const html = fs.readFileSync(writeReport(dir), 'utf8');
    assert.ok(
      !html.includes(evil) && !html.includes(evilSlash) && !html.includes(evilKey),
      'raw hostile text must not appear',
    );
    assert.ok(!/<script|<img|<b onclick/i.test(html));
    assert.ok(html.includes(esc(evil)) && html.includes(esc(evilSlash)) && html.includes(esc(evilKey)));
    assert.equal(esc(`<a href="x">'&`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;');
    // Both methods get table rows; the one whose name is not a folder name says it has no per-round data.
    assert.equal(rowCells(html, /data-view="AdapFu"/).length, 2);
    assert.match(html, /no per-round metrics found/);
    assert.match(html, /1 unreadable line\(s\) in metrics\.jsonl skipped/);
    assert.ok(chartIds(html).includes(`eval-${esc(evilKey)}`));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a folder with only summaries.json, or nothing at all, still gets a report; a missing folder throws', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fedbiot-report-empty-'));
  try {
    const html0 = fs.readFileSync(writeReport(dir), 'utf8');
    assert.match(html0, /No results found/);
    assert.match(html0, /no summaries\.json/);
    fs.copyFileSync(path.join(FIXTURES, 'demo', 'summaries.json'), path.join(dir, 'summaries.json'));
    const html = fs.readFileSync(writeReport(dir), 'utf8');
    assert.equal(rowCells(html, /data-view="AdapEmu"/).length, 5);
    assert.deepEqual(chartIds(html), []);
    for (const id of ['train-loss', 'bytes', 'align-nmse', 'align-kl', 'eval'])
      assert.ok(html.includes(`data-missing="${id}"`), id);
    assert.throws(() => writeReport(path.join(dir, 'nope')), /not a folder/);
    assert.throws(() => writeRunReport(path.join(dir, 'nope')), /not a folder/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('niceTicks covers the range with round steps', () => {
  const t = niceTicks(5.27, 5.56, 5);
  assert.ok(t.lo <= 5.27 && t.hi >= 5.56);
  assert.equal(t.step, 0.1);
  assert.ok(
    t.values.every((v) => String(v).length <= 4),
    `clean values: ${t.values}`,
  );
  const z = niceTicks(0, 0);
  assert.equal(z.lo, 0);
  assert.equal(z.hi, 1);
  assert.ok(niceTicks(3, 3).lo < 3 && niceTicks(3, 3).hi > 3);
});
