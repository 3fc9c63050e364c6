// A deployed server's config holds no client data: it is refused when it names data.train, the
// server builds only the model, its evaluation set and the public data; a client's own file is
// checked with errors that name the file and line, and `fedbiot client --check` prints the count to
// register. Simulated and networked clients prepare their data with the same function.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/config/load.js';
import { buildExperiment, buildServerData, clientShares } from '../../src/fl/experiment.js';
import { FedServer } from '../../src/fl/net/server.js';
import { loadClientData, prepareClientData, writeExamples, writeShares } from '../../src/data/client-data.js';
import { TINY_RUN } from '../helpers/tiny-run.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'fedbiot-server-data-'));

test('a deployed server refuses client data in its config and builds only its own part', async () => {
  const dir = tmp();
  const exp = await buildExperiment(loadConfig(null, [...TINY_RUN]));
  const train = path.join(dir, 'train.jsonl');
  const evalFile = path.join(dir, 'eval.jsonl');
  writeExamples(train, exp.train);
  writeExamples(evalFile, exp.test);
  const withTrain = loadConfig(null, [...TINY_RUN, `data.train=${train}`]);
  await assert.rejects(buildServerData(withTrain), (e: Error) => {
    assert.match(e.message, /^config data\.train \(.*train\.jsonl\): a deployed server does not read/);
    assert.match(e.message, /fedbiot client --data FILE --format F/);
    return true;
  });
  // FedServer refuses it before it touches its state folder.
  const state = path.join(dir, 'state');
  await assert.rejects(new FedServer(withTrain, state, () => {}).run(), /config data\.train/);
  assert.equal(fs.existsSync(state), false);
  const noEval = loadConfig(null, [...TINY_RUN.filter((x) => !x.startsWith('data.task=')), 'rounds=1']);
  await assert.rejects(buildServerData(noEval), /a deployed server needs its evaluation set: data\.test/);

  // Only an evaluation file and public families: the server's part equals the simulation's.
  const server = await buildServerData(
    loadConfig(null, [
      ...TINY_RUN.filter((x) => !/^data\.(task|public)=/.test(x)),
      `data.test=${evalFile}`,
      'data.public={source: tasks, size: 8, tasks: [code, qa]}',
    ]),
  );
  assert.equal('train' in server || 'clients' in server, false);
  assert.deepEqual(
    server.test.map((e) => [e.instruction, e.response]),
    exp.test.map((e) => [e.instruction, e.response]),
  );
  assert.deepEqual(server.public, exp.public);

  // The example server config is a valid one, and the server twin of examples/tiny.yaml.
  const deploy = await buildServerData(loadConfig(path.join(ROOT, 'examples', 'deploy-server.yaml')));
  const tiny = await buildExperiment(loadConfig(path.join(ROOT, 'examples', 'tiny.yaml')));
  assert.deepEqual([deploy.test, deploy.public], [tiny.test, tiny.public]);
});

test("a client's own file: errors and warnings name it, --check prints the size to register", async () => {
  const dir = tmp();
  const exp = await buildExperiment(loadConfig(null, [...TINY_RUN]));
  const [file] = writeShares(clientShares(exp), dir).map((s) => s.file);
  fs.appendFileSync(file!, '{"instruction": "no response here"}\n');
  const own = loadClientData(file!, 'alpaca');
  assert.equal(own.examples.length, exp.clients[0]!.length);
  assert.match(own.warnings[0]!, /client-0\.jsonl: skipped 1 invalid record\(s\) of \d+ \(line \d+ /);
  assert.throws(() => loadClientData(path.join(dir, 'missing.jsonl'), 'auto'), /missing\.jsonl: no such data file/);
  // Records of another form than the one the client says: every record is refused, by line.
  assert.throws(
    () => loadClientData(file!, 'gsm8k'),
    /client-0\.jsonl: none of its \d+ record\(s\) is a valid gsm8k record \(line 1 /,
  );
  // Nothing left after encoding: the error names the file.
  const long = loadClientData(file!, 'alpaca').examples.map((e) => ({ ...e, instruction: 'x'.repeat(2000) }));
  assert.throws(
    () => prepareClientData(long, exp.tokenizer, { maxLength: 64, batchSize: 2, seed: 1 }, file!),
    /client-0\.jsonl: no usable example after encoding/,
  );

  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', 'src/cli/run-dev.ts', 'client', '--data', file!, '--format', 'alpaca', '--check'],
    { cwd: ROOT, encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), String(exp.clients[0]!.length));
  assert.match(r.stderr, /skipped 1 invalid record/);
  assert.match(r.stderr, new RegExp(`add-client NAME --samples ${exp.clients[0]!.length}`));
});
