// Reference kernels: plain TypeScript, one obvious loop per formula. Generic over Float32Array and
// Float64Array; values are stored in the array's own precision, sums are accumulated in double
// (JS numbers). Tests run these in float64 as the ground truth for the native kernels and for
// finite-difference checks, so clarity beats speed here.

import type { FArr, Kernels } from './api.js';
import { decodeWeightRow } from './weights.js';

// Row-major element (r, c) of op(X) where X is stored with leading dimension ld.
function at(X: FArr, off: number, ld: number, trans: boolean, r: number, c: number): number {
  return trans ? X[off + c * ld + r]! : X[off + r * ld + c]!;
}

function rowMax(x: FArr, off: number, V: number): number {
  let m = -Infinity;
  for (let j = 0; j < V; j++) if (x[off + j]! > m) m = x[off + j]!;
  return m;
}

/** log(sum(exp(x[off .. off+V)))) computed stably; -Infinity for an all -Infinity row. */
function logSumExp(x: FArr, off: number, V: number): number {
  const m = rowMax(x, off, V);
  if (m === -Infinity) return -Infinity;
  let s = 0;
  for (let j = 0; j < V; j++) s += Math.exp(x[off + j]! - m);
  return m + Math.log(s);
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

export function referenceKernels<A extends FArr>(): Kernels<A> {
  let threads = 1;

  const k: Kernels<A> = {
    name: 'reference',

    gemm(p) {
      const { M, N, K } = p;
      for (let b = 0; b < p.batch; b++) {
        const aOff = p.aOff + b * p.strideA;
        const bOff = p.bOff + b * p.strideB;
        const cOff = p.cOff + b * p.strideC;
        for (let i = 0; i < M; i++) {
          for (let j = 0; j < N; j++) {
            let s = 0;
            for (let kk = 0; kk < K; kk++) {
              s += at(p.A, aOff, p.lda, p.transA, i, kk) * at(p.B, bOff, p.ldb, p.transB, kk, j);
            }
            const c = cOff + i * p.ldc + j;
            // beta = 0 ignores the old C entirely (it may hold NaN).
            p.C[c] = p.beta === 0 ? p.alpha * s : p.alpha * s + p.beta * p.C[c]!;
          }
        }
      }
    },

    weightGemm(p) {
      const { M, N, K } = p;
      // Widen W once (row by row), in double, then the plain triple loop.
      const W = new Float64Array(N * K);
      for (let n = 0; n < N; n++) decodeWeightRow(p.format, p.W, K, n, W, n * K);
      const outCols = p.transW ? N : K,
        inner = p.transW ? K : N;
      for (let i = 0; i < M; i++) {
        for (let j = 0; j < outCols; j++) {
          let s = 0;
          for (let kk = 0; kk < inner; kk++) {
            s += p.X[p.xOff + i * p.ldx + kk]! * (p.transW ? W[j * K + kk]! : W[kk * K + j]!);
          }
          const y = p.yOff + i * p.ldy + j;
          p.Y[y] = p.beta === 0 ? p.alpha * s : p.alpha * s + p.beta * p.Y[y]!;
        }
      }
    },

    weightGroupGemm(p) {
      p.parts.forEach((part, i) => {
        const beta = p.transW || i === 0 ? p.beta : 1;
        const x = p.transW
          ? { X: p.shared, xOff: p.sharedOff, ldx: p.ldShared }
          : { X: part.io, xOff: part.ioOff, ldx: part.ldio };
        const y = p.transW
          ? { Y: part.io, yOff: part.ioOff, ldy: part.ldio }
          : { Y: p.shared, yOff: p.sharedOff, ldy: p.ldShared };
        if (part.W instanceof Uint8Array)
          k.weightGemm({
            format: part.format,
            W: part.W,
            N: part.N,
            K: p.K,
            transW: p.transW,
            M: p.M,
            alpha: p.alpha,
            beta,
            ...x,
            ...y,
          });
        else
          k.gemm({
            transA: false,
            transB: p.transW,
            M: p.M,
            N: p.transW ? part.N : p.K,
            K: p.transW ? p.K : part.N,
            alpha: p.alpha,
            A: x.X,
            aOff: x.xOff,
            lda: x.ldx,
            strideA: 0,
            B: part.W,
            bOff: 0,
            ldb: p.K,
            strideB: 0,
            beta,
            C: y.Y,
            cOff: y.yOff,
            ldc: y.ldy,
            strideC: 0,
            batch: 1,
          });
      });
    },

    add(a, b, out, n) {
      for (let i = 0; i < n; i++) out[i] = a[i]! + b[i]!;
    },
    mul(a, b, out, n) {
      for (let i = 0; i < n; i++) out[i] = a[i]! * b[i]!;
    },
    axpy(alpha, x, y, n) {
      for (let i = 0; i < n; i++) y[i] = y[i]! + alpha * x[i]!;
    },
    scale(alpha, x, out, n) {
      for (let i = 0; i < n; i++) out[i] = alpha * x[i]!;
    },
    fill(x, value, n) {
      x.fill(value, 0, n);
    },
    sumSquares(x, n) {
      let s = 0;
      for (let i = 0; i < n; i++) s += x[i]! * x[i]!;
      return s;
    },

    embeddingForward(table, ids, out, N, D) {
      for (let i = 0; i < N; i++) {
        const src = ids[i]! * D;
        for (let j = 0; j < D; j++) out[i * D + j] = table[src + j]!;
      }
    },
    embeddingBackward(dOut, ids, dTable, N, D) {
      for (let i = 0; i < N; i++) {
        const dst = ids[i]! * D;
        for (let j = 0; j < D; j++) dTable[dst + j] = dTable[dst + j]! + dOut[i * D + j]!;
      }
    },

    rmsnormForward(x, w, out, rstd, N, D, eps) {
      for (let i = 0; i < N; i++) {
        let ss = 0;
        for (let j = 0; j < D; j++) ss += x[i * D + j]! * x[i * D + j]!;
        const r = 1 / Math.sqrt(ss / D + eps);
        rstd[i] = r;
        for (let j = 0; j < D; j++) out[i * D + j] = x[i * D + j]! * r * w[j]!;
      }
    },
    rmsnormBackward(dOut, x, w, rstd, dx, dw, N, D) {
      // y_j = x_j r w_j with r = (mean(x^2) + eps)^-1/2, so dr/dx_j = -r^3 x_j / D and
      // dx_j = r w_j dy_j - x_j r^3 / D * sum_k dy_k w_k x_k.
      for (let i = 0; i < N; i++) {
        const r = rstd[i]!;
        const o = i * D;
        if (dw) for (let j = 0; j < D; j++) dw[j] = dw[j]! + dOut[o + j]! * x[o + j]! * r;
        if (dx) {
          let dot = 0;
          for (let j = 0; j < D; j++) dot += dOut[o + j]! * w[j]! * x[o + j]!;
          const c = (r * r * r * dot) / D;
          for (let j = 0; j < D; j++) dx[o + j] = dx[o + j]! + r * w[j]! * dOut[o + j]! - x[o + j]! * c;
        }
      }
    },

    ropeForward(x, out, invFreq, B, T, H, Dh, posOffset) {
      const half = Dh / 2;
      for (let b = 0; b < B; b++) {
        for (let t = 0; t < T; t++) {
          const pos = posOffset + t;
          for (let h = 0; h < H; h++) {
            const o = ((b * T + t) * H + h) * Dh;
            for (let i = 0; i < half; i++) {
              const th = pos * invFreq[i]!;
              const c = Math.cos(th),
                s = Math.sin(th);
              const x1 = x[o + i]!,
                x2 = x[o + i + half]!; // read both first: out may alias x
              out[o + i] = x1 * c - x2 * s;
              out[o + i + half] = x2 * c + x1 * s;
            }
          }
        }
      }
    },
    ropeBackward(dOut, dx, invFreq, B, T, H, Dh, posOffset) {
      const half = Dh / 2;
      for (let b = 0; b < B; b++) {
        for (let t = 0; t < T; t++) {
          const pos = posOffset + t;
          for (let h = 0; h < H; h++) {
            const o = ((b * T + t) * H + h) * Dh;
            for (let i = 0; i < half; i++) {
              const th = pos * invFreq[i]!;
              const c = Math.cos(th),
                s = Math.sin(th);
              const g1 = dOut[o + i]!,
                g2 = dOut[o + i + half]!;
              dx[o + i] = dx[o + i]! + g1 * c + g2 * s;
              dx[o + i + half] = dx[o + i + half]! - g1 * s + g2 * c;
            }
          }
        }
      }
    },

    attentionForward(p) {
      const { q, k, v, out, probs, keyMask, B, T, S, H, Hkv, Dh, qOffset, scale, causal } = p;
      const window = causal ? (p.window ?? 0) : 0;
      const group = H / Hkv;
      const row = new Float64Array(S);
      for (let b = 0; b < B; b++) {
        for (let h = 0; h < H; h++) {
          const kh = Math.floor(h / group);
          for (let t = 0; t < T; t++) {
            const qo = ((b * T + t) * H + h) * Dh;
            const last = causal ? Math.min(S - 1, qOffset + t) : S - 1; // last visible key
            const first = window > 0 ? Math.max(0, qOffset + t + 1 - window) : 0; // first visible key
            let m = -Infinity;
            for (let s = first; s <= last; s++) {
              const ko = ((b * S + s) * Hkv + kh) * Dh;
              let dot = 0;
              for (let d = 0; d < Dh; d++) dot += q[qo + d]! * k[ko + d]!;
              row[s] = scale * dot + (keyMask ? keyMask[b * S + s]! : 0);
              if (row[s]! > m) m = row[s]!;
            }
            const po = ((b * H + h) * T + t) * S;
            // Softmax over the visible keys; a row with no visible key is all zeros.
            let z = 0;
            for (let s = first; s <= last; s++) {
              row[s] = m === -Infinity ? 0 : Math.exp(row[s]! - m);
              z += row[s]!;
            }
            for (let s = 0; s < S; s++) probs[po + s] = s >= first && s <= last && z > 0 ? row[s]! / z : 0;
            for (let d = 0; d < Dh; d++) {
              let acc = 0;
              for (let s = first; s <= last; s++) acc += probs[po + s]! * v[((b * S + s) * Hkv + kh) * Dh + d]!;
              out[qo + d] = acc;
            }
          }
        }
      }
    },
    attentionBackward(p) {
      const { dOut, q, k, v, probs, dq, dk, dv, B, T, S, H, Hkv, Dh, scale } = p;
      const group = H / Hkv;
      const dP = new Float64Array(S);
      for (let b = 0; b < B; b++) {
        for (let h = 0; h < H; h++) {
          const kh = Math.floor(h / group);
          for (let t = 0; t < T; t++) {
            const qo = ((b * T + t) * H + h) * Dh;
            const po = ((b * H + h) * T + t) * S;
            // dP = dO V^T and dV += P^T dO for this query row.
            let rowDot = 0;
            for (let s = 0; s < S; s++) {
              const vo = ((b * S + s) * Hkv + kh) * Dh;
              const P = probs[po + s]!;
              let acc = 0;
              for (let d = 0; d < Dh; d++) {
                acc += dOut[qo + d]! * v[vo + d]!;
                dv[vo + d] = dv[vo + d]! + P * dOut[qo + d]!;
              }
              dP[s] = acc;
              rowDot += acc * P;
            }
            // dScores = P * (dP - sum(dP * P)); scores = scale * q.k.
            for (let s = 0; s < S; s++) {
              const dS = probs[po + s]! * (dP[s]! - rowDot) * scale;
              if (dS === 0) continue;
              const ko = ((b * S + s) * Hkv + kh) * Dh;
              for (let d = 0; d < Dh; d++) {
                dq[qo + d] = dq[qo + d]! + dS * k[ko + d]!;
                dk[ko + d] = dk[ko + d]! + dS * q[qo + d]!;
              }
            }
          }
        }
      }
    },

    swigluForward(gate, up, out, n) {
      for (let i = 0; i < n; i++) out[i] = gate[i]! * sigmoid(gate[i]!) * up[i]!;
    },
    swigluBackward(dOut, gate, up, dGate, dUp, n) {
      for (let i = 0; i < n; i++) {
        const g = gate[i]!,
          sg = sigmoid(g);
        const silu = g * sg;
        const dsilu = sg * (1 + g * (1 - sg));
        dGate[i] = dGate[i]! + dOut[i]! * up[i]! * dsilu;
        dUp[i] = dUp[i]! + dOut[i]! * silu;
      }
    },
    siluForward(x, out, n) {
      for (let i = 0; i < n; i++) out[i] = x[i]! * sigmoid(x[i]!);
    },
    siluBackward(dOut, x, dx, n) {
      for (let i = 0; i < n; i++) {
        const sg = sigmoid(x[i]!);
        dx[i] = dx[i]! + dOut[i]! * sg * (1 + x[i]! * (1 - sg));
      }
    },

    softmaxForward(x, out, N, V) {
      for (let i = 0; i < N; i++) {
        const o = i * V,
          m = rowMax(x, o, V);
        let z = 0;
        for (let j = 0; j < V; j++) z += Math.exp(x[o + j]! - m);
        for (let j = 0; j < V; j++) out[o + j] = Math.exp(x[o + j]! - m) / z;
      }
    },
    softmaxBackward(dOut, y, dx, N, V) {
      for (let i = 0; i < N; i++) {
        const o = i * V;
        let dot = 0;
        for (let j = 0; j < V; j++) dot += dOut[o + j]! * y[o + j]!;
        for (let j = 0; j < V; j++) dx[o + j] = dx[o + j]! + y[o + j]! * (dOut[o + j]! - dot);
      }
    },
    logSoftmaxForward(x, out, N, V) {
      for (let i = 0; i < N; i++) {
        const o = i * V,
          lse = logSumExp(x, o, V);
        for (let j = 0; j < V; j++) out[o + j] = x[o + j]! - lse;
      }
    },
    logSoftmaxBackward(dOut, y, dx, N, V) {
      for (let i = 0; i < N; i++) {
        const o = i * V;
        let sum = 0;
        for (let j = 0; j < V; j++) sum += dOut[o + j]!;
        for (let j = 0; j < V; j++) dx[o + j] = dx[o + j]! + dOut[o + j]! - Math.exp(y[o + j]!) * sum;
      }
    },

    crossEntropyForward(logits, targets, lse, N, V, ignoreIndex) {
      let sum = 0,
        count = 0;
      for (let i = 0; i < N; i++) {
        lse[i] = logSumExp(logits, i * V, V);
        const t = targets[i]!;
        if (t === ignoreIndex) continue;
        sum += lse[i]! - logits[i * V + t]!;
        count++;
      }
      return { sum, count };
    },
    crossEntropyBackward(logits, targets, lse, dLogits, N, V, ignoreIndex, gradScale) {
      for (let i = 0; i < N; i++) {
        const t = targets[i]!;
        if (t === ignoreIndex) continue;
        const o = i * V;
        for (let j = 0; j < V; j++) {
          const pj = Math.exp(logits[o + j]! - lse[i]!);
          dLogits[o + j] = dLogits[o + j]! + gradScale * (pj - (j === t ? 1 : 0));
        }
      }
    },

    klForward(teacher, student, studentLse, rowWeight, N, V, teacherIsProbs) {
      let total = 0;
      for (let i = 0; i < N; i++) {
        const o = i * V;
        const lseS = logSumExp(student, o, V);
        studentLse[i] = lseS;
        const w = rowWeight ? rowWeight[i]! : 1;
        if (w === 0) continue;
        const lseT = teacherIsProbs ? 0 : logSumExp(teacher, o, V);
        let kl = 0;
        for (let j = 0; j < V; j++) {
          const logPs = student[o + j]! - lseS;
          if (teacherIsProbs) {
            const pt = teacher[o + j]!;
            if (pt > 0) kl += pt * (Math.log(pt) - logPs); // 0 log 0 = 0
          } else {
            const logPt = teacher[o + j]! - lseT;
            kl += Math.exp(logPt) * (logPt - logPs);
          }
        }
        total += w * kl;
      }
      return total;
    },
    klBackward(teacher, student, studentLse, rowWeight, dStudent, N, V, teacherIsProbs, gradScale) {
      for (let i = 0; i < N; i++) {
        const w = rowWeight ? rowWeight[i]! : 1;
        if (w === 0) continue;
        const o = i * V;
        const lseT = teacherIsProbs ? 0 : logSumExp(teacher, o, V);
        for (let j = 0; j < V; j++) {
          const ps = Math.exp(student[o + j]! - studentLse[i]!);
          const pt = teacherIsProbs ? teacher[o + j]! : Math.exp(teacher[o + j]! - lseT);
          dStudent[o + j] = dStudent[o + j]! + gradScale * w * (ps - pt);
        }
      }
    },

    nmseForward(student, teacher, n) {
      let num = 0,
        denom = 0;
      for (let i = 0; i < n; i++) {
        const d = teacher[i]! - student[i]!;
        num += d * d;
        denom += teacher[i]! * teacher[i]!;
      }
      return { value: num / denom, denom };
    },
    nmseBackward(student, teacher, dStudent, n, denom, gradScale) {
      const c = (2 * gradScale) / denom;
      for (let i = 0; i < n; i++) dStudent[i] = dStudent[i]! + c * (student[i]! - teacher[i]!);
    },

    adamwStep(p) {
      // PyTorch AdamW order: decay the weight, update the moments, step with bias correction.
      const bc1 = 1 - Math.pow(p.beta1, p.step);
      const bc2 = 1 - Math.pow(p.beta2, p.step);
      for (let i = 0; i < p.n; i++) {
        const g = p.grad[i]! * p.gradScale;
        let w = p.param[i]! * (1 - p.lr * p.weightDecay);
        const m = p.beta1 * p.m[i]! + (1 - p.beta1) * g;
        const v = p.beta2 * p.v[i]! + (1 - p.beta2) * g * g;
        p.m[i] = m;
        p.v[i] = v;
        w -= (p.lr * (m / bc1)) / (Math.sqrt(v / bc2) + p.eps);
        p.param[i] = w;
      }
    },
    sgdStep(p) {
      // PyTorch SGD (dampening 0, coupled weight decay): g += wd * w; buf = mu * buf + g; w -= lr * buf.
      for (let i = 0; i < p.n; i++) {
        let g = p.grad[i]! * p.gradScale + p.weightDecay * p.param[i]!;
        if (p.momentum !== 0 && p.buf) {
          g = p.momentum * p.buf[i]! + g;
          p.buf[i] = g;
        }
        p.param[i] = p.param[i]! - p.lr * g;
      }
    },

    setThreads(n) {
      threads = Math.max(1, Math.floor(n)); // recorded only: the reference is single-threaded
    },
    getThreads() {
      return threads;
    },
  };
  return k;
}
