/**
 * The model commands end to end, spawned as a user runs them (node --import tsx src/cli/run-dev.ts):
 * score --json against an in-process computation, generate --greedy (deterministic, equal to the
 * engine's generate), export merge / peft / gguf, and clear errors for bad input.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadHfModel, saveAdapterAsPeft } from '../../src/models/hf-model.js';
import { attachPeftAdapter } from '../../src/models/adapter.js';
import { captureLora } from '../../src/fedbiot/lora-state.js';
import { readLlamaGguf, readLoraGguf } from '../../src/io/gguf-llama.js';
import { readPeftAdapter } from '../../src/io/peft.js';
import { saveCheckpoint } from '../../src/fl/checkpoint.js';
import { generate } from '../../src/nn/generate.js';
import { IncrementalDecoder } from '../../src/cli/generate.js';
import {
  logitsOf,
  maxAbsDiff,
  randomizeLoraB,
  saveFixtureFolder,
  tinyModel,
  tinyTokenizer,
  tmpDir,
} from '../models/fixture.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', path.join(root, 'src/cli/run-dev.ts'), ...args],
      { cwd: root, env: { ...process.env, FEDBIOT_THREADS: '1' } },
      (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
      },
    );
  });
}

// fixture: a model folder and a PEFT adapter for it
const base = tinyModel(21);
const modelDir = saveFixtureFolder(base);
const withLora = loadHfModel(modelDir);
withLora.attachLora({ r: 4, alpha: 16, dropout: 0, targets: ['q_proj', 'v_proj', 'up_proj'] }, 3);
randomizeLoraB(withLora, 4);
const adapterDir = tmpDir();
saveAdapterAsPeft(captureLora(withLora.layers), adapterDir, { r: 4, alpha: 16, dropout: 0, baseModel: modelDir });
const TEXT = 'Call me Ishmael. Some years ago, 東京 🙂';

/** Independent NLL: log-softmax in float64 over our all-position logits. */
function refNll(model: ReturnType<typeof loadHfModel>, ids: number[]): number {
  const V = model.config.vocabSize;
  const l = logitsOf(model, ids);
  let s = 0;
  for (let i = 1; i < ids.length; i++) {
    const row = Array.from(l.subarray((i - 1) * V, i * V));
    const mx = Math.max(...row);
    const lse = mx + Math.log(row.reduce((a, v) => a + Math.exp(v - mx), 0));
    s += lse - row[ids[i]!]!;
  }
  return s / (ids.length - 1);
}

test('score --json: one JSON object; tokens with BOS; nll equals an in-process computation', async () => {
  const r = await cli(['score', '--model', modelDir, '--text', TEXT, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 1);
  const j = JSON.parse(lines[0]!) as { tokens: number[]; nll: number; n: number };
  assert.deepEqual(Object.keys(j).sort(), ['n', 'nll', 'tokens']);
  const { tok } = tinyTokenizer();
  assert.deepEqual(j.tokens, tok.encode(TEXT));
  assert.equal(j.tokens[0], tok.bosId);
  assert.equal(j.n, j.tokens.length);
  const ref = refNll(loadHfModel(modelDir), j.tokens);
  assert.ok(Math.abs(j.nll - ref) < 1e-6 * Math.max(1, ref), `nll ${j.nll} vs ${ref}`);

  const ra = await cli(['score', '--model', modelDir, '--adapter', adapterDir, '--text', TEXT, '--json']);
  assert.equal(ra.code, 0, ra.stderr);
  const ja = JSON.parse(ra.stdout) as { nll: number };
  const m2 = loadHfModel(modelDir);
  attachPeftAdapter(m2, adapterDir);
  const refA = refNll(m2, j.tokens);
  assert.ok(Math.abs(ja.nll - refA) < 1e-6 * Math.max(1, refA), `adapter nll ${ja.nll} vs ${refA}`);
  assert.ok(Math.abs(ja.nll - j.nll) > 1e-3, 'the adapter changes the score');
});

test('generate --greedy: deterministic, equal to the engine, streamed text decodes the tokens', async () => {
  const args = [
    'generate',
    '--model',
    modelDir,
    '--prompt',
    'It was the best of times',
    '--max-new-tokens',
    '24',
    '--greedy',
  ];
  const [a, b] = await Promise.all([cli(args), cli(args)]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(a.stdout, b.stdout);
  const { tok } = tinyTokenizer();
  const ids = generate(loadHfModel(modelDir), tok.encode('It was the best of times'), {
    maxNewTokens: 24,
    greedy: true,
    stopIds: [tok.eosId!],
  });
  assert.equal(a.stdout, tok.decode(ids, { skipSpecial: true }) + '\n');
  const s = await cli([
    'generate',
    '--model',
    modelDir,
    '--adapter',
    adapterDir,
    '--prompt',
    'We the people',
    '--max-new-tokens',
    '8',
    '--temperature',
    '0.8',
    '--top-p',
    '0.9',
    '--top-k',
    '40',
    '--seed',
    '5',
  ]);
  assert.equal(s.code, 0, s.stderr);
  const bad = await cli(['generate', '--model', modelDir, '--prompt', 'x', '--top-p', '2']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /--top-p must be in \(0, 1\], got '2'/);
});

test('incremental decoding holds back incomplete UTF-8 and prints each character once', () => {
  const { tok } = tinyTokenizer();
  const text = 'naïve 東京 🙂 done';
  const ids = tok.encode(text, { addSpecial: false });
  const dec = new IncrementalDecoder((x) => tok.decode(x));
  let out = '';
  for (const id of ids) {
    const d = dec.push(id);
    assert.ok(!d.includes('\uFFFD'), `no replacement characters mid-stream: ${JSON.stringify(d)}`);
    out += d;
  }
  out += dec.flush();
  assert.equal(out, text);
});

test('export merge: the merged folder scores like model + adapter; tokenizer copied; bf16 option', async () => {
  const out = path.join(tmpDir(), 'merged');
  const r = await cli(['export', 'merge', '--model', modelDir, '--adapter', adapterDir, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'])
    assert.ok(fs.existsSync(path.join(out, f)), f);
  const [sm, sa] = await Promise.all([
    cli(['score', '--model', out, '--text', TEXT, '--json']),
    cli(['score', '--model', modelDir, '--adapter', adapterDir, '--text', TEXT, '--json']),
  ]);
  const jm = JSON.parse(sm.stdout) as { nll: number; tokens: number[] };
  const ja = JSON.parse(sa.stdout) as { nll: number; tokens: number[] };
  assert.deepEqual(jm.tokens, ja.tokens);
  // merging changes only float rounding: 1e-5 relative on the mean NLL
  assert.ok(Math.abs(jm.nll - ja.nll) < 1e-5 * ja.nll, `merged ${jm.nll} vs adapter ${ja.nll}`);
  const out16 = path.join(tmpDir(), 'merged16');
  const r16 = await cli([
    'export',
    'merge',
    '--model',
    modelDir,
    '--adapter',
    adapterDir,
    '--out',
    out16,
    '--dtype',
    'bf16',
  ]);
  assert.equal(r16.code, 0, r16.stderr);
  assert.equal(JSON.parse(fs.readFileSync(path.join(out16, 'config.json'), 'utf8')).torch_dtype, 'bfloat16');
});

test('export gguf: merged by default, or base + LoRA GGUF with --adapter-out; weights read back', async () => {
  const dir = tmpDir();
  const merged = path.join(dir, 'merged.gguf');
  const r = await cli(['export', 'gguf', '--model', modelDir, '--adapter', adapterDir, '--out', merged]);
  assert.equal(r.code, 0, r.stderr);
  const g = readLlamaGguf(merged);
  g.reader.close();
  const ref = loadHfModel(modelDir);
  attachPeftAdapter(ref, adapterDir);
  for (const l of ref.layers) for (const lin of Object.values(l.linears)) lin.merge();
  for (const [name, t] of ref.baseTensors()) assert.equal(maxAbsDiff(g.tensors.get(name)!.data, t.data), 0, name);

  const b = path.join(dir, 'base.gguf');
  const lo = path.join(dir, 'lora.gguf');
  const r2 = await cli([
    'export',
    'gguf',
    '--model',
    modelDir,
    '--adapter',
    adapterDir,
    '--out',
    b,
    '--adapter-out',
    lo,
    '--dtype',
    'f16',
  ]);
  assert.equal(r2.code, 0, r2.stderr);
  const gb = readLlamaGguf(b);
  gb.reader.close();
  const q = gb.tensors.get('model.layers.0.self_attn.q_proj.weight')!;
  assert.ok(maxAbsDiff(q.data, base.layers[0]!.linears.q_proj.thaw().data) < 1e-3, 'base stays unmerged (f16)');
  const lora = readLoraGguf(lo, gb.config);
  assert.equal(lora.alpha, 16);
  const peft = readPeftAdapter(adapterDir);
  for (const [mp, p] of peft.tensors) {
    assert.equal(maxAbsDiff(lora.tensors.get(mp)!.A.data, p.A.data), 0);
    assert.equal(maxAbsDiff(lora.tensors.get(mp)!.B.data, p.B.data), 0);
  }
  const bad = await cli(['export', 'gguf', '--model', modelDir, '--out', path.join(dir, 'x.gguf'), '--dtype', 'q4']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /--dtype must be one of f32, f16, got 'q4'/);
});

test('export peft: from a finished run (adapter/) and from a checkpoint', async () => {
  const run = tmpDir();
  fs.cpSync(adapterDir, path.join(run, 'adapter'), { recursive: true });
  const out = path.join(tmpDir(), 'peft');
  const r = await cli(['export', 'peft', '--run', run, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const m = loadHfModel(modelDir);
  attachPeftAdapter(m, out);
  const ids = tinyTokenizer().tok.encode(TEXT);
  assert.equal(maxAbsDiff(logitsOf(m, ids), logitsOf(withLora, ids)), 0);

  const run2 = tmpDir();
  saveCheckpoint(path.join(run2, 'checkpoints'), {
    completedRounds: 3,
    emulatorVersion: 1,
    adapter: captureLora(withLora.layers),
    emulator: null,
    clients: new Map(),
    extra: {},
  });
  fs.writeFileSync(
    path.join(run2, 'config.resolved.json'),
    JSON.stringify({ algorithm: { adapterLora: { r: 4, alpha: 16, dropout: 0 } }, model: {} }),
  );
  const out2 = path.join(tmpDir(), 'peft2');
  const r2 = await cli(['export', 'peft', '--run', run2, '--out', out2]);
  assert.equal(r2.code, 0, r2.stderr);
  const m2 = loadHfModel(modelDir);
  attachPeftAdapter(m2, out2);
  assert.equal(maxAbsDiff(logitsOf(m2, ids), logitsOf(withLora, ids)), 0);

  const r3 = await cli(['export', 'peft', '--run', tmpDir(), '--out', out2]);
  assert.notEqual(r3.code, 0);
  assert.match(r3.stderr, /neither .*adapter_config\.json.*nor .*latest\.json/);
});

test('errors name the flag and the file', async () => {
  const missing = await cli(['score', '--model', '/nonexistent/model', '--text', 'x', '--json']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /--model \/nonexistent\/model: folder does not exist/);
  const wider = saveFixtureFolder(tinyModel(9, { hiddenSize: 48 }));
  const misfit = await cli(['score', '--model', wider, '--adapter', adapterDir, '--text', 'x y', '--json']);
  assert.equal(misfit.code, 1);
  assert.match(
    misfit.stderr,
    /--adapter .*adapter_model\.safetensors.*LoRA maps 32 -> 32 but the base layer maps 48 -> 48/,
  );
  const noTok = tmpDir();
  fs.copyFileSync(path.join(modelDir, 'config.json'), path.join(noTok, 'config.json'));
  fs.copyFileSync(path.join(modelDir, 'model.safetensors'), path.join(noTok, 'model.safetensors'));
  const nt = await cli(['export', 'gguf', '--model', noTok, '--out', path.join(noTok, 'm.gguf')]);
  assert.equal(nt.code, 1);
  assert.match(nt.stderr, /tokenizer\.json.*missing/);
  const same = await cli(['export', 'merge', '--model', modelDir, '--adapter', adapterDir, '--out', modelDir]);
  assert.match(same.stderr, /--out .* must differ from --model/);
});
