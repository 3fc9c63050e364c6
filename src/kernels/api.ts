// The kernel contract: every numerical primitive the engine uses, on flat row-major arrays.
//
// Two implementations exist: `reference.ts` (plain TypeScript, generic over Float32Array and
// Float64Array, the ground truth used by tests in float64) and `native.ts` (the C++ addon over
// OpenBLAS, Float32Array only). The autodiff layer (src/tensor) only talks to this interface.
//
// Conventions
// - All arrays are contiguous row-major. Shapes are given as explicit integer arguments.
// - "out" arguments are written (overwritten) unless the doc says "accumulates" (+=).
// - Backward kernels ACCUMULATE into gradient buffers (dx += ...), so that a tensor used twice
//   collects both contributions; callers zero gradients once per step.
// - Integer index arrays are Int32Array.
// - Kernels validate nothing expensive; src/tensor checks shapes before calling and names the op.

export type FArr = Float32Array | Float64Array;

import type { WeightFormat } from './weights.js';
export type { WeightFormat } from './weights.js';

/** One weight of weightGroupGemm: W [N, K] as f32 values (format 'f32') or stored bytes, and its own X or Y. */
export interface GroupPart<A extends FArr = Float32Array> {
  format: WeightFormat;
  W: A | Uint8Array;
  N: number;
  io: A;
  ioOff: number;
  ldio: number;
}

export interface Kernels<A extends FArr = Float32Array> {
  /** 'native' or 'reference': which implementation this is. */
  readonly name: string;

  // ---- BLAS-like ---------------------------------------------------------------------------
  /**
   * Batched GEMM: for b in [0, batch): C_b = alpha * op(A_b) @ op(B_b) + beta * C_b.
   * op(A_b) is M x K, op(B_b) is K x N, C_b is M x N.
   * A_b starts at aOff + b * strideA, with leading dimension lda (row length of A as stored:
   * K when !transA, M when transA, or larger for strided views). Same for B (ldb) and C (ldc).
   * beta = 0 means C is overwritten (its old content, even NaN, is ignored).
   */
  gemm(p: {
    transA: boolean;
    transB: boolean;
    M: number;
    N: number;
    K: number;
    alpha: number;
    A: A;
    aOff: number;
    lda: number;
    strideA: number;
    B: A;
    bOff: number;
    ldb: number;
    strideB: number;
    beta: number;
    C: A;
    cOff: number;
    ldc: number;
    strideC: number;
    batch: number;
  }): void;

  /**
   * GEMM against a stored frozen weight W [N, K] (N rows of K values, the nn.Linear layout) kept in
   * `format` (f32, bf16, f16, GGUF q8_0 / q4_0; byte layouts in weights.ts). W is widened to f32
   * a block at a time inside the gemm, never as a whole f32 copy. X and Y are row-major with
   * leading dimensions ldx / ldy, starting at xOff / yOff.
   *   transW = true:  Y[M, N] = alpha * X[M, K] @ W^T + beta * Y   (a linear layer's forward)
   *   transW = false: Y[M, K] = alpha * X[M, N] @ W   + beta * Y   (its gradient w.r.t. the input)
   * beta = 0 overwrites Y (old content, even NaN, is ignored).
   */
  weightGemm(p: {
    format: WeightFormat;
    W: Uint8Array;
    N: number;
    K: number;
    transW: boolean;
    M: number;
    alpha: number;
    X: A;
    xOff: number;
    ldx: number;
    beta: number;
    Y: A;
    yOff: number;
    ldy: number;
  }): void;

  /**
   * Several weights W_s [N_s, K] in one gemm, as if concatenated along N (fused q/k/v or gate/up
   * projections): each part's W is an f32 array or stored bytes in `format` (as weightGemm).
   *   transW = true:  Y_s[M, N_s] = alpha * X[M, K] @ W_s^T + beta * Y_s   (X = shared, Y_s = part io)
   *   transW = false: Y[M, K] = alpha * sum_s X_s[M, N_s] @ W_s + beta * Y  (Y = shared, X_s = part io)
   * Arrays are row-major with the given offsets and leading dimensions; beta = 0 overwrites.
   */
  weightGroupGemm(p: {
    K: number;
    transW: boolean;
    M: number;
    alpha: number;
    beta: number;
    shared: A;
    sharedOff: number;
    ldShared: number;
    parts: readonly GroupPart<A>[];
  }): void;

  // ---- elementwise (n = length) ------------------------------------------------------------
  /** out = a + b */
  add(a: A, b: A, out: A, n: number): void;
  /** out = a * b */
  mul(a: A, b: A, out: A, n: number): void;
  /** y += alpha * x (accumulates) */
  axpy(alpha: number, x: A, y: A, n: number): void;
  /** out = alpha * x */
  scale(alpha: number, x: A, out: A, n: number): void;
  /** x[i] = value */
  fill(x: A, value: number, n: number): void;
  /** sum of x[i]^2, computed in double precision */
  sumSquares(x: A, n: number): number;

  // ---- embedding ---------------------------------------------------------------------------
  /** out[i, :] = table[ids[i], :]; table is V x D, out is N x D. */
  embeddingForward(table: A, ids: Int32Array, out: A, N: number, D: number): void;
  /** dTable[ids[i], :] += dOut[i, :] (accumulates; repeated ids add up). */
  embeddingBackward(dOut: A, ids: Int32Array, dTable: A, N: number, D: number): void;

  // ---- RMSNorm: y = x / sqrt(mean(x^2) + eps) * w, x is N x D, w is D -----------------------
  /** Writes out (N x D) and rstd (N) = 1 / sqrt(mean(x^2) + eps), saved for backward. */
  rmsnormForward(x: A, w: A, out: A, rstd: A, N: number, D: number, eps: number): void;
  /** dx += ..., dw += ... (either may be null to skip). */
  rmsnormBackward(dOut: A, x: A, w: A, rstd: A, dx: A | null, dw: A | null, N: number, D: number): void;

  // ---- rotary embeddings, Hugging Face rotate-half convention -------------------------------
  /**
   * x is [B, T, H, Dh] (Dh even). For token t (position pos = posOffset + t), i in [0, Dh/2):
   *   theta = pos * invFreq[i]          (invFreq has Dh/2 entries, e.g. base^(-2i/Dh))
   *   out[.., i]        = x[i] * cos(theta) - x[i + Dh/2] * sin(theta)
   *   out[.., i + Dh/2] = x[i + Dh/2] * cos(theta) + x[i] * sin(theta)
   * out may alias x (in place).
   */
  ropeForward(x: A, out: A, invFreq: A, B: number, T: number, H: number, Dh: number, posOffset: number): void;
  /** Inverse rotation of dOut, accumulated into dx (dx += R^T dOut). */
  ropeBackward(dOut: A, dx: A, invFreq: A, B: number, T: number, H: number, Dh: number, posOffset: number): void;

  // ---- causal self-attention with grouped-query heads ---------------------------------------
  /**
   * q: [B, T, H, Dh]; k, v: [B, S, Hkv, Dh] with H % Hkv == 0 (query head h uses kv head
   * h / (H / Hkv)). Query t sits at absolute position qOffset + t (S = qOffset + T for causal
   * decoding with a cache; S = T, qOffset = 0 in training). Causal: key s is visible to query t iff
   * s <= qOffset + t. keyMask (optional, [B, S]) is ADDED to the scores (0 keeps a key, -Infinity
   * or a large negative number hides it: padding). A query row with no visible key outputs zeros.
   * scores = scale * q.k + mask; P = softmax(scores); out[B, T, H, Dh] = P @ v.
   * probs ([B, H, T, S]) receives P, saved for backward. window (optional, causal only; 0 or
   * absent: none) is a sliding window: query t sees only keys s > qOffset + t - window, i.e. its
   * last `window` keys itself included (Mistral). Backward needs no window: P is 0 outside it.
   */
  attentionForward(p: {
    q: A;
    k: A;
    v: A;
    out: A;
    probs: A;
    keyMask: A | null;
    B: number;
    T: number;
    S: number;
    H: number;
    Hkv: number;
    Dh: number;
    qOffset: number;
    scale: number;
    causal: boolean;
    window?: number;
  }): void;
  /** Accumulates dq, dk, dv from dOut using the saved probs. */
  attentionBackward(p: {
    dOut: A;
    q: A;
    k: A;
    v: A;
    probs: A;
    dq: A;
    dk: A;
    dv: A;
    B: number;
    T: number;
    S: number;
    H: number;
    Hkv: number;
    Dh: number;
    scale: number;
  }): void;

  // ---- activations ------------------------------------------------------------------------
  /** out = silu(gate) * up, silu(x) = x * sigmoid(x). */
  swigluForward(gate: A, up: A, out: A, n: number): void;
  /** dGate += dOut * up * silu'(gate); dUp += dOut * silu(gate). */
  swigluBackward(dOut: A, gate: A, up: A, dGate: A, dUp: A, n: number): void;
  /** out = silu(x) */
  siluForward(x: A, out: A, n: number): void;
  /** dx += dOut * silu'(x) */
  siluBackward(dOut: A, x: A, dx: A, n: number): void;

  // ---- softmax family, row-wise over the last dimension (N rows of length V) ---------------
  softmaxForward(x: A, out: A, N: number, V: number): void;
  /** dx += y * (dy - sum(dy * y)) where y = softmax output. */
  softmaxBackward(dOut: A, y: A, dx: A, N: number, V: number): void;
  logSoftmaxForward(x: A, out: A, N: number, V: number): void;
  /** dx += dy - exp(y) * sum(dy) where y = log-softmax output. */
  logSoftmaxBackward(dOut: A, y: A, dx: A, N: number, V: number): void;

  // ---- losses over logits [N, V] ------------------------------------------------------------
  /**
   * Cross-entropy with an ignore index. Writes lse[N] (log-sum-exp of each row, saved for
   * backward; rows with targets[i] == ignoreIndex get lse computed anyway) and returns
   * { sum: sum over kept rows of (lse - logits[target]), count: number of kept rows }.
   */
  crossEntropyForward(
    logits: A,
    targets: Int32Array,
    lse: A,
    N: number,
    V: number,
    ignoreIndex: number,
  ): { sum: number; count: number };
  /** dLogits[i] += gradScale * (softmax(logits[i]) - onehot(target)) for kept rows. */
  crossEntropyBackward(
    logits: A,
    targets: Int32Array,
    lse: A,
    dLogits: A,
    N: number,
    V: number,
    ignoreIndex: number,
    gradScale: number,
  ): void;

  /**
   * KL(p_T || p_S) per row, p_T = softmax(teacher / 1), p_S = softmax(student).
   * teacherIsProbs: teacher holds probabilities instead of logits. rowWeight (optional, [N]) scales
   * each row (0 masks padding). Returns sum_i w_i * KL_i. Writes studentLse[N] for backward.
   */
  klForward(
    teacher: A,
    student: A,
    studentLse: A,
    rowWeight: A | null,
    N: number,
    V: number,
    teacherIsProbs: boolean,
  ): number;
  /** dStudent[i] += gradScale * w_i * (p_S - p_T). */
  klBackward(
    teacher: A,
    student: A,
    studentLse: A,
    rowWeight: A | null,
    dStudent: A,
    N: number,
    V: number,
    teacherIsProbs: boolean,
    gradScale: number,
  ): void;

  /**
   * Normalised MSE: sum((t - s)^2) / sum(t^2) (equal to mean/mean), over n elements.
   * Returns { value, denom } where denom = sum(t^2).
   */
  nmseForward(student: A, teacher: A, n: number): { value: number; denom: number };
  /** dStudent += gradScale * 2 * (s - t) / denom. */
  nmseBackward(student: A, teacher: A, dStudent: A, n: number, denom: number, gradScale: number): void;

  // ---- optimisers (in place over one parameter array) ---------------------------------------
  /** AdamW with decoupled weight decay and bias correction; step is 1-based. */
  adamwStep(p: {
    param: A;
    grad: A;
    m: A;
    v: A;
    n: number;
    lr: number;
    beta1: number;
    beta2: number;
    eps: number;
    weightDecay: number;
    step: number;
    gradScale: number;
  }): void;
  /** SGD with optional momentum (buf may be null when momentum = 0) and weight decay. */
  sgdStep(p: {
    param: A;
    grad: A;
    buf: A | null;
    n: number;
    lr: number;
    momentum: number;
    weightDecay: number;
    gradScale: number;
  }): void;

  // ---- threads -----------------------------------------------------------------------------
  /** Threads used by kernels and BLAS (never both at once). */
  setThreads(n: number): void;
  getThreads(): number;
}
