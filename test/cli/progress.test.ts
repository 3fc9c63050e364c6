// Progress off a terminal: a plain line at each quarter with the elapsed time and an ETA, no
// escape codes (logs and CI keep them readable).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { terminalProgress } from '../../src/cli/progress.js';

test('progress: plain lines with elapsed time and ETA when not a TTY', async () => {
  const sink = new PassThrough();
  let out = '';
  sink.on('data', (d: Buffer) => (out += d.toString('utf8')));
  const p = terminalProgress(sink as unknown as NodeJS.WriteStream);
  p.start('round 1/2', 8);
  for (let i = 0; i < 8; i++) {
    await new Promise((r) => setTimeout(r, 5));
    p.tick({ loss: (1 - i / 10).toFixed(2) });
  }
  p.stop();
  p.log('done');
  const lines = out.trim().split('\n');
  assert.deepEqual(
    lines.map((l) => l.split(':')[0]),
    ['round 1/2', 'round 1/2', 'round 1/2', 'round 1/2', 'done'],
  );
  for (const l of lines.slice(0, 4)) assert.match(l, /^round 1\/2: \d\/8, \d+ ms elapsed, eta \d+ ms loss=\d\.\d\d$/);
  assert.ok(!out.includes('\x1b['), 'no terminal escape codes');
});
