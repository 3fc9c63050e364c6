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
  // Durations switch from ms to s past a second, which a loaded machine reaches.
  const duration = String.raw`(?:\d+ ms|\d+(?:\.\d+)? s)`;
  const line = new RegExp(String.raw`^round 1/2: \d/8, ${duration} elapsed, eta ${duration} loss=\d\.\d\d$`);
  for (const l of lines.slice(0, 4)) assert.match(l, line);
  assert.ok(!out.includes('\x1b['), 'no terminal escape codes');
});
