// Central finite differences of a scalar function of parameters, against the gradients the tape
// computes: the check behind every model-level gradient test (run it in the float64 engine).
import assert from 'node:assert/strict';
import { tape, noGrad, type Tensor } from '../../src/tensor/tensor.js';

export function checkGradients(params: readonly Tensor[], f: () => Tensor, tol = 1e-6, h = 1e-6): void {
  tape.reset();
  for (const p of params) p.zeroGrad();
  tape.backward(f());
  const analytic = params.map((p) => Float64Array.from(p.grad ?? new Float64Array(p.size)));
  tape.reset();
  params.forEach((p, pi) => {
    for (let i = 0; i < p.size; i++) {
      const old = p.data[i]!;
      p.data[i] = old + h;
      const fp = noGrad(() => f().item());
      p.data[i] = old - h;
      const fm = noGrad(() => f().item());
      p.data[i] = old;
      tape.reset();
      const num = (fp - fm) / (2 * h);
      const err = Math.abs(num - analytic[pi]![i]!) / Math.max(1, Math.abs(num));
      assert.ok(err < tol, `${p.name}[${i}]: analytic ${analytic[pi]![i]} vs numeric ${num}`);
    }
  });
}
