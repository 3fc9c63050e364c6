// The operations modules on their own: run events folded into Prometheus metrics (read back with an
// independent parser of the text format) and into the dashboard's state and page; the logger's JSON
// lines, levels and redaction; the OpenAPI document against the official OpenAPI 3.1 schema and
// against the committed docs/openapi.json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { Validator } from '@seriousme/openapi-schema-validator';
import { createRunOps } from '../../src/ops/run-ops.js';
import type { RunEvent } from '../../src/ops/events.js';
import { renderDashboard, renderLive, DASHBOARD_CSP } from '../../src/ops/dashboard.js';
import { createLogger, lineLogger, addSecret, scrubText } from '../../src/ops/log.js';
import { credential } from '../../src/ops/http.js';
import { openApiDocument } from '../../src/fl/net/openapi.js';
import { fmtAgo, fmtDuration } from '../../src/util/format.js';
import { formatStatus } from '../../src/cli/status.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

type Family = {
  name: string;
  type: string;
  metrics: {
    value?: string;
    labels?: Record<string, string>;
    buckets?: Record<string, string>;
    count?: string;
    sum?: string;
  }[];
};

function family(text: string, name: string): Family {
  const f = (parsePrometheusTextFormat(text) as Family[]).find((x) => x.name === name);
  assert.ok(f, `no metric family ${name} in:\n${text.slice(0, 2000)}`);
  return f;
}

const value = (f: Family, labels: Record<string, string> = {}) => {
  const m = f.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v));
  assert.ok(m, `${f.name}: no sample with ${JSON.stringify(labels)}`);
  return Number(m.value);
};

/** A short run as the round loop reports it: 2 clients, 2 rounds, one refusal, privacy on. */
function events(now: number): RunEvent[] {
  const line = (round: number, losses: number[]) => ({
    round,
    algorithm: 'fedbiot',
    clients: ['a', 'b'],
    sampled: ['a', 'b'],
    train_loss: { a: losses[0], b: losses[1] },
    align_loss: { nmse: 0.5 / (round + 1), kl: 0.2 / (round + 1), ce: 1, total: 2 },
    bytes_down: 1000,
    bytes_up: 400,
    seconds: 2.5 + round,
    ...(round === 1 ? { eval: { adapemu: { nll: 1.3 }, adapfu: { nll: 1.2 } } } : {}),
  });
  return [
    { type: 'run', mode: 'server', algorithm: 'fedbiot', rounds: 3, completedRounds: 0, clients: ['a', 'b'] },
    {
      type: 'prepare',
      line: {
        round: -1,
        phase: 'prepare',
        align_loss: { hidden: 0.9, kl: 0.4 },
        eval: { base: { nll: 1.4 }, emulator: { nll: 1.5 } },
      },
    },
    { type: 'client-seen', client: 'a', at: now },
    { type: 'client-seen', client: 'b', at: now - 120_000 },
    { type: 'bytes', direction: 'join', bytes: 5000, client: 'a' },
    { type: 'round-open', round: 0, sampled: ['a', 'b'], deadline: now + 60_000 },
    { type: 'bytes', direction: 'down', bytes: 500, client: 'a' },
    { type: 'bytes', direction: 'down', bytes: 500, client: 'b' },
    { type: 'upload', round: 0, client: 'a', bytes: 200, loss: 1.1 },
    { type: 'bytes', direction: 'up', bytes: 200, client: 'a' },
    { type: 'upload', round: 0, client: 'b', bytes: 200, loss: 1.3 },
    { type: 'bytes', direction: 'up', bytes: 200, client: 'b' },
    { type: 'refusal', client: 'b', reason: 'duplicate' },
    { type: 'refusal', client: null, reason: 'unauthorized' },
    // Epsilon as a privacy run writes it on its round lines.
    { type: 'round-complete', round: 0, line: { ...line(0, [1.1, 1.3]), privacy: { epsilon: 0.8, delta: 1e-5 } } },
    { type: 'round-open', round: 1, sampled: ['a'] },
    { type: 'upload', round: 1, client: 'a', bytes: 200, loss: 0.9 },
    { type: 'round-complete', round: 1, line: line(1, [0.9, 1.0]) },
    { type: 'privacy', round: 1, epsilon: 1.3 },
    { type: 'round-open', round: 2, sampled: ['<b>&"x'] },
  ];
}

test('metrics: events become Prometheus text that an independent parser reads back', async () => {
  const now = Date.now();
  const ops = createRunOps({ activeSeconds: 60 });
  for (const e of events(now)) ops.events.emit(e);
  const text = await ops.metrics.text();
  assert.match(ops.metrics.contentType, /^text\/plain/);
  assert.equal(value(family(text, 'fedbiot_rounds_completed')), 2);
  assert.equal(value(family(text, 'fedbiot_rounds_total')), 3);
  assert.equal(value(family(text, 'fedbiot_current_round')), 3, 'round index 2 is open: 1-based 3');
  assert.equal(value(family(text, 'fedbiot_clients_connected')), 1, 'b was last seen two minutes ago');
  const uploads = family(text, 'fedbiot_uploads_total');
  assert.equal(uploads.type, 'COUNTER');
  assert.equal(value(uploads, { client: 'a' }), 2);
  assert.equal(value(uploads, { client: 'b' }), 1);
  assert.equal(value(family(text, 'fedbiot_refusals_total'), { reason: 'duplicate' }), 1);
  assert.equal(value(family(text, 'fedbiot_refusals_total'), { reason: 'unauthorized' }), 1);
  const bytes = family(text, 'fedbiot_bytes_total');
  assert.deepEqual(
    [value(bytes, { direction: 'down' }), value(bytes, { direction: 'up' }), value(bytes, { direction: 'join' })],
    [1000, 400, 5000],
  );
  const hist = family(text, 'fedbiot_round_duration_seconds');
  assert.equal(hist.type, 'HISTOGRAM');
  assert.equal(Number(hist.metrics[0]!.count), 2);
  assert.equal(Number(hist.metrics[0]!.sum), 2.5 + 3.5);
  assert.equal(value(family(text, 'fedbiot_train_loss')), 0.95);
  assert.equal(value(family(text, 'fedbiot_align_loss'), { term: 'nmse' }), 0.25);
  assert.equal(value(family(text, 'fedbiot_eval'), { view: 'adapfu', metric: 'nll' }), 1.2);
  assert.equal(value(family(text, 'fedbiot_eval'), { view: 'base', metric: 'nll' }), 1.4);
  assert.equal(value(family(text, 'fedbiot_privacy_epsilon')), 1.3);
  assert.ok(family(text, 'fedbiot_process_resident_memory_bytes'));
});

test('dashboard: state and page from events; names escaped; privacy shown; CSP pins the script', () => {
  const now = Date.now();
  const ops = createRunOps();
  for (const e of events(now)) ops.events.emit(e);
  const s = ops.state.snapshot();
  assert.equal(s.completedRounds, 2);
  assert.equal(s.currentRound, 2);
  assert.deepEqual(
    s.clients.map((c) => [c.name, c.uploads, c.refusals, c.sampled]),
    [
      ['<b>&"x', 0, 0, true],
      ['a', 2, 0, false],
      ['b', 1, 1, false],
    ],
  );
  assert.deepEqual(s.traffic, { down: 1000, up: 400, join: 5000 });
  assert.equal(s.lines.length, 3);
  const html = renderDashboard(s, now);
  assert.ok(!html.includes('<b>&"x'), 'client names are escaped');
  assert.ok(html.includes('&lt;b&gt;&amp;&quot;x'));
  for (const id of ['train-loss', 'bytes', 'epsilon', 'align-nmse', 'align-kl', 'eval-nll'])
    assert.match(html, new RegExp(`data-chart="${id}"`), id);
  assert.match(html, /data-completed-rounds="2"/);
  assert.match(html, /privacy epsilon/);
  // The only script in the page is the one whose hash the policy names.
  const script = /<script>([\s\S]*?)<\/script>/.exec(html)![1]!;
  assert.ok(DASHBOARD_CSP.includes(`'sha256-${createHash('sha256').update(script).digest('base64')}'`));
  assert.equal((html.match(/<script/g) ?? []).length, 1);
  // Before any round: says so instead of empty charts.
  const empty = createRunOps();
  empty.events.emit({
    type: 'run',
    mode: 'simulation',
    algorithm: 'fedot',
    rounds: 2,
    completedRounds: 0,
    clients: [],
  });
  const live = renderLive(empty.state.snapshot());
  assert.match(live, /data-missing="rounds"/);
  assert.match(live, /data-missing="train-loss"/);
});

test('logs: JSON lines with levels and request ids; tokens never written, in fields or text', () => {
  const sink = new PassThrough();
  let out = '';
  sink.on('data', (d: Buffer) => (out += d.toString('utf8')));
  const token = 'f3c9a1b2c3d4e5f6a7b8c9d0e1f2a3b4';
  const log = createLogger({ format: 'json', level: 'debug', stream: sink });
  addSecret(log, token);
  const line = lineLogger(log);
  line('listening on http://127.0.0.1:1');
  line('warning: public data: 3 records skipped');
  line(`refused GET /v1/round from 127.0.0.1: unauthorized: token ${token}`);
  log
    .child({ reqId: 'abc123' })
    .info({ headers: { authorization: `Bearer ${token}` }, token }, `sent Authorization: Bearer ${token}`);
  log.debug('details');
  const lines = out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(
    lines.map((l) => l.level),
    ['info', 'warn', 'warn', 'info', 'debug'],
  );
  assert.equal(lines[3]!.reqId, 'abc123');
  assert.ok(typeof lines[0]!.time === 'string' && !Number.isNaN(Date.parse(lines[0]!.time as string)));
  assert.ok(!out.includes(token), `a token reached the log:\n${out}`);
  assert.match(out, /\[redacted\]/);
  assert.equal(scrubText('Authorization: Basic YWRtaW46c2VjcmV0'), 'Authorization: Basic [redacted]');
  // Pretty: one readable line per record, levels named, still no token.
  const sink2 = new PassThrough();
  let out2 = '';
  sink2.on('data', (d: Buffer) => (out2 += d.toString('utf8')));
  const pretty = createLogger({ format: 'pretty', stream: sink2 });
  lineLogger(pretty)(`warning: Bearer ${token}`);
  pretty.debug('hidden at info level');
  assert.match(out2, /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] WARN: warning: Bearer \[redacted\]\n$/);
});

test('credential: Bearer, or Basic with the token as password', () => {
  assert.equal(credential('Bearer abc'), 'abc');
  assert.equal(credential(`Basic ${Buffer.from('admin:tok:en').toString('base64')}`), 'tok:en');
  assert.equal(credential(`Basic ${Buffer.from('admin:').toString('base64')}`), null);
  assert.equal(credential('Digest x'), null);
  assert.equal(credential(undefined), null);
});

test('openapi: valid OpenAPI 3.1; docs/openapi.json is the generated document', async () => {
  const doc = openApiDocument('http://127.0.0.1:8443');
  const v = new Validator();
  const res = await v.validate(doc as Parameters<Validator['validate']>[0]);
  assert.ok(res.valid, JSON.stringify(res.errors, null, 2));
  assert.equal(v.version, '3.1');
  const paths = Object.keys(doc.paths as object);
  for (const p of [
    '/v1/join',
    '/v1/model/files/{name}',
    '/v1/round',
    '/v1/round/{round}/payload',
    '/v1/round/{round}/update',
    '/v1/status',
    '/v1/health',
    '/metrics',
    '/dashboard',
  ])
    assert.ok(paths.includes(p), p);
  const committed = JSON.parse(fs.readFileSync(path.join(ROOT, 'docs', 'openapi.json'), 'utf8')) as unknown;
  assert.deepEqual(committed, openApiDocument(), 'docs/openapi.json is out of date: run `npm run openapi`');
});

test('format: durations and ages for people', () => {
  assert.equal(fmtDuration(0.25), '250 ms');
  assert.equal(fmtDuration(12.34), '12.3 s');
  assert.equal(fmtDuration(245), '4m 05s');
  assert.equal(fmtDuration(7380), '2h 03m');
  assert.equal(fmtDuration(3 * 86400 + 4 * 3600), '3d 04h');
  assert.equal(fmtAgo(null), 'never');
  assert.equal(fmtAgo(1000, 31_000), '30.0 s ago');
});

test('status: sizes with units, ages, 1-based rounds', () => {
  const now = Date.parse('2026-01-31T14:05:09Z');
  const text = formatStatus(
    {
      protocol: 'fedbiot-net/1',
      algorithm: 'fedbiot',
      rounds: 3,
      completedRounds: 1,
      phase: 'open',
      currentRound: 1,
      clients: [
        { name: '0', role: 'client', lastSeen: now - 1200, uploads: 1 },
        { name: '1', role: 'client', lastSeen: null, uploads: 0, revokedAt: now - 5000 },
      ],
      roundsDetail: [
        {
          round: 0,
          status: 'completed',
          sampled: ['0', '1'],
          uploads: ['0'],
          metrics: { train_loss: { 0: 1.5 }, bytes_down: 2 * 1024 * 1024, bytes_up: 1536, seconds: 125 },
        },
        { round: 1, status: 'open', sampled: ['0'], uploads: [], metrics: null },
      ],
    },
    now,
  );
  assert.equal(
    text,
    [
      'algorithm fedbiot: 1/3 rounds completed, phase open, round 2 in progress',
      'clients:',
      '  0                uploads    1  last seen 1.2 s ago',
      '  1                uploads    0  last seen never           revoked 2026-01-31 14:05:04 UTC',
      'rounds:',
      '  round status    uploads             loss       down         up     time',
      '      1 completed 1/2 0             1.5000    2.0 MiB    1.5 KiB   2m 05s',
      '      2 open      0/1                    -          -          -        -',
    ].join('\n'),
  );
});

test('endpoints: metrics public only when configured; the dashboard always needs the admin credential', async () => {
  const { OpsEndpoints } = await import('../../src/ops/http.js');
  const http = await import('node:http');
  const refused: string[] = [];
  for (const metricsPublic of [false, true]) {
    const ops = createRunOps({ processMetrics: false });
    const ep = new OpsEndpoints({
      ...ops,
      metricsPublic,
      isAdmin: (req) => credential(req.headers.authorization) === 'admin-secret-token',
      onRefused: (req) => refused.push(req.url!),
    });
    const srv = http.createServer(
      (req, res) => void ep.handle(req, res).then((done) => done || res.writeHead(404).end()),
    );
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const base = `http://127.0.0.1:${(srv.address() as import('node:net').AddressInfo).port}`;
    try {
      const get = (p: string, auth?: string) => fetch(base + p, { headers: auth ? { authorization: auth } : {} });
      assert.equal((await get('/metrics')).status, metricsPublic ? 200 : 401);
      assert.equal((await get('/metrics', 'Bearer admin-secret-token')).status, 200);
      const page = await get('/dashboard');
      assert.equal(page.status, 401);
      assert.match(page.headers.get('www-authenticate') ?? '', /^Basic realm=/);
      assert.equal((await get('/dashboard', 'Bearer wrong')).status, 401);
      const ok = await get('/dashboard', `Basic ${Buffer.from('me:admin-secret-token').toString('base64')}`);
      assert.equal(ok.status, 200);
      assert.match(ok.headers.get('content-security-policy') ?? '', /default-src 'none'/);
      assert.equal((await get('/elsewhere')).status, 404, 'other paths are left to the caller');
    } finally {
      ep.close();
      srv.closeAllConnections();
      await new Promise<void>((r) => srv.close(() => r()));
    }
  }
  assert.deepEqual(refused, ['/metrics', '/dashboard', '/dashboard', '/dashboard', '/dashboard']);
});
