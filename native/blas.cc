// GEMM through OpenBLAS, and attention built from per-(batch, head) sgemm calls on strided slices.
// Small independent gemms run in parallel on the pool with OpenBLAS single-threaded; large ones
// run one after another with OpenBLAS using all threads. Either way only get_threads() run.
#include <cblas.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "gemm.h"
#include "kernels.h"
#include "pool.h"
#include "vec.h"

namespace fb {

void sgemm(bool tA, bool tB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {  // C = beta * C; BLAS implementations disagree on this corner
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0 ? 0.0f : beta * C[i * ldc + j];
    return;
  }
  if (M == 1) {
    // One row (token-by-token decoding): a matrix-vector product streams the weights once, where
    // sgemm's packing would cost more than the arithmetic. C is zeroed first for beta = 0 so that
    // NaN garbage in C cannot leak through (BLAS may compute 0 * NaN).
    if (beta == 0.0f) std::memset(C, 0, sizeof(float) * N);
    const blasint incx = tA ? (blasint)lda : 1;
    if (tB) cblas_sgemv(CblasRowMajor, CblasNoTrans, (blasint)N, (blasint)K, alpha, B, (blasint)ldb, A, incx, beta, C, 1);
    else cblas_sgemv(CblasRowMajor, CblasTrans, (blasint)K, (blasint)N, alpha, B, (blasint)ldb, A, incx, beta, C, 1);
    return;
  }
  if (gemm_path() != GemmPath::OpenBLAS) {
    if (N * 2 <= own_gemm_nr() && M >= 4 * N) {
      // A thin C (LoRA's rank-r products: N = r, e.g. 8) would fill a fraction of each NR-column
      // micro-kernel panel; its transpose C^T = op(B)^T op(A)^T [N, M] fills MR-row panels (8 of 12
      // rows at N = 8 instead of 8 of 32 columns), written to scratch and transposed into C.
      float* T = scratch(static_cast<size_t>(N * M), 4);  // slot 4: no caller of sgemm holds it
      own_gemm(N, M, K, alpha, B, ldb, !tB, pack_f32(A, lda, !tA), 0.0f, T, M, tA ? A : nullptr, lda);
      for (int64_t i = 0; i < M; i++) {
        float* c = C + i * ldc;
        if (beta == 0.0f)
          for (int64_t j = 0; j < N; j++) c[j] = T[j * M + i];
        else
          for (int64_t j = 0; j < N; j++) c[j] = T[j * M + i] + beta * c[j];
      }
      return;
    }
    own_gemm(M, N, K, alpha, A, lda, tA, pack_f32(B, ldb, tB), beta, C, ldc, tB ? nullptr : B, ldb);
    return;
  }
  cblas_sgemm(CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans, (blasint)M, (blasint)N,
              (blasint)K, alpha, A, (blasint)lda, B, (blasint)ldb, beta, C, (blasint)ldc);
}

// A gemm this small (in multiply-adds) is better run whole on one thread next to others.
static constexpr double kSmallGemm = 64.0 * 64.0 * 256.0 * 4.0;

void gemm(const GemmArgs& g) {
  auto one = [&](int64_t b) {
    sgemm(g.transA, g.transB, g.M, g.N, g.K, g.alpha, g.A + b * g.strideA, g.lda, g.B + b * g.strideB, g.ldb, g.beta,
          g.C + b * g.strideC, g.ldc);
  };
  const int nt = get_threads();
  const double work = static_cast<double>(g.M) * g.N * g.K;
  if (nt > 1 && g.batch >= nt && work <= kSmallGemm) {
    BlasSingle single;
    parallel_for(g.batch, 1, [&](int64_t s, int64_t e) {
      for (int64_t b = s; b < e; b++) one(b);
    });
  } else {
    for (int64_t b = 0; b < g.batch; b++) one(b);
  }
}

// Runs f(i) for i in [0, n): in parallel with single-threaded BLAS when there are enough
// independent tasks, else serially with multi-threaded BLAS.
template <class F>
static void for_tasks(int64_t n, F&& f) {
  if (get_threads() > 1 && n >= get_threads()) {
    BlasSingle single;
    parallel_for(n, 1, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; i++) f(i);
    });
  } else {
    for (int64_t i = 0; i < n; i++) f(i);
  }
}

// The end of p's nonzero prefix looked for in [lo, n): one past its last nonzero element there, lo
// when there is none. Eight at a time from the right: a causal row is mostly trailing zeros.
static int64_t last_nonzero_end(const float* p, int64_t lo, int64_t n) {
  int64_t e = n;
#if defined(__x86_64__)
  const __m256 zero = _mm256_setzero_ps();
  while (e - 8 >= lo) {
    const int nz = ~_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(p + e - 8), zero, _CMP_EQ_OQ)) & 0xFF;
    if (nz) return e - 8 + (32 - __builtin_clz(static_cast<unsigned>(nz)));
    e -= 8;
  }
#endif
  while (e > lo && p[e - 1] == 0.0f) e--;
  return e;
}

// The index of p's first nonzero element in [0, hi), hi when there is none (leading zeros: keys
// left of a sliding window).
static int64_t first_nonzero(const float* p, int64_t hi) {
  int64_t s = 0;
#if defined(__x86_64__)
  const __m256 zero = _mm256_setzero_ps();
  for (; s + 8 <= hi; s += 8) {
    const int nz = ~_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(p + s), zero, _CMP_EQ_OQ)) & 0xFF;
    if (nz) return s + __builtin_ctz(static_cast<unsigned>(nz));
  }
#endif
  while (s < hi && p[s] == 0.0f) s++;
  return s;
}

// dst[d * n + s] = src[s * lds + d] for s < n, d < cols: n rows of src as the columns of dst.
static void transpose_rows(const float* src, int64_t lds, int64_t n, int64_t cols, float* dst) {
  const int64_t n8 = n / 8 * 8;
  for (int64_t s = 0; s < n8; s += 8) transpose_into_panel(src + s * lds, lds, cols, dst + s, n);
  for (int64_t s = n8; s < n; s++)
    for (int64_t d = 0; d < cols; d++) dst[d * n + s] = src[s * lds + d];
}

// Query rows per block in attention (causal blocks skip the keys no row of the block can see).
// 48: a multiple of both micro-kernels' row counts (12, 6), so no rows go through the packed tail,
// and less of the diagonal block's masked half computed than at 64 (measured: backward ~20% less
// CPU time at B4 T256 H8 Dh64 than 64, 32 was no better than 48).
static constexpr int64_t kAttnBlock = 48;

void attention_forward(const AttnArgs& a) {
  if (a.T <= kDecodeQueries) return attention_decode(a);
  const int64_t B = a.B, T = a.T, S = a.S, H = a.H, Hkv = a.Hkv, Dh = a.Dh, group = H / Hkv;
  const int64_t ldq = H * Dh, ldk = Hkv * Dh;
  // Sliding window (causal only): query t sees keys (qOffset + t - window, qOffset + t].
  const int64_t W = a.causal && a.window > 0 ? a.window : 0;
  const auto first_key = [&](int64_t t) { return W > 0 ? std::max<int64_t>(0, a.qOffset + t + 1 - W) : 0; };
  for_tasks(B * H, [&](int64_t bh) {
    const int64_t b = bh / H, h = bh % H, kh = h / group;
    const float* Q = a.q + b * T * ldq + h * Dh;
    const float* K = a.k + b * S * ldk + kh * Dh;
    const float* Vv = a.v + b * S * ldk + kh * Dh;
    float* P = a.probs + bh * T * S;
    float* O = a.out + b * T * ldq + h * Dh;
    const float* mask = a.keyMask ? a.keyMask + b * S : nullptr;
    // K^T [Dh, S] once per head: the blocks' score gemms then read it in place as a plain B instead
    // of each packing (transposing) the keys it sees again.
    float* Kt = scratch(Dh * S, 1);
    transpose_rows(K, ldk, S, Dh, Kt);
    // Row blocks: with causal masking a block of queries sees only the keys up to its last row (and,
    // with a window, from its first row's first key), so the score and P.V gemms skip the rest.
    for (int64_t r0 = 0; r0 < T; r0 += kAttnBlock) {
      const int64_t r1 = std::min(T, r0 + kAttnBlock);
      const int64_t nvis = a.causal ? std::max<int64_t>(0, std::min(S, a.qOffset + r1)) : S;
      const int64_t k0 = std::min(first_key(r0), nvis);
      if (nvis > k0)
        sgemm(false, false, r1 - r0, nvis - k0, Dh, a.scale, Q + r0 * ldq, ldq, Kt + k0, S, 0.0f, P + r0 * S + k0,
              S);
      for (int64_t t = r0; t < r1; t++) {
        float* row = P + t * S;
        int64_t n = a.causal ? std::min(S, a.qOffset + t + 1) : S;  // visible keys [lo, n)
        if (n < 0) n = 0;
        const int64_t lo = std::min(first_key(t), n);
        if (lo > 0) std::memset(row, 0, lo * sizeof(float));
        float* vis = row + lo;
        const int64_t nv = n - lo;
        if (mask) {
#pragma GCC ivdep
          for (int64_t s = 0; s < nv; s++) vis[s] += mask[lo + s];
        }
        const float m = nv > 0 ? row_max(vis, nv) : -INFINITY;
        if (m == -INFINITY) {
          std::memset(row, 0, S * sizeof(float));
          continue;
        }
        const float inv = static_cast<float>(1.0 / exp_sum(vis, m, vis, nv));
        for (int64_t s = 0; s < nv; s++) vis[s] *= inv;
        if (n < S) std::memset(row + n, 0, (S - n) * sizeof(float));
      }
      if (nvis > k0)
        sgemm(false, false, r1 - r0, Dh, nvis - k0, 1.0f, P + r0 * S + k0, S, Vv + k0 * ldk, ldk, 0.0f, O + r0 * ldq,
              ldq);
      else for (int64_t t = r0; t < r1; t++) std::memset(O + t * ldq, 0, Dh * sizeof(float));
    }
  });
}

void attention_backward(const AttnArgs& a) {
  const int64_t B = a.B, T = a.T, S = a.S, H = a.H, Hkv = a.Hkv, Dh = a.Dh, group = H / Hkv;
  const int64_t ldq = H * Dh, ldk = Hkv * Dh;
  // One task per (batch, kv head): the query heads of a group accumulate into the same dk/dv.
  for_tasks(B * Hkv, [&](int64_t bk) {
    const int64_t b = bk / Hkv, kh = bk % Hkv;
    const float* K = a.k + b * S * ldk + kh * Dh;
    const float* Vv = a.v + b * S * ldk + kh * Dh;
    float* dK = a.dk + b * S * ldk + kh * Dh;
    float* dV = a.dv + b * S * ldk + kh * Dh;
    float* dP = scratch(T * S, 0);
    float* Vt = scratch(Dh * S, 1);  // V^T [Dh, S] once for the group's heads (as K^T in forward)
    transpose_rows(Vv, ldk, S, Dh, Vt);
    for (int64_t h = kh * group; h < (kh + 1) * group; h++) {
      const float* Q = a.q + b * T * ldq + h * Dh;
      const float* dO = a.dOut + b * T * ldq + h * Dh;
      float* dQ = a.dq + b * T * ldq + h * Dh;
      const float* P = a.probs + (b * H + h) * T * S;
      // Row blocks limited to the keys any of their rows can see (P is exactly 0 beyond), found
      // from P itself: backward needs no causal flag.
      for (int64_t r0 = 0; r0 < T; r0 += kAttnBlock) {
        const int64_t r1 = std::min(T, r0 + kAttnBlock), nr = r1 - r0;
        // Columns [k0, k1) hold every nonzero P of the block (a key with P == 0 gets no gradient).
        int64_t k0 = S, k1 = 0;
        for (int64_t t = r0; t < r1; t++) {
          const float* p = P + t * S;
          k1 = std::max(k1, last_nonzero_end(p, k1, S));
          k0 = std::min(k0, first_nonzero(p, k0));
        }
        if (k1 <= k0) continue;  // fully masked rows: no gradient
        const int64_t nvis = k1 - k0;
        const float* Pb = P + r0 * S + k0;
        const float* dOb = dO + r0 * ldq;
        float* dPb = dP + r0 * S + k0;
        const float* Kb = K + k0 * ldk;
        sgemm(true, false, nvis, Dh, nr, 1.0f, Pb, S, dOb, ldq, 1.0f, dV + k0 * ldk, ldk);  // dV += P^T dO
        sgemm(false, false, nr, nvis, Dh, 1.0f, dOb, ldq, Vt + k0, S, 0.0f, dPb, S);  // dP = dO V^T
        for (int64_t t = 0; t < nr; t++) {  // dS = P (dP - <dP, P>)
          const float* p = Pb + t * S;
          float* d = dPb + t * S;
          const float dot = static_cast<float>(dot_d(p, d, nvis));
#pragma GCC ivdep
          for (int64_t s = 0; s < nvis; s++) d[s] = p[s] * (d[s] - dot);
        }
        sgemm(false, false, nr, Dh, nvis, a.scale, dPb, S, Kb, ldk, 1.0f, dQ + r0 * ldq, ldq);  // dQ += scale dS K
        sgemm(true, false, nvis, Dh, nr, a.scale, dPb, S, Q + r0 * ldq, ldq, 1.0f, dK + k0 * ldk, ldk);  // dK += scale dS^T Q
      }
    }
  });
}

}  // namespace fb
