// Native (float32) against the reference run in float64 on the same random inputs. Each case is
// written once, generic over the array type, and run on both implementations.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import type { FArr, Kernels } from '../../src/kernels/api.js';
import { gemmPaths, loadNativeKernels, nativeLoadError, setGemmPath } from '../../src/kernels/native.js';
import { referenceKernels } from '../../src/kernels/reference.js';
import { assertClose, randInt, randn, rng } from './helpers.js';

const native = loadNativeKernels();
const ref = referenceKernels<Float64Array>();
const skip = native ? false : `native addon not loaded: ${nativeLoadError()}`;

type Out = Record<string, ArrayLike<number> | number>;
type Body = <A extends FArr>(k: Kernels<A>, arr: (x: ArrayLike<number>) => A) => Out;
type Tol = { atol: number; rtol: number };

// Every case runs on every gemm path this CPU has (own AVX-512 / AVX2 kernels, OpenBLAS): the
// attention kernels are built from gemms too.
const paths = native ? gemmPaths() : ['none'];
const defaultPath = paths[0]!;

function parity(name: string, tol: Tol, body: Body): void {
  for (const path of paths) {
    test(`parity [${path}]: ${name}`, { skip }, () => {
      setGemmPath(path);
      try {
        const got = body<Float32Array>(native!, (x) => Float32Array.from(x));
        const want = body<Float64Array>(ref, (x) => Float64Array.from(x));
        for (const key of Object.keys(want)) {
          const g = got[key]!,
            w = want[key]!;
          if (typeof w === 'number') assertClose([g as number], [w], tol, `${path} ${name}.${key}`);
          else assertClose(g as ArrayLike<number>, w, tol, `${path} ${name}.${key}`);
        }
      } finally {
        setGemmPath(defaultPath);
      }
    });
  }
}

// ---- gemm --------------------------------------------------------------------------------
interface GemmCase {
  tA: boolean;
  tB: boolean;
  M: number;
  N: number;
  K: number;
  batch: number;
  pad: number;
  alpha: number;
  beta: number;
}
function gemmCase(c: GemmCase, seed: number): Body {
  return (k, arr) => {
    const r = rng(seed);
    const rowsA = c.tA ? c.K : c.M,
      colsA = c.tA ? c.M : c.K;
    const rowsB = c.tB ? c.N : c.K,
      colsB = c.tB ? c.K : c.N;
    // pad > 0 makes strided views: longer rows, an offset, and gaps between batch items.
    const lda = colsA + c.pad,
      ldb = colsB + c.pad,
      ldc = c.N + c.pad;
    const strideA = rowsA * lda + c.pad,
      strideB = rowsB * ldb + c.pad,
      strideC = c.M * ldc + c.pad;
    const off = c.pad;
    const A = arr(randn(off + c.batch * strideA, r));
    const B = arr(randn(off + c.batch * strideB, r));
    const C0 = randn(off + c.batch * strideC, r);
    if (c.beta === 0) C0.fill(NaN); // beta = 0 must ignore the old C, even NaN
    const C = arr(C0);
    k.gemm({
      transA: c.tA,
      transB: c.tB,
      M: c.M,
      N: c.N,
      K: c.K,
      alpha: c.alpha,
      A,
      aOff: off,
      lda,
      strideA,
      B,
      bOff: off,
      ldb,
      strideB,
      beta: c.beta,
      C,
      cOff: off,
      ldc,
      strideC,
      batch: c.batch,
    });
    // Compare only the written entries (padding keeps NaN when beta = 0).
    const written: number[] = [];
    for (let b = 0; b < c.batch; b++)
      for (let i = 0; i < c.M; i++) for (let j = 0; j < c.N; j++) written.push(C[off + b * strideC + i * ldc + j]!);
    return { C: written };
  };
}
let seed = 1;
for (const tA of [false, true]) {
  for (const tB of [false, true]) {
    parity(
      `gemm tA=${tA} tB=${tB} 5x7x3`,
      { atol: 1e-5, rtol: 1e-5 },
      gemmCase({ tA, tB, M: 5, N: 7, K: 3, batch: 1, pad: 0, alpha: 1, beta: 0 }, seed++),
    );
    // M = 1 takes the matrix-vector path (token-by-token decoding).
    for (const beta of [0, 0.5]) {
      parity(
        `gemm tA=${tA} tB=${tB} single row (gemv path) beta=${beta}`,
        { atol: 1e-4, rtol: 1e-5 },
        gemmCase({ tA, tB, M: 1, N: 37, K: 29, batch: 2, pad: 3, alpha: 0.9, beta }, seed++),
      );
    }
    parity(
      `gemm tA=${tA} tB=${tB} strided batch 3`,
      { atol: 1e-4, rtol: 1e-5 },
      gemmCase({ tA, tB, M: 6, N: 9, K: 11, batch: 3, pad: 2, alpha: 0.7, beta: 0.5 }, seed++),
    );
  }
}
parity(
  'gemm large 96x128x160 (threaded BLAS)',
  { atol: 2e-4, rtol: 1e-5 },
  gemmCase({ tA: false, tB: true, M: 96, N: 128, K: 160, batch: 1, pad: 0, alpha: 1, beta: 1 }, seed++),
);
parity(
  'gemm many small batches (pool path)',
  { atol: 1e-4, rtol: 1e-5 },
  gemmCase({ tA: true, tB: false, M: 16, N: 12, K: 20, batch: 8, pad: 1, alpha: 2, beta: 0 }, seed++),
);
// Shapes past one register tile, one K block (256) and one column block (1536) of our kernels,
// with partial tiles at every edge.
for (const tA of [false, true]) {
  for (const tB of [false, true]) {
    parity(
      `gemm tA=${tA} tB=${tB} 150x70x300 (several blocks, partial tiles)`,
      { atol: 5e-4, rtol: 1e-4 },
      gemmCase({ tA, tB, M: 150, N: 70, K: 300, batch: 1, pad: 1, alpha: 0.8, beta: 0.3 }, seed++),
    );
  }
}
// A thin C (N at most half a micro-kernel panel, M at least 4 N: LoRA's rank-r products) is
// computed as its transpose and transposed back; N 8 and 5, with and without beta, over K blocks.
for (const tA of [false, true]) {
  for (const tB of [false, true]) {
    for (const [N, beta] of [
      [8, 0],
      [5, 0.6],
    ] as const) {
      parity(
        `gemm tA=${tA} tB=${tB} thin C 200x${N}x300 beta=${beta}`,
        { atol: 5e-4, rtol: 1e-4 },
        gemmCase({ tA, tB, M: 200, N, K: 300, batch: 1, pad: 2, alpha: 0.9, beta }, seed++),
      );
    }
  }
}
parity(
  'gemm 13x1600x40 (two column blocks)',
  { atol: 1e-4, rtol: 1e-5 },
  gemmCase({ tA: false, tB: true, M: 13, N: 1600, K: 40, batch: 1, pad: 0, alpha: 1, beta: 0 }, seed++),
);
parity(
  'gemm K=0 scales C by beta',
  { atol: 0, rtol: 1e-7 },
  gemmCase({ tA: false, tB: false, M: 3, N: 4, K: 0, batch: 2, pad: 0, alpha: 1, beta: 0.5 }, seed++),
);

// ---- elementwise -------------------------------------------------------------------------
const EW: Tol = { atol: 1e-6, rtol: 1e-6 };
for (const n of [13, 100_003]) {
  parity(`elementwise n=${n}`, EW, (k, arr) => {
    const r = rng(n);
    const a = arr(randn(n, r)),
      b = arr(randn(n, r)),
      y = arr(randn(n, r));
    const sum = arr(new Float32Array(n)),
      prod = arr(new Float32Array(n)),
      sc = arr(new Float32Array(n));
    const filled = arr(randn(n, r));
    k.add(a, b, sum, n);
    k.mul(a, b, prod, n);
    k.axpy(0.25, a, y, n);
    k.scale(-1.5, a, sc, n);
    k.fill(filled, 3.5, n);
    const inPlace = arr(a);
    k.add(inPlace, b, inPlace, n); // out may be an input
    return { sum, prod, y, sc, filled, inPlace, ss: k.sumSquares(a, n) };
  });
}

parity('embedding forward/backward with repeated ids', EW, (k, arr) => {
  const r = rng(7),
    V = 11,
    D = 24,
    N = 40;
  const table = arr(randn(V * D, r)),
    ids = randInt(N, V, r);
  ids[3] = ids[5] = ids[9] = 2;
  const out = arr(new Float32Array(N * D)),
    dTable = arr(randn(V * D, r)),
    dOut = arr(randn(N * D, r));
  k.embeddingForward(table, ids, out, N, D);
  k.embeddingBackward(dOut, ids, dTable, N, D);
  return { out, dTable };
});

for (const [N, D] of [
  [3, 10],
  [300, 512],
] as const) {
  parity(`rmsnorm N=${N} D=${D}`, { atol: 2e-5, rtol: 2e-5 }, (k, arr) => {
    const r = rng(N + D);
    const x = arr(randn(N * D, r)),
      w = arr(randn(D, r)),
      dOut = arr(randn(N * D, r));
    const out = arr(new Float32Array(N * D)),
      rstd = arr(new Float32Array(N));
    const dx = arr(randn(N * D, r)),
      dw = arr(randn(D, r));
    k.rmsnormForward(x, w, out, rstd, N, D, 1e-5);
    k.rmsnormBackward(dOut, x, w, rstd, dx, dw, N, D);
    const dxOnly = arr(new Float32Array(N * D));
    k.rmsnormBackward(dOut, x, w, rstd, dxOnly, null, N, D);
    return { out, rstd, dx, dw, dxOnly };
  });
}

for (const pos of [0, 1000]) {
  parity(`rope posOffset=${pos}`, { atol: 2e-6, rtol: 2e-6 }, (k, arr) => {
    const r = rng(pos + 3),
      B = 2,
      T = 5,
      H = 3,
      Dh = 16,
      n = B * T * H * Dh;
    const inv = arr(Float32Array.from({ length: Dh / 2 }, (_, i) => Math.pow(10000, (-2 * i) / Dh)));
    const x = arr(randn(n, r)),
      out = arr(new Float32Array(n)),
      dOut = arr(randn(n, r)),
      dx = arr(randn(n, r));
    k.ropeForward(x, out, inv, B, T, H, Dh, pos);
    const inPlace = arr(x);
    k.ropeForward(inPlace, inPlace, inv, B, T, H, Dh, pos);
    k.ropeBackward(dOut, dx, inv, B, T, H, Dh, pos);
    return { out, inPlace, dx };
  });
}

// ---- attention ---------------------------------------------------------------------------
interface AttnCase {
  B: number;
  T: number;
  S: number;
  H: number;
  Hkv: number;
  Dh: number;
  qOffset: number;
  causal: boolean;
  mask: 'none' | 'pad' | 'fullrow';
  /** Sliding window (0: none). */
  window?: number;
}
export function attnInputs(c: AttnCase, seed: number) {
  const r = rng(seed);
  const nq = c.B * c.T * c.H * c.Dh,
    nk = c.B * c.S * c.Hkv * c.Dh;
  let mask: Float32Array | null = null;
  if (c.mask !== 'none') {
    mask = new Float32Array(c.B * c.S);
    mask[c.S - 1] = -Infinity; // batch 0: last key padded
    if (c.B > 1) mask[c.S + 1] = -1e4; // batch 1: a large negative number instead of -inf
    if (c.mask === 'fullrow') mask[0] = -Infinity; // batch 0, query 0 (causal) sees no key
  }
  return {
    q: randn(nq, r),
    k: randn(nk, r),
    v: randn(nk, r),
    dOut: randn(nq, r),
    mask,
    dq: randn(nq, r),
    dk: randn(nk, r),
    dv: randn(nk, r),
  };
}
function attnCase(c: AttnCase, seed: number): Body {
  return (k, arr) => {
    const x = attnInputs(c, seed);
    const q = arr(x.q),
      kk = arr(x.k),
      v = arr(x.v);
    const out = arr(new Float32Array(x.q.length)),
      probs = arr(new Float32Array(c.B * c.H * c.T * c.S));
    const scale = 1 / Math.sqrt(c.Dh);
    k.attentionForward({
      q,
      k: kk,
      v,
      out,
      probs,
      keyMask: x.mask ? arr(x.mask) : null,
      B: c.B,
      T: c.T,
      S: c.S,
      H: c.H,
      Hkv: c.Hkv,
      Dh: c.Dh,
      qOffset: c.qOffset,
      scale,
      causal: c.causal,
      window: c.window ?? 0,
    });
    const dq = arr(x.dq),
      dk = arr(x.dk),
      dv = arr(x.dv);
    k.attentionBackward({
      dOut: arr(x.dOut),
      q,
      k: kk,
      v,
      probs,
      dq,
      dk,
      dv,
      B: c.B,
      T: c.T,
      S: c.S,
      H: c.H,
      Hkv: c.Hkv,
      Dh: c.Dh,
      scale,
    });
    return { out, probs, dq, dk, dv };
  };
}
const ATT: Tol = { atol: 2e-5, rtol: 2e-5 };
const attnCases: [string, AttnCase][] = [
  ['MHA causal', { B: 2, T: 6, S: 6, H: 2, Hkv: 2, Dh: 8, qOffset: 0, causal: true, mask: 'none' }],
  ['GQA H4 Hkv2 causal + padding', { B: 2, T: 7, S: 7, H: 4, Hkv: 2, Dh: 8, qOffset: 0, causal: true, mask: 'pad' }],
  [
    'GQA H4 Hkv1 fully masked row',
    { B: 2, T: 5, S: 5, H: 4, Hkv: 1, Dh: 6, qOffset: 0, causal: true, mask: 'fullrow' },
  ],
  ['decode qOffset 4', { B: 2, T: 3, S: 7, H: 4, Hkv: 2, Dh: 8, qOffset: 4, causal: true, mask: 'pad' }],
  ['non-causal S != T', { B: 1, T: 4, S: 9, H: 2, Hkv: 1, Dh: 4, qOffset: 0, causal: false, mask: 'pad' }],
  ['threaded B4 T48 H8 Hkv4', { B: 4, T: 48, S: 48, H: 8, Hkv: 4, Dh: 32, qOffset: 0, causal: true, mask: 'pad' }],
  [
    'serial B1 T40 H2 Hkv1 (threaded BLAS)',
    { B: 1, T: 40, S: 40, H: 2, Hkv: 1, Dh: 64, qOffset: 0, causal: true, mask: 'none' },
  ],
  // Longer than one 64-row block: the causal kernels skip keys per block.
  [
    'causal blocks T150 GQA + padding',
    { B: 2, T: 150, S: 150, H: 4, Hkv: 2, Dh: 16, qOffset: 0, causal: true, mask: 'pad' },
  ],
  [
    'causal blocks decode qOffset 30, T 100',
    { B: 2, T: 100, S: 130, H: 2, Hkv: 1, Dh: 8, qOffset: 30, causal: true, mask: 'fullrow' },
  ],
  ['non-causal T130 S70', { B: 1, T: 130, S: 70, H: 2, Hkv: 2, Dh: 8, qOffset: 0, causal: false, mask: 'pad' }],
  // Sliding windows: shorter than a block, across block edges, with decoding offsets and padding.
  [
    'window 5 GQA + padding',
    { B: 2, T: 12, S: 12, H: 4, Hkv: 2, Dh: 8, qOffset: 0, causal: true, mask: 'pad', window: 5 },
  ],
  [
    'window 40 blocks T150',
    { B: 2, T: 150, S: 150, H: 4, Hkv: 2, Dh: 16, qOffset: 0, causal: true, mask: 'pad', window: 40 },
  ],
  [
    'window 70 blocks decode qOffset 30, T 100',
    { B: 2, T: 100, S: 130, H: 2, Hkv: 1, Dh: 8, qOffset: 30, causal: true, mask: 'fullrow', window: 70 },
  ],
  [
    'window 3 decode one token',
    { B: 1, T: 1, S: 9, H: 2, Hkv: 1, Dh: 8, qOffset: 8, causal: true, mask: 'none', window: 3 },
  ],
  // At most 4 query rows take the decoding kernel (native/attn_decode.cc).
  [
    'decode one token, GQA H8 Hkv2, S 300, padding',
    { B: 2, T: 1, S: 300, H: 8, Hkv: 2, Dh: 64, qOffset: 299, causal: true, mask: 'pad' },
  ],
  ['decode 2 rows, Dh 12', { B: 2, T: 2, S: 11, H: 3, Hkv: 1, Dh: 12, qOffset: 9, causal: true, mask: 'pad' }],
  [
    'decode one token, fully masked',
    { B: 1, T: 1, S: 1, H: 2, Hkv: 1, Dh: 8, qOffset: 0, causal: true, mask: 'fullrow' },
  ],
  [
    'decode 4 rows, window 5',
    { B: 2, T: 4, S: 20, H: 4, Hkv: 2, Dh: 16, qOffset: 16, causal: true, mask: 'fullrow', window: 5 },
  ],
  [
    'window 1 (itself only)',
    { B: 1, T: 6, S: 6, H: 2, Hkv: 2, Dh: 4, qOffset: 0, causal: true, mask: 'none', window: 1 },
  ],
  [
    'window wider than S',
    { B: 1, T: 6, S: 6, H: 2, Hkv: 2, Dh: 4, qOffset: 0, causal: true, mask: 'pad', window: 100 },
  ],
];
for (const [i, [name, c]] of attnCases.entries()) parity(`attention ${name}`, ATT, attnCase(c, 100 + i));

// ---- activations, softmax family ---------------------------------------------------------
parity('swiglu and silu', { atol: 2e-6, rtol: 2e-6 }, (k, arr) => {
  const r = rng(11),
    n = 1003;
  const gate = arr(randn(n, r, 4)),
    up = arr(randn(n, r)),
    dOut = arr(randn(n, r));
  gate[0] = 100;
  gate[1] = -100;
  gate[2] = 0;
  const out = arr(new Float32Array(n)),
    dGate = arr(randn(n, r)),
    dUp = arr(randn(n, r));
  const s = arr(new Float32Array(n)),
    dx = arr(randn(n, r));
  k.swigluForward(gate, up, out, n);
  k.swigluBackward(dOut, gate, up, dGate, dUp, n);
  k.siluForward(gate, s, n);
  k.siluBackward(dOut, gate, dx, n);
  return { out, dGate, dUp, s, dx };
});

for (const V of [7, 4096]) {
  parity(`softmax / logSoftmax V=${V}`, { atol: 2e-6, rtol: 2e-5 }, (k, arr) => {
    const r = rng(V),
      N = 9;
    const x = arr(randn(N * V, r, 3)),
      dOut = arr(randn(N * V, r));
    x[1] = 80;
    x[2] = -80; // extremes within a row
    const y = arr(new Float32Array(N * V)),
      ly = arr(new Float32Array(N * V));
    const dx = arr(randn(N * V, r)),
      dlx = arr(randn(N * V, r));
    k.softmaxForward(x, y, N, V);
    k.softmaxBackward(dOut, y, dx, N, V);
    k.logSoftmaxForward(x, ly, N, V);
    k.logSoftmaxBackward(dOut, ly, dlx, N, V);
    return { y, ly, dx, dlx };
  });
}

// ---- losses ------------------------------------------------------------------------------
for (const V of [10, 4096]) {
  parity(`cross-entropy with ignore index V=${V}`, { atol: 1e-5, rtol: 1e-5 }, (k, arr) => {
    const r = rng(V + 1),
      N = 12;
    const logits = arr(randn(N * V, r, 2)),
      targets = randInt(N, V, r);
    targets[2] = -100;
    targets[7] = -100;
    const lse = arr(new Float32Array(N)),
      d = arr(randn(N * V, r));
    const { sum, count } = k.crossEntropyForward(logits, targets, lse, N, V, -100);
    k.crossEntropyBackward(logits, targets, lse, d, N, V, -100, 1 / count);
    return { sum, count, lse, d };
  });
}

for (const teacherIsProbs of [false, true]) {
  parity(`KL teacherIsProbs=${teacherIsProbs} with rowWeight`, { atol: 1e-5, rtol: 1e-5 }, (k, arr) => {
    const r = rng(teacherIsProbs ? 5 : 6),
      N = 6,
      V = 517;
    const t = randn(N * V, r, 2);
    if (teacherIsProbs) {
      // normalised rows with some exact zeros
      for (let i = 0; i < N; i++) {
        let z = 0;
        for (let j = 0; j < V; j++) {
          const p = j % 7 === 0 ? 0 : Math.exp(t[i * V + j]!);
          t[i * V + j] = p;
          z += p;
        }
        for (let j = 0; j < V; j++) t[i * V + j] = t[i * V + j]! / z;
      }
    }
    const teacher = arr(t),
      student = arr(randn(N * V, r, 2));
    const w = arr([1, 0, 0.5, 2, 1, 0]);
    const lse = arr(new Float32Array(N)),
      lse2 = arr(new Float32Array(N)),
      d = arr(randn(N * V, r)),
      d2 = arr(randn(N * V, r));
    const kl = k.klForward(teacher, student, lse, w, N, V, teacherIsProbs);
    k.klBackward(teacher, student, lse, w, d, N, V, teacherIsProbs, 0.5);
    const klNoW = k.klForward(teacher, student, lse2, null, N, V, teacherIsProbs);
    k.klBackward(teacher, student, lse2, null, d2, N, V, teacherIsProbs, 1);
    return { kl, lse, d, klNoW, d2 };
  });
}

parity('NMSE', { atol: 1e-6, rtol: 1e-5 }, (k, arr) => {
  const r = rng(9),
    n = 70_001;
  const s = arr(randn(n, r)),
    t = arr(randn(n, r)),
    d = arr(randn(n, r));
  const { value, denom } = k.nmseForward(s, t, n);
  k.nmseBackward(s, t, d, n, denom, 0.3);
  return { value, denom, d };
});

parity('adamw and sgd over 50k params', { atol: 1e-6, rtol: 1e-5 }, (k, arr) => {
  const r = rng(21),
    n = 50_000;
  const param = arr(randn(n, r)),
    grad = arr(randn(n, r)),
    m = arr(randn(n, r, 0.1));
  const v = arr(Float32Array.from(randn(n, r, 0.1), (x) => x * x));
  for (let step = 1; step <= 3; step++) {
    k.adamwStep({
      param,
      grad,
      m,
      v,
      n,
      lr: 1e-2,
      beta1: 0.9,
      beta2: 0.95,
      eps: 1e-8,
      weightDecay: 0.1,
      step,
      gradScale: 0.5,
    });
  }
  const p2 = arr(randn(n, r)),
    buf = arr(new Float32Array(n)),
    p3 = arr(randn(n, r));
  for (let i = 0; i < 3; i++)
    k.sgdStep({ param: p2, grad, buf, n, lr: 0.1, momentum: 0.9, weightDecay: 0.01, gradScale: 2 });
  k.sgdStep({ param: p3, grad, buf: null, n, lr: 0.1, momentum: 0, weightDecay: 0, gradScale: 1 });
  return { param, m, v, p2, buf, p3 };
});

// ---- argument checks and threads -----------------------------------------------------------
test('native: bad arguments throw instead of crashing', { skip }, () => {
  const k = native!;
  assert.throws(() => k.add(new Float64Array(4) as never, new Float32Array(4), new Float32Array(4), 4), TypeError);
  assert.throws(() => k.add(new Float32Array(3), new Float32Array(4), new Float32Array(4), 4), RangeError);
  assert.throws(
    () => k.crossEntropyForward(new Float32Array(6), Int32Array.from([0, 3]), new Float32Array(2), 2, 3, -100),
    RangeError,
  );
});

test('native: subarray views are read at their byteOffset', { skip }, () => {
  const k = native!;
  const buf = Float32Array.from([9, 9, 1, 2, 3]);
  const out = new Float32Array(3);
  k.scale(2, buf.subarray(2), out, 3);
  assert.deepEqual([...out], [2, 4, 6]);
});

test('native: setThreads changes the thread count and results stay equal', { skip }, () => {
  const k = native!;
  const before = k.getThreads();
  const r = rng(3),
    N = 64,
    V = 300;
  const x = randn(N * V, r),
    y1 = new Float32Array(N * V),
    y2 = new Float32Array(N * V);
  k.setThreads(1);
  assert.equal(k.getThreads(), 1);
  k.softmaxForward(x, y1, N, V);
  k.setThreads(before);
  assert.equal(k.getThreads(), before);
  k.softmaxForward(x, y2, N, V);
  assert.deepEqual(y1, y2);
});

test('FEDBIOT_GEMM forces a gemm path at load, and an unknown one falls back to the best with a warning', {
  skip,
}, () => {
  const script = "import('./src/kernels/native.ts').then((m) => { m.loadNativeKernels(); console.log(m.gemmPath()); })";
  for (const path of [...paths, 'bogus']) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], {
      env: { ...process.env, FEDBIOT_GEMM: path },
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), path === 'bogus' ? defaultPath : path);
    if (path === 'bogus') assert.match(r.stderr, /FEDBIOT_GEMM=bogus is not available/);
  }
});
