// The compressed model download: chunked with HTTP Range, resumed after an interruption, verified
// by sha256, cached for the next run; and it holds only the compressed model's layers.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setup, cli, serverArgs, killAll } from './helpers.js';
import { fetchModel } from '../../src/fl/net/client.js';
import { modelCacheDir } from '../../src/fl/net/download.js';
import { sha256File } from '../../src/fl/net/artifact.js';

after(killAll);

test('net: an interrupted model download resumes instead of restarting', { timeout: 90_000 }, async () => {
  const s = await setup({ rounds: 1, clients: ['0'], server: { minClients: 5 } });
  const server = cli('server', serverArgs(s));
  await server.waitFor(/listening on/, 30_000);
  const cache = path.join(s.dir, 'cache');
  const o = { server: s.url, token: s.tokens['0']!, cache };
  let chunks = 0;
  await assert.rejects(
    fetchModel({
      ...o,
      download: {
        chunkBytes: 1024,
        onChunk: (f) => {
          if (f === 'model.safetensors' && ++chunks === 3) throw new Error('connection lost (simulated)');
        },
      },
    }),
    /connection lost/,
  );
  const second = await fetchModel({ ...o, download: { chunkBytes: 1024 } });
  const dir = modelCacheDir(cache, second.join.model);
  const modelFile = second.join.model.files.find((f) => f.name === 'model.safetensors')!;
  assert.equal(second.report.resumed, 3 * 1024, 'kept the 3 chunks already on disk');
  assert.equal(
    second.report.fetched,
    modelFile.size -
      3 * 1024 +
      second.join.model.files.filter((f) => f.name > 'model.safetensors').reduce((a, f) => a + f.size, 0),
  );
  for (const f of second.join.model.files) assert.equal(sha256File(path.join(dir, f.name)), f.sha256);
  const third = await fetchModel({ ...o, download: { chunkBytes: 1024 } });
  assert.equal(third.report.fetched, 0);
  assert.equal(third.report.cached, third.join.model.files.length);
  // Only the compressed model: 2 adapter layers + 2 of the 4 middle layers (dropRate 0.5), never 6.
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { num_hidden_layers: number };
  assert.equal(config.num_hidden_layers, 4);
  server.kill9();
  await server.exit(10_000);
});
