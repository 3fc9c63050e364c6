// Optimiser steps against numbers worked out by hand, on both implementations; and kernel
// selection (FEDBIOT_KERNELS=reference forces the reference).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Kernels } from '../../src/kernels/api.js';
import { getKernels, loadNativeKernels, referenceKernels } from '../../src/kernels/index.js';
import { assertClose } from './helpers.js';

const impls: [string, Kernels<Float32Array> | null][] = [
  ['reference', referenceKernels<Float32Array>()],
  ['native', loadNativeKernels()],
];
const TOL = { atol: 1e-7, rtol: 1e-6 };

for (const [name, k] of impls) {
  test(`${name}: adamw matches a hand-computed step`, { skip: !k && 'native addon not loaded' }, () => {
    // Two parameters, step 2, lr 0.1, betas (0.9, 0.99), eps 1e-8, wd 0.5, gradScale 2.
    const param = Float32Array.from([1, -2]),
      grad = Float32Array.from([0.5, -1]);
    const m = Float32Array.from([0.1, 0]),
      v = Float32Array.from([0.01, 0]);
    k!.adamwStep({
      param,
      grad,
      m,
      v,
      n: 2,
      lr: 0.1,
      beta1: 0.9,
      beta2: 0.99,
      eps: 1e-8,
      weightDecay: 0.5,
      step: 2,
      gradScale: 2,
    });
    // g = [1, -2]; m = 0.9 m + 0.1 g = [0.19, -0.2]; v = 0.99 v + 0.01 g^2 = [0.0199, 0.04]
    // mhat = m / (1 - 0.81) = m / 0.19; vhat = v / (1 - 0.9801) = v / 0.0199
    // param = param * (1 - 0.1 * 0.5) - 0.1 * mhat / (sqrt(vhat) + eps)
    const mhat = [0.19 / 0.19, -0.2 / 0.19],
      vhat = [0.0199 / 0.0199, 0.04 / 0.0199];
    const want = [
      1 * 0.95 - (0.1 * mhat[0]!) / (Math.sqrt(vhat[0]!) + 1e-8),
      -2 * 0.95 - (0.1 * mhat[1]!) / (Math.sqrt(vhat[1]!) + 1e-8),
    ];
    assertClose(m, [0.19, -0.2], TOL, 'm');
    assertClose(v, [0.0199, 0.04], TOL, 'v');
    assertClose(param, want, TOL, 'param');
  });

  test(`${name}: sgd with momentum and weight decay matches a hand-computed step`, {
    skip: !k && 'native addon not loaded',
  }, () => {
    const param = Float32Array.from([1, -1]),
      grad = Float32Array.from([0.5, 2]),
      buf = Float32Array.from([0.2, 0]);
    k!.sgdStep({ param, grad, buf, n: 2, lr: 0.1, momentum: 0.9, weightDecay: 0.1, gradScale: 0.5 });
    // g = grad * 0.5 + 0.1 * param = [0.35, 0.9]; buf = 0.9 buf + g = [0.53, 0.9]; param -= 0.1 buf
    assertClose(buf, [0.53, 0.9], TOL, 'buf');
    assertClose(param, [1 - 0.053, -1 - 0.09], TOL, 'param');
    const p2 = Float32Array.from([3]);
    k!.sgdStep({
      param: p2,
      grad: Float32Array.from([1]),
      buf: null,
      n: 1,
      lr: 0.5,
      momentum: 0,
      weightDecay: 0,
      gradScale: 1,
    });
    assertClose(p2, [2.5], TOL, 'plain sgd');
  });
}

test('getKernels: FEDBIOT_KERNELS=reference forces the reference kernels', () => {
  const old = process.env['FEDBIOT_KERNELS'];
  process.env['FEDBIOT_KERNELS'] = 'reference';
  try {
    assert.equal(getKernels().name, 'reference');
  } finally {
    if (old === undefined) delete process.env['FEDBIOT_KERNELS'];
    else process.env['FEDBIOT_KERNELS'] = old;
  }
  const k = getKernels();
  assert.equal(k.name, loadNativeKernels() ? 'native' : 'reference');
});
