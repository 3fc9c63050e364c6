// The tape's backward hands each activation's gradient back to the pool once its node has run, so
// a deep graph's backward holds the activations plus a few gradients, not one gradient per activation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { liveTensorBytes, peakTensorBytes, resetPeakTensorBytes } from '../../src/tensor/engine.js';
import { tape, Tensor } from '../../src/tensor/tensor.js';
import { nmse, scale } from '../../src/tensor/ops.js';

test('backward of a 24-op chain: gradients are right and at most a few gradient buffers live at once', () => {
  const n = 1 << 18; // 1 MiB per tensor
  const x = Tensor.param(new Float32Array(n).fill(0.5), [n], 'x');
  const teacher = new Float32Array(n).fill(1);
  tape.reset();
  resetPeakTensorBytes();
  let h = x;
  for (let i = 0; i < 24; i++) h = scale(h, 1.01, `s${i}`);
  const loss = nmse(h, teacher);
  const afterForward = liveTensorBytes();
  assert.ok(afterForward >= 24 * n * 4, `${afterForward} B of activations`);
  tape.backward(loss);
  const peak = peakTensorBytes();
  assert.ok(peak <= afterForward + 3 * n * 4, `peak ${peak} B against ${afterForward} B of activations`);
  // d/dx of sum((1 - c x)^2) / n with c = 1.01^24
  const c = 1.01 ** 24;
  const want = (-2 * c * (1 - c * 0.5)) / n;
  assert.ok(Math.abs(x.grad![0]! - want) <= 1e-5 * Math.abs(want), `${x.grad![0]} vs ${want}`);
  assert.equal(h.grad, null, 'the intermediate gradient went back to the pool');
  tape.reset();
});
