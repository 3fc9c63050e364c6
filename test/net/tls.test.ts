// HTTPS with a self-signed certificate made by openssl: clients that trust it (--ca) train through
// a round; a client without --ca stops at once with a certificate error (no retry loop, no hang);
// plain HTTP to the TLS port fails; `fedbiot status --ca` works over HTTPS, and after the last
// round it says the server finished and where the results are, until lingerSeconds pass.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { setup, cli, serverArgs, clientArgs, roundMetrics, killAll, tmp } from './helpers.js';
import { makeTransport, request } from '../../src/fl/net/http.js';

after(killAll);

const OPENSSL = '/usr/bin/openssl';
const haveOpenssl = fs.existsSync(OPENSSL) || spawnSync('openssl', ['version']).status === 0;

function selfSigned(dir: string): { cert: string; key: string } {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  const r = spawnSync(
    fs.existsSync(OPENSSL) ? OPENSSL : 'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-sha256',
      '-days',
      '2',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { encoding: 'utf8', timeout: 30_000 },
  );
  assert.equal(r.status, 0, `openssl failed: ${r.stderr}`);
  return { cert, key };
}

test('net: TLS with a self-signed certificate: --ca clients train; no --ca is refused clearly; plain HTTP fails; status after the run', {
  timeout: 120_000,
  skip: haveOpenssl ? false : 'openssl not found (needed to make a self-signed certificate)',
}, async () => {
  const tls = selfSigned(tmp('fedbiot-tls-'));
  const s = await setup({
    rounds: 1,
    clients: ['0', '1'],
    server: { minClients: 2, roundDeadlineSeconds: 60, lingerSeconds: 15 },
    tls,
  });
  assert.match(s.url, /^https:\/\/127\.0\.0\.1:/);
  const server = cli('server', serverArgs(s));
  await server.waitFor(/listening on https:\/\/127\.0\.0\.1:/, 30_000);

  // No --ca: the certificate is not trusted; the client must stop at once, not retry for --patience.
  const t0 = Date.now();
  const untrusted = cli('client-no-ca', [
    'client',
    '--server',
    s.url,
    '--token',
    s.tokens['0']!,
    '--data',
    s.shares[0]!,
    '--cache',
    path.join(s.dir, 'cache-x'),
    '--patience',
    '60',
  ]);
  assert.equal(await untrusted.exit(30_000), 1, untrusted.out);
  assert.ok(Date.now() - t0 < 25_000, 'refused without retrying for --patience');
  assert.match(untrusted.out, /TLS certificate error/);
  assert.match(untrusted.out, /SELF_SIGNED|self[- ]signed/i);
  assert.match(untrusted.out, /--ca/);
  assert.doesNotMatch(untrusted.out, /retrying/);

  // Plain HTTP to the TLS port: no answer that a client could take for the server's.
  const plain = makeTransport(s.url.replace('https:', 'http:'), s.tokens['0']!, { timeoutMs: 10_000 });
  const p0 = Date.now();
  const r = await request(plain, 'GET', 'v1/health').then(
    (x) => x,
    (e: Error) => e,
  );
  if (r instanceof Error) assert.doesNotMatch(r.message, /timed out/, 'fails fast, not by timeout');
  else assert.ok(r.status >= 400, `plain HTTP got ${r.status}`);
  assert.ok(Date.now() - p0 < 9_000);
  process.stderr.write(
    `# plain HTTP to the TLS port: ${r instanceof Error ? r.message : `HTTP ${r.status}`}\n# no --ca: ${untrusted.out.trim().split('\n').pop()}\n`,
  );

  // Trusting the certificate (--ca): the run completes over HTTPS.
  const clients = ['0', '1'].map((n) => cli(`client-${n}`, clientArgs(s, n, ['--ca', tls.cert])));
  await server.waitFor(/run complete/, 60_000);
  // The run is over but the server still answers status (read-only) for lingerSeconds (15 s, so that
  // the four CLI processes below start within it even on a loaded machine).
  const status = cli('status', ['status', '--server', s.url, '--ca', tls.cert, '--token', s.tokens.admin!]);
  const anon = cli('status-anon', ['status', '--server', s.url, '--ca', tls.cert]);
  const noCa = cli('status-no-ca', ['status', '--server', s.url]);
  const late = cli('client-late', [
    'client',
    '--server',
    s.url,
    '--ca',
    tls.cert,
    '--token',
    s.tokens['1']!,
    '--data',
    s.shares[1]!,
    '--cache',
    path.join(s.dir, 'cache-late'),
    '--patience',
    '10',
  ]);
  assert.equal(await status.exit(20_000), 0, status.out);
  assert.match(status.out, /1\/1 rounds completed, phase done/);
  assert.match(
    status.out,
    new RegExp(
      `server finished at round 1 of 1 \\(.*\\); results in ${s.state.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(adapter/, summary\\.json, metrics\\.jsonl\\)`,
    ),
  );
  assert.equal(await anon.exit(20_000), 0, anon.out);
  assert.match(anon.out, /server finished at round 1 of 1 .*results in the server's state folder/);
  assert.doesNotMatch(anon.out, new RegExp(s.state), 'the server path is for admins only');
  assert.equal(await noCa.exit(20_000), 1, noCa.out);
  assert.match(noCa.out, /TLS certificate error.*--ca/);
  assert.equal(await late.exit(20_000), 0, late.out);
  assert.match(late.out, /the run is complete \(1 rounds\); nothing to do/);
  assert.doesNotMatch(late.out, /model ready/, 'a client joining a finished run downloads nothing');
  assert.equal(await server.exit(30_000), 0, server.out);
  // Gone after lingerSeconds: status says so instead of a bare ECONNREFUSED.
  const gone = cli('status-gone', ['status', '--server', s.url, '--ca', tls.cert]);
  assert.equal(await gone.exit(20_000), 1, gone.out);
  assert.match(
    gone.out,
    /nothing answers at https:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\): the server is not running; a finished run's results are in its state folder/,
  );
  for (const c of clients) assert.equal(await c.exit(20_000), 0, c.out);
  assert.deepEqual(
    roundMetrics(s).map((m) => m.clients),
    [['0', '1']],
  );
});
