// The RDP accountant against published values: TensorFlow Privacy's tests of the Sampled Gaussian
// Mechanism and its DP-SGD statements (computed there with scipy and mpmath), and the exact
// Gaussian mechanism at (1, 1e-6).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  computeRdp,
  epsilonFor,
  epsilonFromRdp,
  noiseForEpsilon,
  RdpAccountant,
  sgmRdp,
} from '../../src/privacy/accountant.js';
import { erfc, logErfc, normalInverse } from '../../src/util/normal.js';

const close = (a: number, b: number, tol: number, what: string) =>
  assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b} (tol ${tol})`);

test('erfc and the normal quantile match tabulated values, far into the tail', () => {
  close(erfc(0.5), 0.4795001221869535, 1e-15, 'erfc(0.5)');
  close(erfc(1), 0.157299207050285, 1e-15, 'erfc(1)');
  close(erfc(3) / 2.209049699858544e-5, 1, 1e-13, 'erfc(3)');
  close(erfc(-1.5), 1.9661051464753108, 1e-15, 'erfc(-1.5)');
  close(erfc(10) / 2.088487583762545e-45, 1, 1e-12, 'erfc(10)');
  // log erfc(30) where erfc itself underflows: -x^2 - log(x sqrt(pi)) - 1/(2x^2) + ...
  close(
    logErfc(30),
    -900 - Math.log(30 * Math.sqrt(Math.PI)) - 1 / 1800 + 0.625 / 30 ** 4 - 37 / 24 / 30 ** 6 + 353 / 64 / 30 ** 8,
    1e-11,
    'log erfc(30)',
  );
  close(normalInverse(0.975), 1.959963984540054, 1e-12, 'z(0.975)');
  close(normalInverse(1e-10), -6.361340902404056, 1e-9, 'z(1e-10)');
  assert.equal(normalInverse(0.5), 0);
});

test('RDP of the Sampled Gaussian Mechanism: TensorFlow Privacy reference values', () => {
  assert.equal(sgmRdp(0, 10, 20), 0);
  assert.equal(sgmRdp(1, 10, 20), 0.1); // no sampling: a / (2 sigma^2)
  close(computeRdp(0.1, 2, 10, [5])[0]!, 0.07737, 1e-5, 'q 0.1 sigma 2 x10 order 5');
  const want = [0.00065, 0.001085, 0.00218075, 0.023846, 167.416307];
  computeRdp(0.01, 2.5, 50, [1.5, 2.5, 5, 50, 100]).forEach((r, k) =>
    close(r, want[k]!, 1e-5, `order ${[1.5, 2.5, 5, 50, 100][k]}`),
  );
});

test('epsilon conversion and DP-SGD statements match the published numbers', () => {
  // Constant RDP 1.1 over orders 2..32: the largest order wins, eps = 1.32783806176.
  const orders = Array.from({ length: 31 }, (_, i) => i + 2);
  const r = epsilonFromRdp(
    orders,
    orders.map(() => 1.1),
    1e-5,
  );
  close(r.epsilon, 1.32783806176, 1e-9, 'constant RDP');
  assert.equal(r.order, 32);
  // compute_dp_sgd_privacy(n=60000, batch=150, noise=1.3, epochs=15, delta=1e-5) = 0.7242234026109595 at order 19.
  const a = epsilonFor(150 / 60000, 1.3, 6000, 1e-5);
  close(a.epsilon, 0.7242234026109595, 1e-9, 'MNIST-like DP-SGD');
  assert.equal(a.order, 19);
  // (n=100000, batch=100, noise=1.0, epochs=30, delta=1e-7) = 1.4154988495444842 at order 13.
  const b = epsilonFor(100 / 100000, 1.0, 30000, 1e-7);
  close(b.epsilon, 1.4154988495444842, 1e-9, 'second statement');
  assert.equal(b.order, 13);
  // The Gaussian mechanism with sigma 4.530877117 is (1, 1e-6)-DP (fine grid of orders).
  const fine = Array.from({ length: 9899 }, (_, i) => 1.01 + 0.01 * i);
  close(epsilonFromRdp(fine, computeRdp(1, 4.530877117, 1, fine), 1e-6).epsilon, 1, 1e-4, 'Gaussian (1, 1e-6)');
});

test('targetEpsilon solves for the noise multiplier; the running accountant composes rounds', () => {
  const z = noiseForEpsilon(0.7242234026109595, 150 / 60000, 6000, 1e-5);
  close(z, 1.3, 1e-5, 'noise for the MNIST statement');
  assert.ok(epsilonFor(150 / 60000, z, 6000, 1e-5).epsilon <= 0.7242234026109595);
  const acc = new RdpAccountant();
  for (let i = 0; i < 10; i++) acc.step(0.25, 1.1);
  close(acc.epsilon(1e-5), epsilonFor(0.25, 1.1, 10, 1e-5).epsilon, 1e-12, 'composition');
  const resumed = new RdpAccountant(undefined, acc.rdp);
  resumed.step(0.25, 1.1);
  close(resumed.epsilon(1e-5), epsilonFor(0.25, 1.1, 11, 1e-5).epsilon, 1e-12, 'resumed');
  assert.equal(new RdpAccountant().epsilon(1e-5), 0);
  const none = new RdpAccountant();
  none.step(0.5, 0);
  assert.equal(none.epsilon(1e-5), Infinity);
});
