// The LM head and its losses in row chunks: logits = h W^T, then next-token cross-entropy and/or
// KL(teacher || student), without ever holding the [N, V] logits. With a 152k-token vocabulary
// (Qwen) one seq-512 logits tensor is 311 MB, and the unfused path keeps the student's logits, their
// gradient and the teacher's logits at once; here each chunk of rows has its logits computed, its
// loss summed and, when a gradient is wanted, its logit gradient turned into dh (dLogits W) right
// away, so the peak is a few chunk-sized buffers plus dh [N, D]. The gradient is computed for an
// upstream gradient of 1 and scaled in backward (the losses are means, their sums are linear in it).
// The same idea as fused linear + cross-entropy losses elsewhere (e.g. Liger-Kernel); written here
// on the engine's own kernels, so BF16 heads stay in their stored format.
import { kernels, take, release } from './engine.js';
import { Tensor, result, onBackward, saved, tape, shapeStr } from './tensor.js';
import { weightSource, type Weight } from './ops.js';

/**
 * Logit values per chunk buffer (4 MB in f32): 256 rows of a 4k vocabulary. Small vocabularies
 * would otherwise take the whole batch in one chunk, and the chunk's logits and their gradient
 * would be the largest buffers of a training step.
 */
export const HEAD_CHUNK_VALUES = 1 << 20;
/**
 * Rows per chunk at least: every chunk streams the whole head W [V, D], so fewer rows than this
 * turn the projection from compute-bound into a read of W per handful of rows (Qwen's 152k x 896
 * head is 272 MB in bf16). 128 rows of a 152k vocabulary are 78 MB of logits.
 */
export const HEAD_CHUNK_MIN_ROWS = 128;

export interface HeadLossTerms {
  /** Next-token cross-entropy against targets [N]; ignoreIndex rows carry no loss. Mean over kept rows. */
  ce?: { targets: Int32Array; ignoreIndex?: number } | null;
  /**
   * KL(p_teacher || p_student), teacher logits = teacherHidden [N, D] W^T (a constant, computed
   * chunk by chunk too). rowWeight [N] weights rows (0: padding); the mean divides by its sum.
   */
  kl?: { teacherHidden: Float32Array; rowWeight?: Float32Array | null } | null;
  /** Rows per chunk (default: as many as fit HEAD_CHUNK_VALUES logits, at least HEAD_CHUNK_MIN_ROWS). */
  chunkRows?: number;
}

export interface HeadLosses {
  /** Mean cross-entropy (0 without kept rows) and its kept-row count; null when not asked for. */
  ce: (Tensor & { count: number }) | null;
  /** Mean weighted KL; null when not asked for. */
  kl: Tensor | null;
}

function fail(msg: string): never {
  throw new Error(`headLosses: ${msg}`);
}

/**
 * The losses of logits = h W^T for h [..., D] and an LM head W [V, D] (a Tensor or a frozen stored
 * weight; W itself gets no gradient), computed over row chunks. Equal to linear + crossEntropy /
 * klDivergence on the full logits, in value and in h's gradient.
 */
export function headLosses(h: Tensor, w: Weight, terms: HeadLossTerms): HeadLosses {
  const D = h.shape[h.shape.length - 1]!;
  const N = h.size / D;
  if (w.shape.length !== 2 || w.shape[1] !== D)
    fail(`head '${w.name}' ${shapeStr(w.shape)} does not fit hidden states '${h.name}' ${shapeStr(h.shape)}`);
  if (w instanceof Tensor && w.requiresGrad && tape.enabled)
    fail(`head '${w.name}' is trainable; the chunked head keeps no weight gradient (use linear + the loss)`);
  const V = w.shape[0]!;
  const ce = terms.ce ?? null;
  const kl = terms.kl ?? null;
  const ignore = ce?.ignoreIndex ?? -100;
  if (ce) {
    if (ce.targets.length !== N) fail(`${ce.targets.length} targets for ${N} rows of '${h.name}'`);
    for (let i = 0; i < N; i++) {
      const t = ce.targets[i]!;
      if (t !== ignore && (t < 0 || t >= V)) fail(`target ${t} at row ${i} is outside [0, ${V})`);
    }
  }
  const rowWeight = kl?.rowWeight ?? null;
  if (kl) {
    if (kl.teacherHidden.length !== N * D)
      fail(`teacher hidden states have ${kl.teacherHidden.length} values, expected ${N} x ${D}`);
    if (rowWeight && rowWeight.length !== N) fail(`rowWeight has ${rowWeight.length} entries for ${N} rows`);
  }
  const rowsPer = terms.chunkRows ?? Math.max(HEAD_CHUNK_MIN_ROWS, Math.floor(HEAD_CHUNK_VALUES / V));
  if (!Number.isInteger(rowsPer) || rowsPer <= 0) fail(`chunkRows must be a positive integer, got ${rowsPer}`);
  const chunk = Math.min(rowsPer, N);

  const wantGrad = tape.enabled && h.requiresGrad;
  const k = kernels();
  const src = weightSource(w);
  // logits chunk = h[r0:r1] W^T, or dh[r0:r1] (+)= dLogits W
  const project = (x: Float32Array, xOff: number, n: number, out: Float32Array) =>
    k.weightGroupGemm({
      K: D,
      transW: true,
      M: n,
      alpha: 1,
      beta: 0,
      shared: x,
      sharedOff: xOff,
      ldShared: D,
      parts: [{ ...src, N: V, io: out, ioOff: 0, ldio: V }],
    });
  const backProject = (dLogits: Float32Array, n: number, dh: Float32Array, off: number) =>
    k.weightGroupGemm({
      K: D,
      transW: false,
      M: n,
      alpha: 1,
      beta: 0,
      shared: dh,
      sharedOff: off,
      ldShared: D,
      parts: [{ ...src, N: V, io: dLogits, ioOff: 0, ldio: V }],
    });

  const logits = take(chunk * V);
  const teacher = kl ? take(chunk * V) : null;
  const dLogits = wantGrad ? take(chunk * V) : null;
  const lse = take(chunk);
  const dhCe = wantGrad && ce ? saved(N * D, 'head.dh_ce') : null;
  const dhKl = wantGrad && kl ? saved(N * D, 'head.dh_kl') : null;
  let ceSum = 0;
  let ceCount = 0;
  let klSum = 0;
  try {
    for (let r0 = 0; r0 < N; r0 += chunk) {
      const n = Math.min(chunk, N - r0);
      const nv = n * V;
      const lg = logits.subarray(0, nv);
      project(h.data, r0 * D, n, lg);
      if (ce) {
        const tg = ce.targets.subarray(r0, r0 + n);
        const r = k.crossEntropyForward(lg, tg, lse, n, V, ignore);
        ceSum += r.sum;
        ceCount += r.count;
        if (dhCe && dLogits) {
          const dl = dLogits.subarray(0, nv);
          k.fill(dl, 0, nv);
          if (r.count > 0) k.crossEntropyBackward(lg, tg, lse, dl, n, V, ignore, 1);
          backProject(dl, n, dhCe, r0 * D);
        }
      }
      if (kl && teacher) {
        const tl = teacher.subarray(0, nv);
        project(kl.teacherHidden, r0 * D, n, tl);
        const rw = rowWeight ? rowWeight.subarray(r0, r0 + n) : null;
        klSum += k.klForward(tl, lg, lse, rw, n, V, false);
        if (dhKl && dLogits) {
          const dl = dLogits.subarray(0, nv);
          k.fill(dl, 0, nv);
          k.klBackward(tl, lg, lse, rw, dl, n, V, false, 1);
          backProject(dl, n, dhKl, r0 * D);
        }
      }
    }
  } finally {
    release(logits);
    if (teacher) release(teacher);
    if (dLogits) release(dLogits);
    release(lse);
  }

  const scalarOut = (name: string, value: number, dh: Float32Array | null, denom: number) => {
    const out = result([1], [h], name);
    out.data[0] = value;
    onBackward(out, () => {
      if (dh && denom > 0) k.axpy(out.grad![0]! / denom, dh, h.gradBuffer(), N * D);
    });
    return out;
  };
  let ceOut: (Tensor & { count: number }) | null = null;
  if (ce) {
    ceOut = scalarOut('crossEntropy', ceCount > 0 ? ceSum / ceCount : 0, dhCe, ceCount) as Tensor & {
      count: number;
    };
    ceOut.count = ceCount;
  }
  let klOut: Tensor | null = null;
  if (kl) {
    let wsum = N;
    if (rowWeight) {
      wsum = 0;
      for (let i = 0; i < N; i++) wsum += rowWeight[i]!;
    }
    klOut = scalarOut('kl', wsum > 0 ? klSum / wsum : 0, dhKl, wsum);
  }
  return { ce: ceOut, kl: klOut };
}
