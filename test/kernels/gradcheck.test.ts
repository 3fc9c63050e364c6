// Every backward of the reference kernels (float64) against central finite differences of the
// scalar loss L = sum(forward_out * R) for a random R. Gradient buffers start non-zero to check
// that backward kernels accumulate.
import { test } from 'node:test';
import { referenceKernels } from '../../src/kernels/reference.js';
import { assertClose, f64, randInt, randn, rng } from './helpers.js';

const k = referenceKernels<Float64Array>();
const EPS = 1e-6;
const TOL = { atol: 1e-6, rtol: 1e-6 };

/**
 * loss(): the scalar as a function of the current input values. grads: [input, analytic gradient]
 * pairs, analytic gradients computed by the caller from zero. Perturbs each input element in place.
 */
function checkGrads(name: string, loss: () => number, grads: [Float64Array, Float64Array][]): void {
  for (const [gi, [x, analytic]] of grads.entries()) {
    const numeric = new Float64Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const old = x[i]!;
      x[i] = old + EPS;
      const lp = loss();
      x[i] = old - EPS;
      const lm = loss();
      x[i] = old;
      numeric[i] = (lp - lm) / (2 * EPS);
    }
    assertClose(analytic, numeric, TOL, `${name} input ${gi}`);
  }
}

function dotR(out: Float64Array, R: Float64Array): number {
  let s = 0;
  for (let i = 0; i < out.length; i++) s += out[i]! * R[i]!;
  return s;
}

/** Runs backward into a buffer preloaded with `base`, returns (buffer - base): checks accumulation. */
function accumulated(n: number, r: () => number, run: (g: Float64Array) => void): Float64Array {
  const base = f64(randn(n, r));
  const g = Float64Array.from(base);
  run(g);
  for (let i = 0; i < n; i++) g[i] = g[i]! - base[i]!;
  return g;
}

test('gradcheck: rmsnorm', () => {
  const r = rng(1),
    N = 3,
    D = 5;
  const x = f64(randn(N * D, r)),
    w = f64(randn(D, r)),
    R = f64(randn(N * D, r));
  const out = new Float64Array(N * D),
    rstd = new Float64Array(N);
  const loss = () => (k.rmsnormForward(x, w, out, rstd, N, D, 1e-5), dotR(out, R));
  loss();
  const dx = accumulated(N * D, r, (g) => k.rmsnormBackward(R, x, w, rstd, g, null, N, D));
  const dw = accumulated(D, r, (g) => k.rmsnormBackward(R, x, w, rstd, null, g, N, D));
  checkGrads('rmsnorm', loss, [
    [x, dx],
    [w, dw],
  ]);
});

test('gradcheck: rope', () => {
  const r = rng(2),
    B = 2,
    T = 3,
    H = 2,
    Dh = 6,
    n = B * T * H * Dh;
  const inv = Float64Array.from({ length: Dh / 2 }, (_, i) => Math.pow(10000, (-2 * i) / Dh));
  const x = f64(randn(n, r)),
    R = f64(randn(n, r)),
    out = new Float64Array(n);
  const loss = () => (k.ropeForward(x, out, inv, B, T, H, Dh, 5), dotR(out, R));
  const dx = accumulated(n, r, (g) => k.ropeBackward(R, g, inv, B, T, H, Dh, 5));
  checkGrads('rope', loss, [[x, dx]]);
});

const attnCases = [
  { name: 'MHA causal', B: 1, T: 4, S: 4, H: 2, Hkv: 2, Dh: 3, qOffset: 0, causal: true, mask: false },
  { name: 'GQA H4 Hkv2 + padding mask', B: 2, T: 4, S: 4, H: 4, Hkv: 2, Dh: 3, qOffset: 0, causal: true, mask: true },
  {
    name: 'GQA H4 Hkv1 + fully masked row',
    B: 2,
    T: 3,
    S: 3,
    H: 4,
    Hkv: 1,
    Dh: 2,
    qOffset: 0,
    causal: true,
    mask: true,
  },
  { name: 'decode qOffset 2', B: 1, T: 2, S: 4, H: 2, Hkv: 1, Dh: 3, qOffset: 2, causal: true, mask: true },
  { name: 'non-causal', B: 1, T: 3, S: 5, H: 2, Hkv: 2, Dh: 2, qOffset: 0, causal: false, mask: true },
  { name: 'sliding window 2', B: 2, T: 5, S: 5, H: 4, Hkv: 2, Dh: 3, qOffset: 0, causal: true, mask: true, window: 2 },
  {
    name: 'sliding window 3 decode',
    B: 1,
    T: 3,
    S: 6,
    H: 2,
    Hkv: 1,
    Dh: 3,
    qOffset: 3,
    causal: true,
    mask: true,
    window: 3,
  },
];
for (const c of attnCases) {
  test(`gradcheck: attention ${c.name}`, () => {
    const r = rng(c.T * 31 + c.H);
    const nq = c.B * c.T * c.H * c.Dh,
      nk = c.B * c.S * c.Hkv * c.Dh;
    const q = f64(randn(nq, r)),
      kk = f64(randn(nk, r)),
      v = f64(randn(nk, r)),
      R = f64(randn(nq, r));
    let keyMask: Float64Array | null = null;
    if (c.mask) {
      keyMask = new Float64Array(c.B * c.S);
      keyMask[0] = -Infinity; // batch 0: query 0 sees nothing when causal
      keyMask[c.B * c.S - 1] = -Infinity;
      if (c.S > 2) keyMask[1] = -0.7; // a finite additive bias
    }
    const out = new Float64Array(nq),
      probs = new Float64Array(c.B * c.H * c.T * c.S);
    const scale = 1 / Math.sqrt(c.Dh);
    const fwd = () =>
      k.attentionForward({
        q,
        k: kk,
        v,
        out,
        probs,
        keyMask,
        B: c.B,
        T: c.T,
        S: c.S,
        H: c.H,
        Hkv: c.Hkv,
        Dh: c.Dh,
        qOffset: c.qOffset,
        scale,
        causal: c.causal,
        window: 'window' in c ? c.window : 0,
      });
    const loss = () => (fwd(), dotR(out, R));
    fwd();
    const base = { dq: f64(randn(nq, r)), dk: f64(randn(nk, r)), dv: f64(randn(nk, r)) };
    const dq = Float64Array.from(base.dq),
      dk = Float64Array.from(base.dk),
      dv = Float64Array.from(base.dv);
    k.attentionBackward({
      dOut: R,
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
    for (const [g, b] of [
      [dq, base.dq],
      [dk, base.dk],
      [dv, base.dv],
    ] as const)
      for (let i = 0; i < g.length; i++) g[i] = g[i]! - b[i]!;
    checkGrads(`attention ${c.name}`, loss, [
      [q, dq],
      [kk, dk],
      [v, dv],
    ]);
  });
}

test('gradcheck: swiglu and silu', () => {
  const r = rng(4),
    n = 9;
  const gate = f64(randn(n, r, 3)),
    up = f64(randn(n, r)),
    R = f64(randn(n, r)),
    out = new Float64Array(n);
  const loss = () => (k.swigluForward(gate, up, out, n), dotR(out, R));
  const dGate = accumulated(n, r, (g) => k.swigluBackward(R, gate, up, g, new Float64Array(n), n));
  const dUp = accumulated(n, r, (g) => k.swigluBackward(R, gate, up, new Float64Array(n), g, n));
  checkGrads('swiglu', loss, [
    [gate, dGate],
    [up, dUp],
  ]);
  const lossSilu = () => (k.siluForward(gate, out, n), dotR(out, R));
  const dx = accumulated(n, r, (g) => k.siluBackward(R, gate, g, n));
  checkGrads('silu', lossSilu, [[gate, dx]]);
});

test('gradcheck: softmax and log-softmax', () => {
  const r = rng(5),
    N = 3,
    V = 6;
  const x = f64(randn(N * V, r, 2)),
    R = f64(randn(N * V, r)),
    y = new Float64Array(N * V);
  const loss = () => (k.softmaxForward(x, y, N, V), dotR(y, R));
  loss();
  const dx = accumulated(N * V, r, (g) => k.softmaxBackward(R, y, g, N, V));
  checkGrads('softmax', loss, [[x, dx]]);
  const lossLog = () => (k.logSoftmaxForward(x, y, N, V), dotR(y, R));
  lossLog();
  const dlx = accumulated(N * V, r, (g) => k.logSoftmaxBackward(R, y, g, N, V));
  checkGrads('logSoftmax', lossLog, [[x, dlx]]);
});

test('gradcheck: embedding', () => {
  const r = rng(6),
    V = 5,
    D = 3,
    N = 7;
  const table = f64(randn(V * D, r)),
    ids = Int32Array.from([0, 2, 2, 4, 1, 2, 0]),
    R = f64(randn(N * D, r));
  const out = new Float64Array(N * D);
  const loss = () => (k.embeddingForward(table, ids, out, N, D), dotR(out, R));
  const dt = accumulated(V * D, r, (g) => k.embeddingBackward(R, ids, g, N, D));
  checkGrads('embedding', loss, [[table, dt]]);
});

test('gradcheck: cross-entropy with ignore index', () => {
  const r = rng(7),
    N = 5,
    V = 6;
  const logits = f64(randn(N * V, r, 2)),
    targets = randInt(N, V, r),
    lse = new Float64Array(N);
  targets[1] = -100;
  const loss = () => k.crossEntropyForward(logits, targets, lse, N, V, -100).sum * 0.7;
  loss();
  const d = accumulated(N * V, r, (g) => k.crossEntropyBackward(logits, targets, lse, g, N, V, -100, 0.7));
  checkGrads('cross-entropy', loss, [[logits, d]]);
});

for (const teacherIsProbs of [false, true]) {
  test(`gradcheck: KL teacherIsProbs=${teacherIsProbs} with rowWeight`, () => {
    const r = rng(teacherIsProbs ? 8 : 9),
      N = 4,
      V = 5;
    const teacher = f64(randn(N * V, r, 2));
    if (teacherIsProbs) k.softmaxForward(Float64Array.from(teacher), teacher, N, V);
    if (teacherIsProbs) (teacher[3] = 0), (teacher[4] = 0), (teacher[0] = 1 - teacher[1]! - teacher[2]!); // zeros in row 0
    const student = f64(randn(N * V, r, 2)),
      w = Float64Array.from([1, 0, 0.5, 2]),
      lse = new Float64Array(N);
    const loss = () => k.klForward(teacher, student, lse, w, N, V, teacherIsProbs) * 1.3;
    loss();
    const d = accumulated(N * V, r, (g) => k.klBackward(teacher, student, lse, w, g, N, V, teacherIsProbs, 1.3));
    checkGrads('kl', loss, [[student, d]]);
  });
}

test('gradcheck: NMSE', () => {
  const r = rng(10),
    n = 8;
  const s = f64(randn(n, r)),
    t = f64(randn(n, r));
  const loss = () => k.nmseForward(s, t, n).value * 0.9;
  const { denom } = k.nmseForward(s, t, n);
  const d = accumulated(n, r, (g) => k.nmseBackward(s, t, g, n, denom, 0.9));
  checkGrads('nmse', loss, [[s, d]]);
});
