// GEMM against a bf16 weight with AVX512-BF16 dot products (vdpbf16ps), for the "avx512bf16" path.
// vdpbf16ps multiplies pairs of bf16 values and adds both products to an f32 accumulator, so the
// activations are rounded to bf16 too (round to nearest even, once per gemm): twice the multiply-adds
// of an f32 FMA per instruction, half the bytes per weight, at bf16 precision on the input side
// (the accuracy is stated in docs/engine.md and checked in test/kernels/bf16.test.ts).
//
// Same loop nest as the f32 gemm (gemm.cc), on pairs of k: B panels hold, for each pair of k and
// each of 32 columns, one 32-bit word (the two bf16 values of that column), A rows are the rounded
// activations read in place, and a 12 x 32 micro-kernel keeps 24 zmm accumulators.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "gemm.h"
#include "pool.h"

namespace fb {

#if defined(__x86_64__)
namespace {

constexpr int MR = 12, NR = 32;
constexpr int64_t MC = 144, KCP = 128, NCP = 48;  // KCP pairs of k (256 values), NCP panels of NR columns

// 64-byte aligned, grow-only, per thread (slot 0: the rounded activations, 1: B panels).
uint32_t* words(size_t n, int slot) {
  struct Buf {
    uint32_t* p = nullptr;
    size_t n = 0;
    ~Buf() { std::free(p); }
  };
  thread_local Buf bufs[2];
  Buf& b = bufs[slot];
  if (b.n < n) {
    std::free(b.p);
    b.p = static_cast<uint32_t*>(std::aligned_alloc(64, (n * 4 + 63) / 64 * 64));
    b.n = n;
  }
  return b.p;
}

// Rows of X [M, Kr] rounded to bf16 (nearest even), two values per word, an odd Kr padded with 0.
__attribute__((target("avx512f,avx512bf16,avx512vl,avx512bw"))) void round_rows(const float* X, int64_t ldx,
                                                                                  int64_t r0, int64_t r1, int64_t Kr,
                                                                                  uint32_t* Xb, int64_t ldw) {
  for (int64_t i = r0; i < r1; i++) {
    const float* x = X + i * ldx;
    uint16_t* d = reinterpret_cast<uint16_t*>(Xb + i * ldw);
    int64_t k = 0;
    for (; k + 16 <= Kr; k += 16) {
      __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(x + k));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + k), reinterpret_cast<__m256i&>(h));
    }
    if (k < Kr) {
      const __mmask16 m = static_cast<__mmask16>((1u << (Kr - k)) - 1);
      __m256bh h = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + k));
      _mm256_mask_storeu_epi16(d + k, m, reinterpret_cast<__m256i&>(h));
    }
    if (Kr % 2) d[Kr] = 0;
  }
}

// One word of op(W) for pair kp and column n: op(W)(k, n) = W[n][k] (transW) or W[k][n].
inline uint32_t pair(const uint16_t* W, int64_t ldw, bool transW, int64_t Kr, int64_t kp, int64_t n) {
  const int64_t k = 2 * kp;
  uint32_t lo, hi;
  if (transW) {
    lo = W[n * ldw + k];
    hi = k + 1 < Kr ? W[n * ldw + k + 1] : 0;
  } else {
    lo = W[k * ldw + n];
    hi = k + 1 < Kr ? W[(k + 1) * ldw + n] : 0;
  }
  return lo | (hi << 16);
}

// Panel of NR columns [j0, j0 + nc) x pairs [p0, p0 + kcp): dst[kp * NR + c], zero past nc.
void pack_panel(const uint16_t* W, int64_t ldw, bool transW, int64_t Kr, int64_t p0, int64_t kcp, int64_t j0, int nc,
                uint32_t* dst) {
  for (int64_t kp = 0; kp < kcp; kp++) {
    uint32_t* d = dst + kp * NR;
    for (int c = 0; c < nc; c++) d[c] = pair(W, ldw, transW, Kr, p0 + kp, j0 + c);
    for (int c = nc; c < NR; c++) d[c] = 0;
  }
}

__attribute__((target("avx512f,avx512bf16,avx512vl,avx512dq"))) void kern(int64_t kcp, const uint32_t* A, int64_t lda,
                                                                           int m, const uint32_t* B, float* C,
                                                                           int64_t ldc, int n, float alpha,
                                                                           float beta) {
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 12
  for (int i = 0; i < MR; i++) c0[i] = c1[i] = _mm512_setzero_ps();
  const uint32_t* rows[MR];
  for (int i = 0; i < MR; i++) rows[i] = A + (i < m ? i : 0) * lda;  // rows past m repeat row 0, never stored
#pragma GCC unroll 2
  for (int64_t kp = 0; kp < kcp; kp++) {
    const __m512i b0 = _mm512_load_si512(B), b1 = _mm512_load_si512(B + 16);
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) {
      const __m512i a = _mm512_set1_epi32(static_cast<int>(rows[i][kp]));
      c0[i] = _mm512_dpbf16_ps(c0[i], reinterpret_cast<const __m512bh&>(a), reinterpret_cast<const __m512bh&>(b0));
      c1[i] = _mm512_dpbf16_ps(c1[i], reinterpret_cast<const __m512bh&>(a), reinterpret_cast<const __m512bh&>(b1));
    }
    B += NR;
  }
  const __mmask16 k0 = n >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << n) - 1);
  const __mmask16 k1 = n >= 32 ? 0xFFFF : n > 16 ? static_cast<__mmask16>((1u << (n - 16)) - 1) : 0;
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  for (int i = 0; i < m; i++) {
    float* cr = C + i * ldc;
    __m512 v0 = _mm512_mul_ps(va, c0[i]), v1 = _mm512_mul_ps(va, c1[i]);
    if (beta != 0.0f) {
      v0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(k0, cr), v0);
      v1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(k1, cr + 16), v1);
    }
    _mm512_mask_storeu_ps(cr, k0, v0);
    _mm512_mask_storeu_ps(cr + 16, k1, v1);
  }
}

// Rows [r0, r1) x panels [q0, q1) of C on the calling thread.
void block(int64_t r0, int64_t r1, int64_t q0, int64_t q1, int64_t N, int64_t Kp, int64_t Kr, float alpha,
           const uint32_t* Xb, int64_t ldw, const uint16_t* W, int64_t ldW, bool transW, float beta, float* Y,
           int64_t ldy) {
  for (int64_t qa = q0; qa < q1; qa += NCP) {
    const int64_t qb = std::min(q1, qa + NCP);
    for (int64_t pc = 0; pc < Kp; pc += KCP) {
      const int64_t kcp = std::min(KCP, Kp - pc);
      uint32_t* Bp = words((qb - qa) * NR * kcp, 1);
      for (int64_t q = qa; q < qb; q++)
        pack_panel(W, ldW, transW, Kr, pc, kcp, q * NR, static_cast<int>(std::min<int64_t>(NR, N - q * NR)),
                   Bp + (q - qa) * NR * kcp);
      const float bEff = pc == 0 ? beta : 1.0f;
      for (int64_t i0 = r0; i0 < r1; i0 += MC) {
        const int64_t i1 = std::min(r1, i0 + MC);
        for (int64_t q = qa; q < qb; q++) {
          const int n = static_cast<int>(std::min<int64_t>(NR, N - q * NR));
          for (int64_t i = i0; i < i1; i += MR) {
            const int m = static_cast<int>(std::min<int64_t>(MR, i1 - i));
            kern(kcp, Xb + i * ldw + pc, ldw, m, Bp + (q - qa) * NR * kcp, Y + i * ldy + q * NR, ldy, n, alpha, bEff);
          }
        }
      }
    }
  }
}

}  // namespace

bool bf16_dot_available() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512dq");
}

void bf16_dot_gemm(int64_t M, int64_t N, int64_t Kr, float alpha, const float* X, int64_t ldx, const uint16_t* W,
                   int64_t ldW, bool transW, float beta, float* Y, int64_t ldy) {
  if (M <= 0 || N <= 0) return;
  const int64_t Kp = (Kr + 1) / 2;
  if (Kp == 0) {
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) Y[i * ldy + j] = beta == 0.0f ? 0.0f : beta * Y[i * ldy + j];
    return;
  }
  // The rounded activations: shared by the threads, so they live in the caller's buffer.
  const int64_t ldw = Kp;
  uint32_t* Xb = words(M * ldw, 0);
  const int nt = blas_single_active() ? 1 : get_threads();
  if (nt <= 1) round_rows(X, ldx, 0, M, Kr, Xb, ldw);
  else parallel_for(M, 64, [&](int64_t a, int64_t b) { round_rows(X, ldx, a, b, Kr, Xb, ldw); });
  const int64_t npan = (N + NR - 1) / NR, nrow = (M + MR - 1) / MR;
  if (nt <= 1) {
    block(0, M, 0, npan, N, Kp, Kr, alpha, Xb, ldw, W, ldW, transW, beta, Y, ldy);
  } else if (npan >= 2 * nt) {
    parallel_for(npan, 1, [&](int64_t q0, int64_t q1) {
      block(0, M, q0, q1, N, Kp, Kr, alpha, Xb, ldw, W, ldW, transW, beta, Y, ldy);
    });
  } else {
    parallel_for(nrow, 1, [&](int64_t a, int64_t b) {
      block(a * MR, std::min(M, b * MR), 0, npan, N, Kp, Kr, alpha, Xb, ldw, W, ldW, transW, beta, Y, ldy);
    });
  }
}
#else
bool bf16_dot_available() { return false; }
void bf16_dot_gemm(int64_t, int64_t, int64_t, float, const float*, int64_t, const uint16_t*, int64_t, bool, float,
                   float*, int64_t) {}
#endif

}  // namespace fb
