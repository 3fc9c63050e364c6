// Differentiable ops: each checks shapes (errors name the op and the shapes), runs a fused kernel
// forward and records a hand-written backward that accumulates into its inputs' gradients.
import { kernels, take, release } from './engine.js';
import { Tensor, result, onBackward, onBackwardAny, saved, shapeStr, numel, type Shape } from './tensor.js';
import { FrozenWeight } from './frozen.js';

function fail(op: string, msg: string): never {
  throw new Error(`${op}: ${msg}`);
}

function lastDim(t: Tensor): number {
  return t.shape[t.shape.length - 1] ?? 1;
}

function rows(t: Tensor): number {
  return t.size / lastDim(t);
}

function sameShape(op: string, a: Tensor, b: Tensor): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    fail(op, `shapes differ: '${a.name}' ${shapeStr(a.shape)} vs '${b.name}' ${shapeStr(b.shape)}`);
  }
}

function checkInt(op: string, what: string, v: number): void {
  if (!Number.isInteger(v) || v <= 0) fail(op, `${what} must be a positive integer, got ${v}`);
}

// ---- linear algebra --------------------------------------------------------------------------

/** A linear layer's weight: a Tensor [N, K] (trainable or frozen) or a FrozenWeight in a stored format. */
export type Weight = Tensor | FrozenWeight;

type GemmParams = Parameters<ReturnType<typeof kernels>['gemm']>[0];

/** One unbatched gemm from the short list of fields that vary (no offsets, no strides). */
function gemm2(p: {
  tA: boolean;
  tB: boolean;
  M: number;
  N: number;
  K: number;
  alpha: number;
  A: Float32Array;
  lda: number;
  B: Float32Array;
  ldb: number;
  beta: number;
  C: Float32Array;
  ldc: number;
  aOff?: number;
  bOff?: number;
  cOff?: number;
}): void {
  const g: GemmParams = {
    transA: p.tA,
    transB: p.tB,
    M: p.M,
    N: p.N,
    K: p.K,
    alpha: p.alpha,
    A: p.A,
    aOff: p.aOff ?? 0,
    lda: p.lda,
    strideA: 0,
    B: p.B,
    bOff: p.bOff ?? 0,
    ldb: p.ldb,
    strideB: 0,
    beta: p.beta,
    C: p.C,
    cOff: p.cOff ?? 0,
    ldc: p.ldc,
    strideC: 0,
    batch: 1,
  };
  kernels().gemm(g);
}

/** A weight as a part of weightGroupGemm: f32 values, or its stored bytes. */
export function weightSource(w: Weight): { format: FrozenWeight['format']; W: Float32Array | Uint8Array } {
  return w instanceof FrozenWeight ? { format: w.format, W: w.bytes } : { format: 'f32', W: w.data };
}

function checkWeight(op: string, x: Tensor, w: Weight): [number, number] {
  const K = lastDim(x);
  if (w.shape.length !== 2) fail(op, `weight '${w.name}' must be 2-D [out, in], got ${shapeStr(w.shape)}`);
  const [N, Kw] = w.shape as [number, number];
  if (Kw !== K)
    fail(
      op,
      `input '${x.name}' ${shapeStr(x.shape)} does not match weight '${w.name}' ${shapeStr(w.shape)} (in features ${Kw})`,
    );
  return [N, K];
}

/** A LoRA branch on a linear layer: scale * (x_d A^T) B^T, x_d = x * mask (inverted dropout) when a mask is given. */
export interface LoraBranch {
  a: Tensor;
  b: Tensor;
  scale: number;
  mask: Float32Array | null;
}

/**
 * One projection of a linear group: its weight [N, K], the name of its output, an optional LoRA
 * branch, and an optional residual [..., N] the output starts from (y = residual + x W^T: the gemm
 * accumulates onto a copy of it, instead of a separate add reading both and writing a third array).
 */
export interface LinearPart {
  w: Weight;
  name: string;
  lora?: LoraBranch | null;
  residual?: Tensor | null;
}

/**
 * Several linear layers over the same input x [..., K], y_s = x W_s^T (+ LoRA), as ONE gemm over
 * the weights side by side (fused q/k/v or gate/up projections), and one gemm for the input
 * gradient (dx = sum_s dy_s W_s). Each W_s is a Tensor [N_s, K] (trainable or frozen) or a
 * FrozenWeight in a stored format, never copied or concatenated in memory; each output is its own
 * tensor [..., N_s]. A LoRA branch stays per part (its own factors, scale and dropout mask): its
 * small gemms run after the fused one, the last accumulating into y_s with beta = 1. A trainable
 * W_s gets dW_s += dy_s^T x; a frozen one keeps no gradient but passes it to x.
 */
export function linearGroup(x: Tensor, parts: readonly LinearPart[], op = 'linearGroup'): Tensor[] {
  if (parts.length === 0) fail(op, 'no weights');
  const withResidual = parts.filter((p) => p.residual).length;
  if (withResidual !== 0 && withResidual !== parts.length) fail(op, 'either every part has a residual or none');
  const K = lastDim(x);
  const M = x.size / K;
  const k = kernels();
  // LoRA branches without dropout all read x itself: with two or more (q/k/v), their A factors are
  // stacked [R, K] (R = sum of ranks) so that x A^T, dA = dh^T x and dx += dh A each run as one gemm,
  // reading x (or writing dx) once instead of once per branch. h and dh are [M, R], a branch's
  // columns at its offset.
  const stacked = parts.filter((p) => p.lora && !p.lora.mask).length >= 2;
  let R = 0;
  const st = parts.map((p) => {
    const [N] = checkWeight(op, x, p.w);
    const l = p.lora ?? null;
    let xd = x.data;
    let h: Float32Array | null = null;
    const inputs: Tensor[] = p.w instanceof Tensor ? [x, p.w] : [x];
    if (l) {
      const r = l.a.shape[0]!;
      if (
        l.a.shape.length !== 2 ||
        l.a.shape[1] !== K ||
        l.b.shape.length !== 2 ||
        l.b.shape[0] !== N ||
        l.b.shape[1] !== r
      ) {
        fail(
          op,
          `LoRA factors '${l.a.name}' ${shapeStr(l.a.shape)} / '${l.b.name}' ${shapeStr(l.b.shape)} do not fit weight ${shapeStr(p.w.shape)}`,
        );
      }
      if (l.mask) {
        if (l.mask.length !== x.size)
          fail(op, `dropout mask has ${l.mask.length} values for input ${shapeStr(x.shape)}`);
        xd = saved(x.size, `${p.name}.xdrop`);
        k.mul(x.data, l.mask, xd, x.size);
      }
      if (!(stacked && !l.mask)) h = saved(M * r, `${p.name}.h`);
      inputs.push(l.a, l.b);
    }
    const off = l && stacked && !l.mask ? R : -1;
    if (off >= 0) R += l!.a.shape[0]!;
    const res = p.residual ?? null;
    if (res) {
      inputs.push(res);
      if (res.size !== M * N || lastDim(res) !== N)
        fail(
          op,
          `residual '${res.name}' ${shapeStr(res.shape)} does not fit the output of '${p.w.name}' [${M} x ${N}]`,
        );
    }
    const out = result([...x.shape.slice(0, -1), N], inputs, p.name);
    if (res) out.data.set(res.data);
    return { w: p.w, l, N, xd, h, out, res, off };
  });
  const stack = st.filter((s) => s.off >= 0);
  // The stacked A factors [R, K], copied (R x K values: small) for the forward and again for the backward.
  const stackA = (): Float32Array => {
    const a = take(R * K);
    for (const s of stack) a.set(s.l!.a.data, s.off * K);
    return a;
  };
  const hAll = stack.length > 0 ? saved(M * R, `${parts.map((p) => p.name).join('+')}.h`) : null;
  k.weightGroupGemm({
    K,
    transW: true,
    M,
    alpha: 1,
    beta: withResidual ? 1 : 0,
    shared: x.data,
    sharedOff: 0,
    ldShared: K,
    parts: st.map((s) => ({ ...weightSource(s.w), N: s.N, io: s.out.data, ioOff: 0, ldio: s.N })),
  });
  // The columns of h (x A^T) a branch reads: its own [M, r] array, or its columns of hAll.
  const hOf = (s: (typeof st)[number]): { buf: Float32Array; off: number; ld: number } =>
    s.off >= 0 ? { buf: hAll!, off: s.off, ld: R } : { buf: s.h!, off: 0, ld: s.l!.a.shape[0]! };
  if (hAll) {
    const a = stackA();
    gemm2({ tA: false, tB: true, M, N: R, K, alpha: 1, A: x.data, lda: K, B: a, ldb: K, beta: 0, C: hAll, ldc: R });
    release(a);
  }
  for (const { l, xd, h } of st) {
    if (!l || !h) continue;
    const r = l.a.shape[0]!;
    gemm2({ tA: false, tB: true, M, N: r, K, alpha: 1, A: xd, lda: K, B: l.a.data, ldb: K, beta: 0, C: h, ldc: r });
  }
  // out += scale h B^T for every LoRA branch
  for (const s of st) {
    if (!s.l) continue;
    const hv = hOf(s);
    const r = s.l.a.shape[0]!;
    gemm2({
      tA: false,
      tB: true,
      M,
      N: s.N,
      K: r,
      alpha: s.l.scale,
      A: hv.buf,
      aOff: hv.off,
      lda: hv.ld,
      B: s.l.b.data,
      ldb: r,
      beta: 1,
      C: s.out.data,
      ldc: s.N,
    });
  }
  const outs = st.map((s) => s.out);
  onBackwardAny(outs, () => {
    const live = st.filter((s) => s.out.grad);
    const dhs: (Float32Array | null)[] = [];
    const liveStack = live.filter((s) => s.off >= 0);
    // dh of the stacked branches [M, R]; a branch without a gradient keeps zero columns.
    const dhAll =
      hAll && liveStack.some((s) => s.l!.a.requiresGrad || x.requiresGrad)
        ? take(M * R, liveStack.length < stack.length)
        : null;
    for (const s of live) {
      const { w, l, N, xd, out, res, off } = s;
      const dy = out.grad!;
      if (res?.requiresGrad) k.axpy(1, dy, res.gradBuffer(), res.size);
      // dW[N,K] += dy^T[N,M] @ x[M,K]
      if (w instanceof Tensor && w.requiresGrad)
        gemm2({
          tA: true,
          tB: false,
          M: N,
          N: K,
          K: M,
          alpha: 1,
          A: dy,
          lda: N,
          B: x.data,
          ldb: K,
          beta: 1,
          C: w.gradBuffer(),
          ldc: K,
        });
      // a branch's own dh [M, r]; a stacked branch writes its columns of dhAll instead
      let dh: Float32Array | null = null;
      if (l) {
        const r = l.a.shape[0]!;
        const hv = hOf(s);
        if (l.b.requiresGrad)
          gemm2({
            tA: true,
            tB: false,
            M: N,
            N: r,
            K: M,
            alpha: l.scale,
            A: dy,
            lda: N,
            B: hv.buf,
            bOff: hv.off,
            ldb: hv.ld,
            beta: 1,
            C: l.b.gradBuffer(),
            ldc: r,
          });
        if (off < 0 && (l.a.requiresGrad || x.requiresGrad)) dh = take(M * r);
        const dhv = off >= 0 ? (dhAll ? { buf: dhAll, off, ld: R } : null) : dh ? { buf: dh, off: 0, ld: r } : null;
        if (dhv)
          gemm2({
            tA: false,
            tB: false,
            M,
            N: r,
            K: N,
            alpha: l.scale,
            A: dy,
            lda: N,
            B: l.b.data,
            ldb: r,
            beta: 0,
            C: dhv.buf,
            cOff: dhv.off,
            ldc: dhv.ld,
          });
        if (dh && l.a.requiresGrad)
          gemm2({
            tA: true,
            tB: false,
            M: r,
            N: K,
            K: M,
            alpha: 1,
            A: dh,
            lda: r,
            B: xd,
            ldb: K,
            beta: 1,
            C: l.a.gradBuffer(),
            ldc: K,
          });
      }
      dhs.push(dh);
    }
    if (dhAll && liveStack.some((s) => s.l!.a.requiresGrad)) {
      // dA of every stacked branch in one gemm: dA_all [R, K] = dh_all^T x
      const dA = take(R * K);
      gemm2({
        tA: true,
        tB: false,
        M: R,
        N: K,
        K: M,
        alpha: 1,
        A: dhAll,
        lda: R,
        B: x.data,
        ldb: K,
        beta: 0,
        C: dA,
        ldc: K,
      });
      for (const { l, off } of liveStack) {
        if (!l!.a.requiresGrad) continue;
        const r = l!.a.shape[0]!;
        k.axpy(1, dA.subarray(off * K, (off + r) * K), l!.a.gradBuffer(), r * K);
      }
      release(dA);
    }
    if (x.requiresGrad && live.length > 0) {
      const dx = x.gradBuffer();
      // dx[M,K] += sum_s dy_s[M,N_s] @ W_s[N_s,K]: one gemm over the weights stacked along N
      k.weightGroupGemm({
        K,
        transW: false,
        M,
        alpha: 1,
        beta: 1,
        shared: dx,
        sharedOff: 0,
        ldShared: K,
        parts: live.map((s) => ({ ...weightSource(s.w), N: s.N, io: s.out.grad!, ioOff: 0, ldio: s.N })),
      });
      if (dhAll) {
        // dx += dh_all A_all: every stacked branch in one pass over dx
        const a = stackA();
        gemm2({
          tA: false,
          tB: false,
          M,
          N: K,
          K: R,
          alpha: 1,
          A: dhAll,
          lda: R,
          B: a,
          ldb: K,
          beta: 1,
          C: dx,
          ldc: K,
        });
        release(a);
      }
      live.forEach(({ l }, i) => {
        const dh = dhs[i];
        if (!l || !dh) return;
        const r = l.a.shape[0]!;
        // dx += dh @ A, straight into dx, or through a scratch array when dropout's mask applies
        const dst = l.mask ? take(x.size) : dx;
        gemm2({
          tA: false,
          tB: false,
          M,
          N: K,
          K: r,
          alpha: 1,
          A: dh,
          lda: r,
          B: l.a.data,
          ldb: K,
          beta: l.mask ? 0 : 1,
          C: dst,
          ldc: K,
        });
        if (!l.mask) return;
        const tmp = dst;
        k.mul(tmp, l.mask, tmp, x.size);
        k.axpy(1, tmp, dx, x.size);
        release(tmp);
      });
    }
    for (const dh of dhs) if (dh) release(dh);
    if (dhAll) release(dhAll);
  });
  return outs;
}

/**
 * y = x @ W^T with x [..., K] and W [N, K] (the PyTorch nn.Linear layout): y [..., N].
 * W is a Tensor or a FrozenWeight (bf16, f16, q8_0, q4_0, f32 kept in its stored format). No
 * gradient is kept for a frozen W; x still receives its gradient.
 */
export function linear(x: Tensor, w: Weight, name = 'linear'): Tensor {
  return linearGroup(x, [{ w, name }], 'linear')[0]!;
}

/**
 * Fused LoRA linear: y = x W^T + scale * (x_d A^T) B^T, with W [N, K] (a Tensor, frozen or not, or
 * a FrozenWeight), A [r, K], B [N, r], and x_d = x * dropMask when a dropout mask is given. One pass
 * writes y with three gemms (the last accumulating with beta = 1), instead of separate linear,
 * scale and add ops.
 */
export function loraLinear(
  x: Tensor,
  w: Weight,
  a: Tensor,
  b: Tensor,
  scaleV: number,
  dropMask: Float32Array | null,
  name = 'lora_linear',
): Tensor {
  return linearGroup(x, [{ w, name, lora: { a, b, scale: scaleV, mask: dropMask } }], 'loraLinear')[0]!;
}

/** Batched matmul: a [b, M, K] @ b [b, K, N] (optionally transposed) -> [b, M, N]. */
export function matmul(a: Tensor, b: Tensor, opts: { transA?: boolean; transB?: boolean } = {}): Tensor {
  const tA = opts.transA ?? false;
  const tB = opts.transB ?? false;
  if (a.shape.length < 2 || b.shape.length < 2)
    fail('matmul', `needs at least 2-D inputs, got ${shapeStr(a.shape)} and ${shapeStr(b.shape)}`);
  const ar = a.shape.length;
  const br = b.shape.length;
  const batchA = numel(a.shape.slice(0, -2));
  const batchB = numel(b.shape.slice(0, -2));
  if (batchA !== batchB) fail('matmul', `batch dimensions differ: ${shapeStr(a.shape)} vs ${shapeStr(b.shape)}`);
  const [a0, a1] = [a.shape[ar - 2]!, a.shape[ar - 1]!];
  const [b0, b1] = [b.shape[br - 2]!, b.shape[br - 1]!];
  const M = tA ? a1 : a0;
  const K = tA ? a0 : a1;
  const Kb = tB ? b1 : b0;
  const N = tB ? b0 : b1;
  if (K !== Kb)
    fail(
      'matmul',
      `inner dimensions differ: ${shapeStr(a.shape)}${tA ? '^T' : ''} @ ${shapeStr(b.shape)}${tB ? '^T' : ''}`,
    );
  const batch = batchA;
  const out = result([...a.shape.slice(0, -2), M, N], [a, b], 'matmul');
  const k = kernels();
  k.gemm({
    transA: tA,
    transB: tB,
    M,
    N,
    K,
    alpha: 1,
    A: a.data,
    aOff: 0,
    lda: a1,
    strideA: a0 * a1,
    B: b.data,
    bOff: 0,
    ldb: b1,
    strideB: b0 * b1,
    beta: 0,
    C: out.data,
    cOff: 0,
    ldc: N,
    strideC: M * N,
    batch,
  });
  onBackward(out, () => {
    const dy = out.grad!;
    if (a.requiresGrad) {
      // dA = dY @ op(B)^T  (or its transpose when A was transposed)
      if (!tA)
        k.gemm({
          transA: false,
          transB: !tB,
          M,
          N: K,
          K: N,
          alpha: 1,
          A: dy,
          aOff: 0,
          lda: N,
          strideA: M * N,
          B: b.data,
          bOff: 0,
          ldb: b1,
          strideB: b0 * b1,
          beta: 1,
          C: a.gradBuffer(),
          cOff: 0,
          ldc: K,
          strideC: M * K,
          batch,
        });
      else
        k.gemm({
          transA: tB,
          transB: true,
          M: K,
          N: M,
          K: N,
          alpha: 1,
          A: b.data,
          aOff: 0,
          lda: b1,
          strideA: b0 * b1,
          B: dy,
          bOff: 0,
          ldb: N,
          strideB: M * N,
          beta: 1,
          C: a.gradBuffer(),
          cOff: 0,
          ldc: M,
          strideC: M * K,
          batch,
        });
    }
    if (b.requiresGrad) {
      if (!tB)
        k.gemm({
          transA: !tA,
          transB: false,
          M: K,
          N,
          K: M,
          alpha: 1,
          A: a.data,
          aOff: 0,
          lda: a1,
          strideA: a0 * a1,
          B: dy,
          bOff: 0,
          ldb: N,
          strideB: M * N,
          beta: 1,
          C: b.gradBuffer(),
          cOff: 0,
          ldc: N,
          strideC: K * N,
          batch,
        });
      else
        k.gemm({
          transA: true,
          transB: tA,
          M: N,
          N: K,
          K: M,
          alpha: 1,
          A: dy,
          aOff: 0,
          lda: N,
          strideA: M * N,
          B: a.data,
          bOff: 0,
          ldb: a1,
          strideB: a0 * a1,
          beta: 1,
          C: b.gradBuffer(),
          cOff: 0,
          ldc: K,
          strideC: K * N,
          batch,
        });
    }
  });
  return out;
}

// ---- elementwise -----------------------------------------------------------------------------

export function add(a: Tensor, b: Tensor, name = 'add'): Tensor {
  sameShape('add', a, b);
  const out = result(a.shape, [a, b], name);
  const k = kernels();
  k.add(a.data, b.data, out.data, a.size);
  onBackward(out, () => {
    const dy = out.grad!;
    if (a.requiresGrad) k.axpy(1, dy, a.gradBuffer(), a.size);
    if (b.requiresGrad) k.axpy(1, dy, b.gradBuffer(), b.size);
  });
  return out;
}

export function mul(a: Tensor, b: Tensor, name = 'mul'): Tensor {
  sameShape('mul', a, b);
  const out = result(a.shape, [a, b], name);
  const k = kernels();
  k.mul(a.data, b.data, out.data, a.size);
  onBackward(out, () => {
    const dy = out.grad!;
    const tmp = take(a.size);
    if (a.requiresGrad) {
      k.mul(dy, b.data, tmp, a.size);
      k.axpy(1, tmp, a.gradBuffer(), a.size);
    }
    if (b.requiresGrad) {
      k.mul(dy, a.data, tmp, a.size);
      k.axpy(1, tmp, b.gradBuffer(), b.size);
    }
    release(tmp);
  });
  return out;
}

export function scale(x: Tensor, alpha: number, name = 'scale'): Tensor {
  const out = result(x.shape, [x], name);
  const k = kernels();
  k.scale(alpha, x.data, out.data, x.size);
  onBackward(out, () => {
    if (x.requiresGrad) k.axpy(alpha, out.grad!, x.gradBuffer(), x.size);
  });
  return out;
}

/**
 * An inverted-dropout mask of n values (0 with probability p, else 1/(1-p)), kept until the tape is
 * reset so that the backward pass sees the same mask.
 */
export function dropoutMask(n: number, p: number, random: () => number): Float32Array {
  if (!(p >= 0 && p < 1)) fail('dropout', `probability must be in [0, 1), got ${p}`);
  const mask = saved(n, 'dropout.mask');
  const keep = 1 / (1 - p);
  for (let i = 0; i < n; i++) mask[i] = random() < p ? 0 : keep;
  return mask;
}

export function silu(x: Tensor): Tensor {
  const out = result(x.shape, [x], 'silu');
  const k = kernels();
  k.siluForward(x.data, out.data, x.size);
  onBackward(out, () => {
    if (x.requiresGrad) k.siluBackward(out.grad!, x.data, x.gradBuffer(), x.size);
  });
  return out;
}

/** silu(gate) * up, the LLaMA MLP's gated activation. */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  sameShape('swiglu', gate, up);
  const out = result(gate.shape, [gate, up], 'swiglu');
  const k = kernels();
  k.swigluForward(gate.data, up.data, out.data, gate.size);
  onBackward(out, () => {
    const dG = gate.requiresGrad ? gate.gradBuffer() : take(gate.size, true);
    const dU = up.requiresGrad ? up.gradBuffer() : take(up.size, true);
    k.swigluBackward(out.grad!, gate.data, up.data, dG, dU, gate.size);
    if (!gate.requiresGrad) release(dG);
    if (!up.requiresGrad) release(dU);
  });
  return out;
}

// ---- embedding, normalisation, rotary --------------------------------------------------------

/** Rows of table [V, D] picked by ids: [...idsShape, D]. Ids are checked against V. */
export function embedding(table: Tensor, ids: Int32Array, idsShape: Shape): Tensor {
  if (table.shape.length !== 2)
    fail('embedding', `table '${table.name}' must be 2-D [vocab, dim], got ${shapeStr(table.shape)}`);
  const [V, D] = table.shape as [number, number];
  if (numel(idsShape) !== ids.length)
    fail('embedding', `ids length ${ids.length} does not match shape ${shapeStr(idsShape)}`);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (id < 0 || id >= V)
      fail('embedding', `token id ${id} at position ${i} is outside the vocabulary [0, ${V}) of '${table.name}'`);
  }
  const out = result([...idsShape, D], [table], 'embedding');
  const k = kernels();
  k.embeddingForward(table.data, ids, out.data, ids.length, D);
  onBackward(out, () => {
    if (table.requiresGrad) k.embeddingBackward(out.grad!, ids, table.gradBuffer(), ids.length, D);
  });
  return out;
}

export function rmsnorm(x: Tensor, w: Tensor, eps: number): Tensor {
  const D = lastDim(x);
  if (w.size !== D || w.shape.length !== 1)
    fail('rmsnorm', `weight '${w.name}' ${shapeStr(w.shape)} does not match input '${x.name}' ${shapeStr(x.shape)}`);
  const N = rows(x);
  const out = result(x.shape, [x, w], 'rmsnorm');
  const rstd = saved(N, 'rmsnorm.rstd');
  const k = kernels();
  k.rmsnormForward(x.data, w.data, out.data, rstd, N, D, eps);
  onBackward(out, () => {
    k.rmsnormBackward(
      out.grad!,
      x.data,
      w.data,
      rstd,
      x.requiresGrad ? x.gradBuffer() : null,
      w.requiresGrad ? w.gradBuffer() : null,
      N,
      D,
    );
  });
  return out;
}

/** Rotary embeddings on x viewed as [B, T, H, Dh], positions posOffset .. posOffset + T - 1. */
export function rope(
  x: Tensor,
  invFreq: Float32Array,
  dims: { B: number; T: number; H: number; Dh: number },
  posOffset = 0,
): Tensor {
  const { B, T, H, Dh } = dims;
  for (const [n, v] of Object.entries(dims)) checkInt('rope', n, v);
  if (B * T * H * Dh !== x.size)
    fail('rope', `input '${x.name}' ${shapeStr(x.shape)} is not [B=${B}, T=${T}, H=${H}, Dh=${Dh}]`);
  if (Dh % 2 !== 0 || invFreq.length !== Dh / 2)
    fail('rope', `head dim ${Dh} must be even with ${Dh / 2} inverse frequencies, got ${invFreq.length}`);
  const out = result(x.shape, [x], 'rope');
  const k = kernels();
  k.ropeForward(x.data, out.data, invFreq, B, T, H, Dh, posOffset);
  onBackward(out, () => {
    if (x.requiresGrad) k.ropeBackward(out.grad!, x.gradBuffer(), invFreq, B, T, H, Dh, posOffset);
  });
  return out;
}

// ---- attention ---------------------------------------------------------------------------------

export interface AttentionDims {
  B: number;
  T: number;
  S: number;
  H: number;
  Hkv: number;
  Dh: number;
}

/**
 * Causal grouped-query attention. q [B, T, H*Dh], k and v [B, S, Hkv*Dh] (or any shape with those
 * element counts); keyMask [B, S] is added to the scores (0 keep, -Infinity hide: padding).
 * window (causal only, null/absent: none): each query sees only its last `window` keys, itself
 * included (sliding-window attention).
 */
export function attention(
  q: Tensor,
  kT: Tensor,
  v: Tensor,
  dims: AttentionDims,
  opts: { keyMask?: Float32Array | null; qOffset?: number; causal?: boolean; window?: number | null } = {},
): Tensor {
  const { B, T, S, H, Hkv, Dh } = dims;
  for (const [n, val] of Object.entries(dims)) checkInt('attention', n, val);
  if (H % Hkv !== 0) fail('attention', `query heads ${H} must be a multiple of kv heads ${Hkv}`);
  if (q.size !== B * T * H * Dh)
    fail('attention', `q '${q.name}' ${shapeStr(q.shape)} is not [B=${B}, T=${T}, H=${H}, Dh=${Dh}]`);
  if (kT.size !== B * S * Hkv * Dh)
    fail('attention', `k '${kT.name}' ${shapeStr(kT.shape)} is not [B=${B}, S=${S}, Hkv=${Hkv}, Dh=${Dh}]`);
  if (v.size !== B * S * Hkv * Dh)
    fail('attention', `v '${v.name}' ${shapeStr(v.shape)} is not [B=${B}, S=${S}, Hkv=${Hkv}, Dh=${Dh}]`);
  const keyMask = opts.keyMask ?? null;
  if (keyMask && keyMask.length !== B * S)
    fail('attention', `keyMask has ${keyMask.length} entries, expected B*S = ${B * S}`);
  const qOffset = opts.qOffset ?? 0;
  const causal = opts.causal ?? true;
  const window = opts.window ?? 0;
  if (!Number.isInteger(window) || window < 0) fail('attention', `window must be a positive integer, got ${window}`);
  if (window > 0 && !causal) fail('attention', 'a sliding window needs causal attention');
  if (causal && qOffset + T > S)
    fail('attention', `causal attention needs S >= qOffset + T, got S=${S}, qOffset=${qOffset}, T=${T}`);
  const out = result([B, T, H * Dh], [q, kT, v], 'attention');
  const probs = saved(B * H * T * S, 'attention.probs');
  const scaleV = 1 / Math.sqrt(Dh);
  const k = kernels();
  k.attentionForward({
    q: q.data,
    k: kT.data,
    v: v.data,
    out: out.data,
    probs,
    keyMask,
    B,
    T,
    S,
    H,
    Hkv,
    Dh,
    qOffset,
    scale: scaleV,
    causal,
    window,
  });
  onBackward(out, () => {
    const grads = [q, kT, v].map((t) => (t.requiresGrad ? t.gradBuffer() : take(t.size, true)));
    k.attentionBackward({
      dOut: out.grad!,
      q: q.data,
      k: kT.data,
      v: v.data,
      probs,
      dq: grads[0]!,
      dk: grads[1]!,
      dv: grads[2]!,
      B,
      T,
      S,
      H,
      Hkv,
      Dh,
      scale: scaleV,
    });
    [q, kT, v].forEach((t, i) => {
      if (!t.requiresGrad) release(grads[i]!);
    });
  });
  return out;
}

// ---- losses (scalar outputs) --------------------------------------------------------------------

function scalar(inputs: Tensor[], name: string, value: number): Tensor {
  const out = result([1], inputs, name);
  out.data[0] = value;
  return out;
}

/**
 * Mean cross-entropy of logits [..., V] against targets (ignoreIndex rows skipped). The mean is over
 * kept rows; with none kept the loss is 0 and carries no gradient.
 */
export function crossEntropy(logits: Tensor, targets: Int32Array, ignoreIndex = -100): Tensor & { count: number } {
  const V = lastDim(logits);
  const N = rows(logits);
  if (targets.length !== N)
    fail('crossEntropy', `${targets.length} targets for logits ${shapeStr(logits.shape)} (${N} rows)`);
  for (let i = 0; i < N; i++) {
    const t = targets[i]!;
    if (t !== ignoreIndex && (t < 0 || t >= V)) fail('crossEntropy', `target ${t} at row ${i} is outside [0, ${V})`);
  }
  const lse = saved(N, 'ce.lse');
  const k = kernels();
  const { sum, count } = k.crossEntropyForward(logits.data, targets, lse, N, V, ignoreIndex);
  const out = scalar([logits], 'crossEntropy', count > 0 ? sum / count : 0) as Tensor & { count: number };
  out.count = count;
  onBackward(out, () => {
    if (count > 0 && logits.requiresGrad)
      k.crossEntropyBackward(logits.data, targets, lse, logits.gradBuffer(), N, V, ignoreIndex, out.grad![0]! / count);
  });
  return out;
}

/**
 * Mean over weighted rows of KL(p_teacher || p_student); teacher is a constant (logits, or
 * probabilities with teacherIsProbs). rowWeight masks padding (0) and the mean divides by its sum.
 */
export function klDivergence(
  teacher: Float32Array,
  student: Tensor,
  opts: { rowWeight?: Float32Array | null; teacherIsProbs?: boolean } = {},
): Tensor {
  const V = lastDim(student);
  const N = rows(student);
  if (teacher.length !== student.size)
    fail(
      'klDivergence',
      `teacher has ${teacher.length} values, student '${student.name}' ${shapeStr(student.shape)} has ${student.size}`,
    );
  const w = opts.rowWeight ?? null;
  if (w && w.length !== N) fail('klDivergence', `rowWeight has ${w.length} entries for ${N} rows`);
  let wsum = N;
  if (w) {
    wsum = 0;
    for (let i = 0; i < N; i++) wsum += w[i]!;
  }
  const lse = saved(N, 'kl.lse');
  const k = kernels();
  const total = k.klForward(teacher, student.data, lse, w, N, V, opts.teacherIsProbs ?? false);
  const out = scalar([student], 'kl', wsum > 0 ? total / wsum : 0);
  onBackward(out, () => {
    if (wsum > 0 && student.requiresGrad)
      k.klBackward(
        teacher,
        student.data,
        lse,
        w,
        student.gradBuffer(),
        N,
        V,
        opts.teacherIsProbs ?? false,
        out.grad![0]! / wsum,
      );
  });
  return out;
}

/** sum((t - s)^2) / sum(t^2) against a constant teacher. */
export function nmse(student: Tensor, teacher: Float32Array): Tensor {
  if (teacher.length !== student.size)
    fail(
      'nmse',
      `teacher has ${teacher.length} values, student '${student.name}' ${shapeStr(student.shape)} has ${student.size}`,
    );
  const k = kernels();
  const { value, denom } = k.nmseForward(student.data, teacher, student.size);
  const out = scalar([student], 'nmse', value);
  onBackward(out, () => {
    if (student.requiresGrad && denom > 0)
      k.nmseBackward(student.data, teacher, student.gradBuffer(), student.size, denom, out.grad![0]!);
  });
  return out;
}

/** 1 - mean over rows of cos(s_i, t_i), rows over the last dimension. */
export function cosineLoss(student: Tensor, teacher: Float32Array): Tensor {
  if (teacher.length !== student.size)
    fail('cosineLoss', `teacher has ${teacher.length} values, student has ${student.size}`);
  const D = lastDim(student);
  const N = rows(student);
  const s = student.data;
  const cos = new Float64Array(N);
  const ns = new Float64Array(N);
  const nt = new Float64Array(N);
  let total = 0;
  for (let i = 0; i < N; i++) {
    let dot = 0,
      ss = 0,
      tt = 0;
    for (let j = i * D; j < (i + 1) * D; j++) {
      dot += s[j]! * teacher[j]!;
      ss += s[j]! * s[j]!;
      tt += teacher[j]! * teacher[j]!;
    }
    ns[i] = Math.sqrt(ss) + 1e-12;
    nt[i] = Math.sqrt(tt) + 1e-12;
    cos[i] = dot / (ns[i]! * nt[i]!);
    total += cos[i]!;
  }
  const out = scalar([student], 'cosine', 1 - total / N);
  onBackward(out, () => {
    if (!student.requiresGrad) return;
    const g = student.gradBuffer();
    const go = out.grad![0]!;
    for (let i = 0; i < N; i++) {
      // d cos / d s = t / (|s||t|) - cos * s / |s|^2
      const a = -go / N / (ns[i]! * nt[i]!);
      const b = ((go / N) * cos[i]!) / (ns[i]! * ns[i]!);
      for (let j = i * D; j < (i + 1) * D; j++) g[j]! += a * teacher[j]! + b * s[j]!;
    }
  });
  return out;
}

/** sum((x - anchor)^2): the proximal term's building block; anchor is a constant. */
export function squaredDistance(x: Tensor, anchor: Float32Array): Tensor {
  if (anchor.length !== x.size)
    fail('squaredDistance', `anchor has ${anchor.length} values, '${x.name}' ${shapeStr(x.shape)} has ${x.size}`);
  const d = x.data;
  let total = 0;
  for (let i = 0; i < x.size; i++) {
    const e = d[i]! - anchor[i]!;
    total += e * e;
  }
  const out = scalar([x], 'squaredDistance', total);
  onBackward(out, () => {
    if (!x.requiresGrad) return;
    const g = x.gradBuffer();
    const go = 2 * out.grad![0]!;
    for (let i = 0; i < x.size; i++) g[i]! += go * (d[i]! - anchor[i]!);
  });
  return out;
}

/** sum_i weight_i * term_i of scalar tensors: combines losses. */
export function weightedSum(terms: readonly (readonly [Tensor, number])[], name = 'loss'): Tensor {
  let v = 0;
  for (const [t, w] of terms) {
    if (t.size !== 1) fail('weightedSum', `term '${t.name}' is not a scalar: ${shapeStr(t.shape)}`);
    v += w * t.data[0]!;
  }
  const out = scalar(
    terms.map(([t]) => t),
    name,
    v,
  );
  onBackward(out, () => {
    const go = out.grad![0]!;
    for (const [t, w] of terms) if (t.requiresGrad) t.gradBuffer()[0]! += w * go;
  });
  return out;
}
