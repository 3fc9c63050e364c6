// Operations of a real deployment: one server and two client processes on 127.0.0.1, the clients
// talking through a recording proxy. During the run, headless Chromium opens the dashboard with the
// admin token and sees the completed-round count advance by itself (server-sent events); after it,
// /metrics parses as Prometheus text and its counters equal what the server's database and
// metrics.jsonl say; /v1/openapi.json is valid OpenAPI 3.1 and every recorded request and response
// conforms to it. The dashboard and metrics refuse requests without the admin token, and the JSON
// logs never contain a token. The browser part skips, saying why, where Chromium is missing.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { Validator } from '@seriousme/openapi-schema-validator';
import { setup, cli, serverArgs, clientArgs, killAll, roundMetrics } from '../net/helpers.js';
import { makeTransport, request } from '../../src/fl/net/http.js';
import { ServerDb } from '../../src/fl/net/db.js';
import { CHROMIUM, CHROMIUM_ARGS, chromiumLauncher } from '../helpers/chromium.js';
import { recordingProxy, conformance, schemaValidator } from './recorder.js';

after(killAll);

/** Where the screenshot goes when FEDBIOT_DASHBOARD_SHOT names a file (the README's image). */
const SHOT_OUT = process.env.FEDBIOT_DASHBOARD_SHOT;
const ROUNDS = 4;

type Family = { name: string; type: string; metrics: { value?: string; labels?: Record<string, string> }[] };

function sample(families: Family[], name: string, labels: Record<string, string> = {}): number {
  const f = families.find((x) => x.name === name);
  assert.ok(f, `no metric ${name}`);
  const m = f.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v));
  assert.ok(m, `${name}: no sample ${JSON.stringify(labels)}`);
  return Number(m.value);
}

test('ops: dashboard live in Chromium, /metrics matches the run, traffic conforms to /v1/openapi.json, admin token required', {
  timeout: 180_000,
}, async (t) => {
  const s = await setup({
    rounds: ROUNDS,
    clients: ['0', '1'],
    server: { minClients: 2, roundDeadlineSeconds: 60, lingerSeconds: 8 },
  });
  const server = cli('server', ['--log-format', 'json', ...serverArgs(s)]);
  await server.waitFor(/listening on/, 60_000);
  const proxy = await recordingProxy(s.url);
  const admin = makeTransport(s.url, s.tokens.admin!, { timeoutMs: 15_000 });

  // Refused without the admin token: nothing, a client token, a wrong Basic password.
  const basic = (pw: string) => ({ authorization: `Basic ${Buffer.from(`admin:${pw}`).toString('base64')}` });
  const refusedBefore: [string, number][] = [];
  for (const [p, token, headers] of [
    ['dashboard', null, {}],
    ['dashboard/events', null, {}],
    ['metrics', null, {}],
    ['dashboard', s.tokens['0']!, {}],
    ['metrics', s.tokens['1']!, {}],
    ['dashboard', null, basic('not-the-token')],
  ] as [string, string | null, Record<string, string>][]) {
    const r = await request(admin, 'GET', p, { token, headers });
    assert.equal(r.status, 401, `${p} without the admin token: ${r.status}`);
    if (p === 'dashboard') assert.match(String(r.headers['www-authenticate']), /^Basic realm=/);
    refusedBefore.push([p, r.status]);
  }
  const ok = await request(admin, 'GET', 'metrics');
  assert.equal(ok.status, 200);
  assert.equal(
    (await request(admin, 'GET', 'metrics', { token: null, headers: basic(s.tokens.admin!) })).status,
    200,
    'Basic with the token as password',
  );

  const clients = ['0', '1'].map((n) =>
    cli(`client-${n}`, ['--log-format', 'json', ...clientArgs(s, n).map((a) => (a === s.url ? proxy.url : a))], {
      FEDBIOT_DEBUG_TRAIN_DELAY_MS: '1500',
    }),
  );

  // The dashboard, while the run goes on.
  const browser = await chromiumLauncher('the dashboard browser check');
  let seen: number[] = [];
  if (typeof browser === 'string') t.diagnostic(`dashboard browser check skipped: ${browser}`);
  else {
    const userData = fs.mkdtempSync(path.join(os.tmpdir(), 'fedbiot-chromium-'));
    const ctx = await browser.launchPersistentContext(userData, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 900 },
      timeout: 60_000,
      httpCredentials: { username: 'admin', password: s.tokens.admin! },
    });
    try {
      const page = await ctx.newPage();
      const errors: string[] = [];
      const external: string[] = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
      page.on('request', (r) => !r.url().startsWith(s.url) && external.push(r.url()));
      await page.goto(`${s.url}/dashboard`, { waitUntil: 'load' });
      await page.waitForSelector('#conn.live', { timeout: 20_000 });
      const completed = () =>
        page.$eval('[data-completed-rounds]', (e) => Number(e.getAttribute('data-completed-rounds')));
      const first = await completed();
      assert.ok(first < ROUNDS, `the page was opened during the run (${first} of ${ROUNDS} completed)`);
      seen = [first];
      // No reload: the count advances through the event stream.
      for (let want = first + 1; want <= Math.min(first + 2, ROUNDS); want++) {
        await page.waitForFunction(
          (w) => Number(document.querySelector('[data-completed-rounds]')?.getAttribute('data-completed-rounds')) >= w,
          want,
          { timeout: 60_000 },
        );
        seen.push(await completed());
      }
      const shot = path.join(userData, 'dashboard.png');
      await page.screenshot({ path: shot, fullPage: false });
      const png = fs.readFileSync(shot);
      assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG');
      assert.ok(png.length > 30_000, `screenshot too small to show anything: ${png.length} bytes`);
      if (SHOT_OUT) fs.copyFileSync(shot, SHOT_OUT);
      const charts = await page.$$eval('svg.chart', (svgs) =>
        svgs.map((c) => ({
          id: c.getAttribute('data-chart'),
          marks: c.querySelectorAll('polyline, rect, circle').length,
          w: c.getBoundingClientRect().width,
        })),
      );
      for (const id of ['train-loss', 'bytes', 'align-nmse', 'align-kl']) {
        const c = charts.find((x) => x.id === id);
        assert.ok(c && c.marks > 0 && c.w > 200, `chart ${id}: ${JSON.stringify(c)}`);
      }
      const rows = await page.$$eval('table.clients tbody tr', (trs) =>
        trs.map((tr) => tr.getAttribute('data-client')),
      );
      assert.deepEqual(rows, ['0', '1']);
      assert.deepEqual(errors, []);
      assert.deepEqual(external, [], 'the dashboard loads nothing from elsewhere');
    } finally {
      await ctx.close();
      fs.rmSync(userData, { recursive: true, force: true });
    }
    assert.ok(
      seen.length >= 2 && seen.every((v, i) => i === 0 || v > seen[i - 1]!),
      `completed rounds seen: ${seen.join(' -> ')}`,
    );
  }

  // After the last round the server lingers: read metrics and the document, then let it exit.
  await server.waitFor(/run complete/, 120_000);
  const metricsText = (await request(admin, 'GET', 'metrics')).body.toString('utf8');
  const docReply = await request(admin, 'GET', 'v1/openapi.json', { token: null });
  assert.equal(server.child.exitCode, null, 'still lingering when metrics were read');
  assert.equal(await server.exit(60_000), 0, server.out.slice(-3000));
  for (const c of clients) assert.equal(await c.exit(30_000), 0, c.out.slice(-3000));
  await proxy.close();

  // Metrics against the run's own records.
  const families = parsePrometheusTextFormat(metricsText) as Family[];
  const rounds = roundMetrics(s);
  assert.equal(rounds.length, ROUNDS);
  assert.equal(sample(families, 'fedbiot_rounds_completed'), ROUNDS);
  assert.equal(sample(families, 'fedbiot_rounds_total'), ROUNDS);
  assert.equal(sample(families, 'fedbiot_current_round'), 0);
  for (const c of ['0', '1'])
    assert.equal(
      sample(families, 'fedbiot_uploads_total', { client: c }),
      rounds.filter((r) => (r.clients as string[]).includes(c)).length,
    );
  const sum = (k: string) => rounds.reduce((a, r) => a + (r[k] as number), 0);
  assert.equal(sample(families, 'fedbiot_bytes_total', { direction: 'down' }), sum('bytes_down'));
  assert.equal(sample(families, 'fedbiot_bytes_total', { direction: 'up' }), sum('bytes_up'));
  const db = new ServerDb(path.join(s.state, 'server.db'));
  try {
    const join = Object.values(db.joinBytes());
    assert.equal(join.length, 2, 'both clients downloaded the model');
    assert.equal(
      sample(families, 'fedbiot_bytes_total', { direction: 'join' }),
      join.reduce((a, b) => a + b, 0),
    );
    const byCode = new Map<string, number>();
    for (const r of db.refusals()) byCode.set(r.code, (byCode.get(r.code) ?? 0) + 1);
    // Ours, plus the browser's first try (it sends the credential only after the challenge).
    assert.ok((byCode.get('unauthorized') ?? 0) >= refusedBefore.length, JSON.stringify([...byCode]));
    for (const [code, n] of byCode) assert.equal(sample(families, 'fedbiot_refusals_total', { reason: code }), n, code);
  } finally {
    db.close();
  }
  const hist = families.find((f) => f.name === 'fedbiot_round_duration_seconds') as unknown as {
    metrics: { count: string; sum: string }[];
  };
  assert.equal(Number(hist.metrics[0]!.count), ROUNDS);
  assert.ok(Math.abs(Number(hist.metrics[0]!.sum) - sum('seconds')) < 1e-6);
  const last = rounds.at(-1)!.train_loss as Record<string, number>;
  assert.ok(Math.abs(sample(families, 'fedbiot_train_loss') - (last['0']! + last['1']!) / 2) < 1e-9);

  // The protocol document is valid OpenAPI 3.1, and the run's traffic conforms to it.
  assert.equal(docReply.status, 200);
  const doc = JSON.parse(docReply.body.toString('utf8')) as Record<string, unknown>;
  const v = new Validator();
  const res = await v.validate(doc as Parameters<Validator['validate']>[0]);
  assert.ok(res.valid, JSON.stringify(res.errors, null, 2));
  assert.equal(v.version, '3.1');
  const ajv = schemaValidator(doc);
  const ops = new Set(
    proxy.exchanges.map(
      (e) =>
        `${e.method} ${e.path.replace(/\/v1\/round\/\d+\//, '/v1/round/{round}/').replace(/\/v1\/model\/files\/.+$/, '/v1/model/files/{name}')} ${e.status}`,
    ),
  );
  for (const want of [
    'POST /v1/join 200',
    'GET /v1/model/files/{name} 206',
    'GET /v1/round 200',
    'GET /v1/round/{round}/payload 200',
    'POST /v1/round/{round}/update 200',
  ]) {
    assert.ok(ops.has(want), `the run made no ${want}: ${[...ops].join(', ')}`);
  }
  const problems = proxy.exchanges.flatMap((e) => conformance(doc, e, ajv));
  assert.deepEqual(problems, [], `${proxy.exchanges.length} exchanges recorded`);
  t.diagnostic(
    `${proxy.exchanges.length} exchanges conform; dashboard saw completed rounds ${seen.join(' -> ') || '(browser skipped)'}`,
  );

  // JSON logs: every line an object with a level; no token anywhere in any process's output.
  for (const p of [server, ...clients]) {
    for (const line of p.out.split('\n').filter((l) => l.startsWith('{'))) {
      const o = JSON.parse(line) as { level?: string; time?: string };
      assert.ok(o.level && o.time, line);
    }
    for (const [name, tok] of Object.entries(s.tokens))
      assert.ok(!p.out.includes(tok), `${p.name} logged the token of ${name}`);
  }
  assert.match(server.out, /"level":"warn".*refused GET \/dashboard/);
});
