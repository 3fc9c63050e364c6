// Fused linear groups (q/k/v, gate/up): weightGroupGemm (several weights in one gemm, side by side
// along N for the forward, stacked along the summed dimension for the input gradient) against the
// float64 reference on every gemm path, and linearGroup against separate linear layers and finite
// differences (trainable f32 weights, stored formats, LoRA with dropout, an unused output).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { GroupPart } from '../../src/kernels/api.js';
import { gemmPaths, loadNativeKernels, nativeLoadError, setGemmPath } from '../../src/kernels/native.js';
import { referenceKernels } from '../../src/kernels/reference.js';
import { decodeWeight, encodeWeight, type WeightFormat } from '../../src/kernels/weights.js';
import { FrozenWeight } from '../../src/tensor/frozen.js';
import { Tensor, tape } from '../../src/tensor/tensor.js';
import { add, linear, linearGroup, loraLinear, nmse, type Weight } from '../../src/tensor/ops.js';
import { useReference64 } from '../../src/tensor/engine.js';
import { checkGradients } from '../helpers/finite-diff.js';
import { assertClose, assertWithin, int8ActivationBound, randn, rng } from './helpers.js';

const native = loadNativeKernels();
const ref = referenceKernels<Float64Array>();
const skip = native ? false : `native addon not loaded: ${nativeLoadError()}`;
const paths = native ? gemmPaths() : ['none'];

// Part sizes that are not multiples of any micro-kernel width (16, 32), a summed dimension past one
// KC block (256) with segment boundaries inside blocks, mixed weight formats, and quantized rows
// whose last 32-value block is partial.
// One part per [N, format]: f32 parts are passed as plain arrays, the others as stored bytes.
const groupCase = (M: number, K: number, ...parts: [number, WeightFormat][]) => ({
  M,
  K,
  parts: parts.map(([N, format]) => ({ N, format, dense: format === 'f32' })),
});
const cases = [
  groupCase(37, 96, [40, 'f32'], [72, 'bf16'], [33, 'f32']),
  groupCase(150, 64, [200, 'f32'], [100, 'q8_0'], [300, 'f16']),
  groupCase(3, 64, [20, 'f32'], [24, 'q4_0']),
  // rows that end in a partial 32-value block (K = 8.75 blocks), past one KC block, and on the
  // matrix-vector path (K = 1.25 blocks)
  groupCase(40, 280, [50, 'q8_0'], [30, 'f32'], [70, 'q4_0']),
  groupCase(2, 40, [20, 'q8_0'], [24, 'q4_0']),
];

for (const path of paths)
  for (const [ci, c] of cases.entries())
    for (const transW of [true, false])
      for (const beta of [0, 0.5])
        test(`group [${path}]: weightGroupGemm case ${ci} (M=${c.M}, N=${c.parts.map((p) => `${p.N} ${p.format}`).join(' + ')}) transW=${transW} beta=${beta} matches float64`, {
          skip,
        }, () => {
          setGemmPath(path);
          try {
            const r = rng(100 + ci * 4 + (transW ? 2 : 0) + beta * 2);
            const { M, K } = c;
            const pad = 3;
            const weights = c.parts.map((p) => {
              const w = randn(p.N * K, r, 0.1);
              return p.dense ? w : encodeWeight(p.format, w, p.N, K);
            });
            // io: Y_s (forward) or X_s (input gradient), each with its own padded leading dimension
            const ios = c.parts.map((p) => ({ ld: p.N + pad + 1, v: randn(pad + M * (p.N + pad + 1), r) }));
            const shared = randn(pad + M * (K + pad), r);
            const outs = transW ? ios.map((io) => io.v) : [shared];
            if (beta === 0) for (const o of outs) o.fill(NaN);
            const run = <A extends Float32Array | Float64Array>(
              k: { weightGroupGemm: (p: never) => void },
              arr: (x: ArrayLike<number>) => A,
            ) => {
              const sh = arr(shared);
              const io = ios.map((x) => arr(x.v));
              const parts: GroupPart<A>[] = c.parts.map((p, i) => ({
                format: p.format,
                W: p.dense ? arr(weights[i]!) : (weights[i] as Uint8Array),
                N: p.N,
                io: io[i]!,
                ioOff: pad,
                ldio: ios[i]!.ld,
              }));
              (k.weightGroupGemm as (p: unknown) => void)({
                K,
                transW,
                M,
                alpha: 0.75,
                beta,
                shared: sh,
                sharedOff: pad,
                ldShared: K + pad,
                parts,
              });
              return transW ? io : [sh];
            };
            const got = run(native!, (x) => Float32Array.from(x));
            const want = run(ref, (x) => Float64Array.from(x));
            const pick = (y: ArrayLike<number>, cols: number, ld: number) =>
              Array.from({ length: M * cols }, (_, i) => y[pad + Math.floor(i / cols) * ld + (i % cols)]!);
            got.forEach((g, i) => {
              const cols = transW ? c.parts[i]!.N : K;
              const ld = transW ? ios[i]!.ld : K + pad;
              // bf16 weights on the avx512bf16 path: activations rounded to bf16 (bound in bf16.test.ts)
              const bf16 = transW ? c.parts[i]!.format === 'bf16' : c.parts.some((p) => p.format === 'bf16');
              const tol = path === 'avx512bf16' && bf16 ? { atol: 3e-2, rtol: 1e-2 } : { atol: 2e-4, rtol: 1e-4 };
              const f = c.parts[i]!.format;
              if (transW && M <= 4 && (f === 'q8_0' || f === 'q4_0') && path !== 'openblas') {
                // the matrix-vector path rounds activations to int8 blocks (bound in matvec.test.ts)
                const w = decodeWeight(f, weights[i] as Uint8Array, cols, K);
                const b = int8ActivationBound(w, cols, K, shared, pad, K + pad, M, 0.75);
                const exp = pick(want[i]!, cols, ld);
                assertWithin(
                  pick(g, cols, ld),
                  exp,
                  b.map((v, j) => v + 1e-6 * Math.abs(exp[j]!)),
                  `output ${i}`,
                );
              } else assertClose(pick(g, cols, ld), pick(want[i]!, cols, ld), tol, `output ${i}`);
            });
          } finally {
            setGemmPath(paths[0]!);
          }
        });

const f64 = (x: ArrayLike<number>) => Float64Array.from(x) as unknown as Float32Array;

test('group: linearGroup equals separate linear / loraLinear layers, forward and gradients (float64)', () => {
  const restore = useReference64();
  try {
    const r = rng(7),
      K = 32,
      T = 5,
      rank = 2;
    const x = Tensor.param(f64(randn(T * K, r)), [T, K], 'x');
    const dense = (n: number, name: string, trainable: boolean) =>
      Tensor.param(f64(randn(n * K, r, 0.3)), [n, K], name, trainable);
    const ws: Weight[] = [
      dense(6, 'q', true),
      FrozenWeight.encode('bf16', randn(4 * K, r, 0.3), [4, K], 'k'),
      dense(3, 'v', false),
    ];
    const A = Tensor.param(f64(randn(rank * K, r, 0.2)), [rank, K], 'A');
    const B = Tensor.param(f64(randn(3 * rank, r, 0.2)), [3, rank], 'B');
    const mask = f64(Array.from({ length: T * K }, (_, i) => (i % 3 === 0 ? 0 : 1.5)));
    const teachers = [6, 4, 3].map((n) => f64(randn(T * n, r)));
    const loss = (ys: Tensor[]) => {
      let s = nmse(ys[0]!, teachers[0]!);
      for (let i = 1; i < ys.length; i++) s = add(s, nmse(ys[i]!, teachers[i]!));
      return s;
    };
    const fused = () =>
      loss(
        linearGroup(x, [
          { w: ws[0]!, name: 'q' },
          { w: ws[1]!, name: 'k' },
          { w: ws[2]!, name: 'v', lora: { a: A, b: B, scale: 2, mask } },
        ]),
      );
    const separate = () =>
      loss([linear(x, ws[0]!, 'q'), linear(x, ws[1]!, 'k'), loraLinear(x, ws[2]!, A, B, 2, mask, 'v')]);
    const params = [x, ws[0] as Tensor, A, B];
    const grads = (f: () => Tensor) => {
      tape.reset();
      for (const p of params) p.zeroGrad();
      const v = f().item();
      tape.backward(f());
      const g = params.map((p) => Float64Array.from(p.grad!));
      tape.reset();
      return { v, g };
    };
    const a = grads(fused),
      b = grads(separate);
    assertClose([a.v], [b.v], { atol: 1e-12, rtol: 1e-12 }, 'loss');
    a.g.forEach((g, i) => assertClose(g, b.g[i]!, { atol: 1e-12, rtol: 1e-10 }, `grad of ${params[i]!.name}`));
    checkGradients(params, fused);
    // An output the loss does not use: its part gets no gradient, the others still do.
    checkGradients([x, ws[0] as Tensor], () =>
      nmse(
        linearGroup(x, [
          { w: ws[0]!, name: 'q' },
          { w: ws[1]!, name: 'k' },
        ])[0]!,
        teachers[0]!,
      ),
    );
  } finally {
    restore();
  }
});

test('group: LoRA branches without dropout run stacked (one gemm over their A factors); equal to separate loraLinear layers and to finite differences (float64)', () => {
  const restore = useReference64();
  try {
    const r = rng(11),
      K = 24,
      T = 7;
    const x = Tensor.param(f64(randn(T * K, r)), [T, K], 'x');
    const outs = [5, 4, 6, 3];
    const ranks = [2, 3, 2, 2];
    const ws = outs.map((n, i) => Tensor.param(f64(randn(n * K, r, 0.3)), [n, K], `w${i}`, false));
    const As = ranks.map((rk, i) => Tensor.param(f64(randn(rk * K, r, 0.2)), [rk, K], `A${i}`));
    const Bs = ranks.map((rk, i) => Tensor.param(f64(randn(outs[i]! * rk, r, 0.2)), [outs[i]!, rk], `B${i}`));
    As[1]!.requiresGrad = false; // a frozen A factor in the stack
    const mask = f64(Array.from({ length: T * K }, (_, i) => (i % 4 === 0 ? 0 : 4 / 3)));
    // Parts 0, 1, 3 have no dropout (stacked, ranks 2 + 3 + 2); part 2 has a mask (its own gemms).
    const masks = [null, null, mask, null];
    const teachers = outs.map((n) => f64(randn(T * n, r)));
    const loss = (ys: Tensor[], used: number[]) => {
      let s = nmse(ys[used[0]!]!, teachers[used[0]!]!);
      for (const i of used.slice(1)) s = add(s, nmse(ys[i]!, teachers[i]!));
      return s;
    };
    const fused = (used: number[]) => () =>
      loss(
        linearGroup(
          x,
          outs.map((_, i) => ({
            w: ws[i]!,
            name: `p${i}`,
            lora: { a: As[i]!, b: Bs[i]!, scale: 1.5 + i, mask: masks[i]! },
          })),
        ),
        used,
      );
    const separate = (used: number[]) => () =>
      loss(
        outs.map((_, i) => loraLinear(x, ws[i]!, As[i]!, Bs[i]!, 1.5 + i, masks[i]!, `p${i}`)),
        used,
      );
    const params = [x, As[0]!, As[2]!, As[3]!, ...Bs];
    const grads = (f: () => Tensor) => {
      tape.reset();
      for (const p of [...params, As[1]!]) p.zeroGrad();
      const v = f().item();
      tape.backward(f());
      const g = params.map((p) => Float64Array.from(p.grad ?? new Float64Array(p.size)));
      tape.reset();
      return { v, g };
    };
    // All outputs used, and one stacked output (part 1) unused: its dh columns stay zero.
    for (const used of [
      [0, 1, 2, 3],
      [0, 2, 3],
    ]) {
      const a = grads(fused(used)),
        b = grads(separate(used));
      assertClose([a.v], [b.v], { atol: 1e-12, rtol: 1e-12 }, `loss (outputs ${used})`);
      a.g.forEach((g, i) =>
        assertClose(g, b.g[i]!, { atol: 1e-12, rtol: 1e-10 }, `grad of ${params[i]!.name} (outputs ${used})`),
      );
      checkGradients(params, fused(used));
    }
  } finally {
    restore();
  }
});

test('group: linearGroup names the part whose weight does not fit', () => {
  const x = Tensor.param(new Float32Array(6), [2, 3], 'h');
  const ok = Tensor.param(new Float32Array(12), [4, 3], 'q_proj', false);
  const bad = Tensor.param(new Float32Array(8), [2, 4], 'k_proj', false);
  assert.throws(
    () =>
      linearGroup(x, [
        { w: ok, name: 'q' },
        { w: bad, name: 'k' },
      ]),
    /linearGroup: input 'h' \[2, 3\] does not match weight 'k_proj' \[2, 4\]/,
  );
});

test('group: a linear onto a residual equals residual + linear, with the residual getting the gradient (float64)', () => {
  const restore = useReference64();
  try {
    const r = rng(12),
      K = 16,
      N = 5,
      T = 4,
      rank = 2;
    const x = Tensor.param(f64(randn(T * K, r)), [T, K], 'x');
    const res = Tensor.param(f64(randn(T * N, r)), [T, N], 'resid');
    const w = Tensor.param(f64(randn(N * K, r, 0.3)), [N, K], 'w');
    const A = Tensor.param(f64(randn(rank * K, r, 0.2)), [rank, K], 'A');
    const B = Tensor.param(f64(randn(N * rank, r, 0.2)), [N, rank], 'B');
    const teacher = f64(randn(T * N, r));
    const lora = { a: A, b: B, scale: 2, mask: null };
    const fused = () => nmse(linearGroup(x, [{ w, name: 'o', lora, residual: res }])[0]!, teacher);
    const separate = () => nmse(add(res, loraLinear(x, w, A, B, 2, null, 'o')), teacher);
    assertClose([fused().item()], [separate().item()], { atol: 1e-13, rtol: 1e-13 }, 'loss');
    tape.reset();
    checkGradients([x, res, w, A, B], fused);
    const bad = Tensor.param(f64(randn(T * 4, r)), [T, 4], 'short');
    assert.throws(
      () => linearGroup(x, [{ w, name: 'o', residual: bad }]),
      /residual 'short' \[4, 4\] does not fit the output of 'w' \[4 x 5\]/,
    );
  } finally {
    restore();
  }
});
