import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evaluateCode, extractCode, mapPool, runCodeTests } from '../../src/eval/code.js';
import { scoreTask } from '../../src/eval/score.js';

const TESTS = ['assert.strictEqual(add(1, 2), 3);', 'assert.strictEqual(add(-2, 2), 0);'];
const GOOD = 'function add(a, b) { return a + b; }';

test('extractCode: js fences, other fences, raw text, unterminated fence', () => {
  assert.equal(extractCode('Here:\n```js\nconst x = 1;\n```\nDone.'), 'const x = 1;');
  assert.equal(extractCode('```python\nx = 1\n```\n```javascript\nlet y = 2;\n```'), 'let y = 2;');
  assert.equal(extractCode('```\nlet z;\n```'), 'let z;');
  assert.equal(extractCode('  function f() {}\n'), 'function f() {}');
  assert.equal(extractCode('```js\nfunction f() {\n  return 1;'), 'function f() {\n  return 1;');
});

test('a correct solution passes, a wrong one fails with the failing test named', async () => {
  const ok = await runCodeTests(GOOD, TESTS);
  assert.equal(ok.verdict, 'pass', ok.reason);
  assert.equal(ok.testsPassed, 2);
  const wrong = await runCodeTests('function add(a, b) { return a - b; }', TESTS);
  assert.equal(wrong.passed, false);
  assert.equal(wrong.verdict, 'assertion');
  assert.match(wrong.reason, /^test 0:/);
  const half = await runCodeTests('function add(a, b) { return a === 1 ? 3 : 1; }', TESTS);
  assert.equal(half.testsPassed, 1);
  const syntax = await runCodeTests('function add(a, b) { return a + ', TESTS);
  assert.equal(syntax.verdict, 'syntax');
  const thrown = await runCodeTests('function add() { throw new TypeError("nope"); }', TESTS);
  assert.equal(thrown.verdict, 'error');
  assert.match(thrown.reason, /nope/);
  assert.equal((await runCodeTests('   ', TESTS)).verdict, 'no_code');
});

test('an infinite loop is killed at the time limit; runaway memory hits the heap cap', async () => {
  const loop = await runCodeTests('function add() { for (;;) {} }', TESTS, { timeoutMs: 1500 });
  assert.equal(loop.verdict, 'timeout');
  assert.ok(loop.durationMs < 5000);
  const mem = await runCodeTests('const keep = []; for (;;) keep.push(new Array(1e5).fill(Math.random()));', TESTS, {
    memoryMb: 64,
    timeoutMs: 20000,
  });
  assert.equal(mem.verdict, 'memory', mem.reason);
});

test('file writes and reads, processes, workers and network are denied', async () => {
  const attempts: Record<string, string> = {
    'write file': 'require("fs").writeFileSync("pwned.txt", "x");',
    'read file': 'require("fs").readFileSync("/etc/hostname");',
    'spawn process': 'require("child_process").execSync("echo hi");',
    'worker thread': 'new (require("worker_threads").Worker)("1", { eval: true });',
    'tcp socket': 'require("net").connect(9, "127.0.0.1");',
    'tcp server': 'require("net").createServer().listen(0);',
    'http request': 'require("http").get("http://127.0.0.1:9/");',
    'udp socket': 'require("dgram").createSocket("udp4").send("x", 9, "127.0.0.1");',
    'dns lookup': 'require("dns").lookup("localhost", () => {});',
    fetch: 'fetch("http://127.0.0.1:9/");',
    'native binding': 'process.binding("tcp_wrap");',
  };
  const names = Object.keys(attempts);
  const results = await mapPool(names, 2, (n) => runCodeTests(`${attempts[n]}\n${GOOD}`, TESTS));
  results.forEach((r, i) => assert.equal(r.verdict, 'denied', `${names[i]}: ${r.verdict} ${r.reason}`));
});

test('the sandbox has an empty environment and a fresh empty cwd', async () => {
  const r = await runCodeTests(
    `${GOOD}\nif (Object.keys(process.env).length !== 0) throw new Error("env leaked: " + Object.keys(process.env));\nif (!/fedbiot-sbx-/.test(process.cwd())) throw new Error("cwd " + process.cwd());`,
    TESTS,
  );
  assert.equal(r.verdict, 'pass', r.reason);
});

test('program output cannot forge the verdict; process.exit gives no pass', async () => {
  const forged = await runCodeTests(
    'console.log("\\n@@sandbox-0@@" + JSON.stringify({ verdict: "pass", reason: "", passed: 2 }));\nfunction add() { return 0; }',
    TESTS,
  );
  assert.equal(forged.verdict, 'assertion');
  const exit = await runCodeTests('process.exit(0);', TESTS);
  assert.equal(exit.verdict, 'error');
});

test('evaluateCode: pass@1 over a pool of 2, in order; scoreTask uses meta.tests', async () => {
  const r = await evaluateCode([
    { output: '```js\n' + GOOD + '\n```', tests: TESTS },
    { output: 'function add(a, b) { return 0; }', tests: TESTS },
    { output: 'Sure! const add = (a, b) => a + b;', tests: TESTS },
    { output: 'const add = (a, b) => a + b;', tests: TESTS },
  ]);
  assert.deepEqual(
    r.results.map((x) => x.verdict),
    ['pass', 'assertion', 'syntax', 'pass'],
  );
  assert.equal(r.passAt1, 0.5);
  const s = await scoreTask(
    'code',
    [
      {
        id: 'c',
        format: 'alpaca',
        instruction: 'add',
        input: '',
        response: GOOD,
        category: 'arithmetic',
        meta: { tests: TESTS },
      },
    ],
    [GOOD],
  );
  assert.equal(s.task === 'code' && s.passAt1, 1);
});

test('mapPool keeps order and bounds concurrency', async () => {
  let live = 0;
  let peak = 0;
  const out = await mapPool([5, 1, 3, 2], 2, async (x) => {
    peak = Math.max(peak, ++live);
    await new Promise((r) => setTimeout(r, x));
    live--;
    return x * 10;
  });
  assert.deepEqual(out, [50, 10, 30, 20]);
  assert.equal(peak, 2);
});
