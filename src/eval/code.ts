// pass@1 for generated JavaScript: each program runs with its unit tests in a separate `node`
// process that has
// - Node's permission model on, with no --allow-* flag: no fs reads or writes, no child
//   processes, no worker threads, no addons;
// - a prelude that disables sockets, DNS and fetch (Node 20's permission model does not cover
//   the network; from Node 25 it does, and --allow-net is simply not given);
// - a fresh empty temp folder as cwd, an empty environment, a heap cap, and a wall-clock limit
//   after which the process is killed.
// The program arrives on stdin, so the sandbox needs no read permission at all. The child reports
// its verdict on a line tagged with a random nonce, so program output cannot forge it.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type CodeVerdict = 'pass' | 'assertion' | 'error' | 'syntax' | 'timeout' | 'memory' | 'denied' | 'no_code';

export interface CodeResult {
  passed: boolean;
  verdict: CodeVerdict;
  /** Short human-readable reason (first line of the error, which test failed, ...). */
  reason: string;
  testsPassed: number;
  testsTotal: number;
  durationMs: number;
}

export interface SandboxOptions {
  /** Wall-clock limit per program (default 5000 ms). */
  timeoutMs?: number;
  /** V8 old-space cap (default 128 MiB). */
  memoryMb?: number;
  /** Captured output cap (default 1 MiB); a program printing more is killed. */
  maxOutputBytes?: number;
}

/**
 * The code in a model's output: the first ```js / ```javascript fence (or any fence), else the
 * text itself, trimmed. Unterminated fences (generation cut off) keep what follows the opening.
 */
export function extractCode(output: string): string {
  const fence = /```[ \t]*(javascript|js|node|typescript|ts|jsx|mjs)?[^\n]*\n([\s\S]*?)(?:```|$)/g;
  let first: string | null = null;
  for (const m of output.matchAll(fence)) {
    if (m[1] && /^(javascript|js|node|mjs|jsx)$/i.test(m[1])) return m[2]!.trim();
    first ??= m[2]!;
  }
  return (first ?? output).trim();
}

/** Node flag for the permission model in this Node version. */
function permissionFlags(): string[] {
  const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
  const stable = major > 23 || (major === 23 && minor >= 5) || (major === 22 && minor >= 13);
  return [stable ? '--permission' : '--experimental-permission'];
}

// Runs inside the child before the program. Kept as plain ES2020 so any Node runs it.
function prelude(nonce: string): string {
  return `'use strict';
(() => {
  const deny = (what) => function () { const e = new Error('network access denied in sandbox: ' + what); e.code = 'ERR_ACCESS_DENIED'; throw e; };
  const net = require('node:net');
  net.Socket.prototype.connect = deny('net.Socket.connect');
  net.Server.prototype.listen = deny('net.Server.listen');
  const dgram = require('node:dgram');
  dgram.Socket.prototype.bind = deny('dgram.bind');
  dgram.Socket.prototype.send = deny('dgram.send');
  dgram.Socket.prototype.connect = deny('dgram.connect');
  const dns = require('node:dns');
  for (const k of Object.keys(dns)) if (typeof dns[k] === 'function' && k !== 'Resolver') dns[k] = deny('dns.' + k);
  for (const k of Object.keys(dns.promises)) if (typeof dns.promises[k] === 'function' && k !== 'Resolver') dns.promises[k] = deny('dns.' + k);
  for (const C of [dns.Resolver, dns.promises.Resolver]) for (const k of Object.getOwnPropertyNames(C.prototype)) if (k !== 'constructor' && typeof C.prototype[k] === 'function') C.prototype[k] = deny('dns.Resolver.' + k);
  for (const k of ['fetch', 'WebSocket', 'EventSource']) if (k in globalThis) globalThis[k] = deny(k);
})();
const __write = process.stdout.write.bind(process.stdout);
const __exit = process.exit.bind(process);
// Pipes are synchronous on POSIX, so exiting right after the write loses nothing; exiting stops
// timers the program may have left behind.
const __report = (r) => { __write('\\n${nonce}' + JSON.stringify(r) + '\\n'); __exit(0); };
const __vm = require('node:vm');
globalThis.assert = require('node:assert/strict');
`;
}

// The harness: compile the program, then run each test; a test may return a promise.
function harness(program: string, tests: readonly string[]): string {
  return `
(async () => {
  const tests = ${JSON.stringify(tests)};
  const kind = (e) => (e && e.code === 'ERR_ACCESS_DENIED') ? 'denied' : (e && (e.code === 'ERR_ASSERTION' || e.name === 'AssertionError')) ? 'assertion' : 'error';
  const msg = (e) => String((e && e.message) || e).split('\\n')[0].slice(0, 300);
  let script;
  try { script = new __vm.Script(${JSON.stringify(program)}, { filename: 'solution.js' }); }
  catch (e) { __report({ verdict: 'syntax', reason: msg(e), passed: 0 }); return; }
  try { script.runInThisContext(); }
  catch (e) { __report({ verdict: kind(e), reason: 'while loading: ' + msg(e), passed: 0 }); return; }
  let passed = 0;
  for (let i = 0; i < tests.length; i++) {
    try { await __vm.runInThisContext(tests[i], { filename: 'test-' + i + '.js' }); passed++; }
    catch (e) { __report({ verdict: kind(e), reason: 'test ' + i + ': ' + msg(e), passed }); return; }
  }
  __report({ verdict: 'pass', reason: 'all tests passed', passed });
})();
`;
}

/** Runs one program against its tests in the sandbox. Never throws for program faults. */
export async function runCodeTests(
  program: string,
  tests: readonly string[],
  opts: SandboxOptions = {},
): Promise<CodeResult> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const memoryMb = opts.memoryMb ?? 128;
  const maxOut = opts.maxOutputBytes ?? 1 << 20;
  const start = Date.now();
  const done = (verdict: CodeVerdict, reason: string, testsPassed = 0): CodeResult => ({
    passed: verdict === 'pass',
    verdict,
    reason,
    testsPassed,
    testsTotal: tests.length,
    durationMs: Date.now() - start,
  });
  if (program.trim() === '') return done('no_code', 'no code in the output');

  const nonce = `@@sandbox-${randomBytes(12).toString('hex')}@@`;
  const source = prelude(nonce) + harness(program, tests);
  const dir = mkdtempSync(join(tmpdir(), 'fedbiot-sbx-'));
  try {
    return await new Promise<CodeResult>((resolve) => {
      const child = spawn(
        process.execPath,
        [...permissionFlags(), `--max-old-space-size=${memoryMb}`, '--stack-size=2048', '--no-warnings', '-'],
        { cwd: dir, env: {}, stdio: ['pipe', 'pipe', 'pipe'] },
      );
      let stdout = '';
      let stderr = '';
      let killedFor: CodeVerdict | null = null;
      const kill = (why: CodeVerdict) => {
        if (killedFor === null) killedFor = why;
        child.kill('SIGKILL');
      };
      const timer = setTimeout(() => kill('timeout'), timeoutMs);
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        stdout += d;
        if (stdout.length > maxOut) kill('error');
      });
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        if (stderr.length < 65536) stderr += d;
      });
      child.stdin.on('error', () => {}); // the child may die before reading everything
      child.stdin.end(source);
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        const line = stdout.split('\n').find((l) => l.startsWith(nonce));
        if (line) {
          const r = JSON.parse(line.slice(nonce.length)) as { verdict: CodeVerdict; reason: string; passed: number };
          return resolve(done(r.verdict, r.reason, r.passed));
        }
        if (killedFor === 'timeout') return resolve(done('timeout', `killed after ${timeoutMs} ms`));
        if (killedFor === 'error') return resolve(done('error', `output exceeded ${maxOut} bytes`));
        if (/heap out of memory|Allocation failed/i.test(stderr))
          return resolve(done('memory', `heap limit ${memoryMb} MiB exceeded`));
        if (/ERR_ACCESS_DENIED/.test(stderr)) return resolve(done('denied', firstErrorLine(stderr)));
        // The program ended the process itself (process.exit) or crashed before the verdict.
        resolve(done('error', `exited (code ${code}, signal ${signal}) without a verdict: ${firstErrorLine(stderr)}`));
      });
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function firstErrorLine(stderr: string): string {
  const line = stderr.split('\n').find((l) => /Error|denied/i.test(l)) ?? stderr.split('\n')[0] ?? '';
  return line.trim().slice(0, 300);
}

export interface CodeTask {
  /** The model's raw output (code is extracted from it). */
  output: string;
  tests: readonly string[];
}

export interface PassAtOneResult {
  passed: number;
  total: number;
  passAt1: number;
  results: CodeResult[];
  byVerdict: Partial<Record<CodeVerdict, number>>;
}

/** Runs tasks with at most `concurrency` sandboxes at once (default 2, one per core here). */
export async function evaluateCode(
  tasks: readonly CodeTask[],
  opts: SandboxOptions & { concurrency?: number } = {},
): Promise<PassAtOneResult> {
  const results = await mapPool(tasks, opts.concurrency ?? 2, (t) =>
    runCodeTests(extractCode(t.output), t.tests, opts),
  );
  const passed = results.filter((r) => r.passed).length;
  const byVerdict: Partial<Record<CodeVerdict, number>> = {};
  for (const r of results) byVerdict[r.verdict] = (byVerdict[r.verdict] ?? 0) + 1;
  return { passed, total: results.length, passAt1: results.length ? passed / results.length : 0, results, byVerdict };
}

/** Maps with a bounded number of promises in flight, keeping the input order. */
export async function mapPool<T, R>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, worker));
  return out;
}
