// Matrix-vector products against stored weights, for decoding: Y_s[m, n] = alpha X[m, :] . W_s[n, :]
// + beta Y_s[m, n] for a few rows m (M <= 4) and one or more weights W_s [N_s, K] in any stored
// format. Memory-bound: each weight row is read once per call and dotted with all M rows while in
// registers; the rows of all parts are split across the pool's threads.
//
// Paths (by the gemm path, see gemm.h): "avx512" / "avx512bf16" 16-wide with masked tails (q8_0 and
// q4_0 with AVX512-VNNI dot products where the CPU has them), "avx2" 8-wide (F16C widening,
// maddubs for the quantized formats), "openblas" plain C++ (the portable fallback: f32 weights go to
// cblas_sgemv there, the others widen value by value).
//
// Quantized weights (q8_0, q4_0) are multiplied as llama.cpp does: each row of X is quantized once
// per call to blocks of 32 int8 with an f32 scale (d = max|x| / 127, q = round(x / d)), and each
// weight block is dotted with it in integers, then scaled by d_w * d_x. A partial last block (K not a
// multiple of 32) dots zero-padded int8 activations with the weight's zero padding, X never read past
// K. The activation rounding adds at most d_x / 2 per value: |error| <= sum_b sum_j |w_j| max_b|x| /
// 254 (plus f32 rounding), which test/kernels/matvec.test.ts checks against the float64 reference of
// the dequantized weights.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "gemm.h"
#include "kernels.h"
#include "matvec.h"
#include "pool.h"
#include "weights.h"

// GCC 12 reports the _mm512_undefined_* operand inside its own cvtepu16 / cvtph intrinsics.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace fb {

namespace {

constexpr int64_t QB = 32;

// X quantized for the integer dot products: per row, nb = ceil(K / 32) scales, nb * 32 int8 values
// and nb block sums of the int8 values (q4_0's offset of 8 is applied through them). A partial last
// block (K not a multiple of 32) is quantized over its real values and padded with int8 zeros, so
// it dots with the weight block's zero padding without reading X past K.
struct QAct {
  int64_t nb = 0;
  const float* d[4];
  const int8_t* q[4];
  const int32_t* sum[4];
};

void quantize_rows(int64_t M, int64_t K, const float* X, int64_t ldx, QAct& a) {
  a.nb = (K + QB - 1) / QB;
  const int64_t per = a.nb * (2 * sizeof(float) + QB);  // d, sum, q
  // slot 1: nothing the matrix-vector path calls uses it while these rows are read
  float* buf = scratch(static_cast<size_t>((M * per) / sizeof(float) + 16), 1);
  for (int64_t m = 0; m < M; m++) {
    float* d = buf + m * (per / sizeof(float) + 1);
    int32_t* sum = reinterpret_cast<int32_t*>(d + a.nb);
    int8_t* q = reinterpret_cast<int8_t*>(sum + a.nb);
    const float* x = X + m * ldx;
    for (int64_t b = 0; b < a.nb; b++) {
      const float* xb = x + b * QB;
      const int len = static_cast<int>(std::min<int64_t>(QB, K - b * QB));
      float amax = 0.0f;
      for (int j = 0; j < len; j++) amax = std::max(amax, std::fabs(xb[j]));
      const float db = amax / 127.0f, id = db != 0.0f ? 1.0f / db : 0.0f;
      int32_t s = 0;
      for (int j = 0; j < len; j++) {
        const int v = static_cast<int>(std::nearbyint(xb[j] * id));
        q[b * QB + j] = static_cast<int8_t>(v);
        s += v;
      }
      for (int j = len; j < QB; j++) q[b * QB + j] = 0;
      d[b] = db;
      sum[b] = s;
    }
    a.d[m] = d, a.q[m] = q, a.sum[m] = sum;
  }
}

// One output value: alpha s + beta y (beta = 0 ignores y, which may hold NaN garbage).
inline void put(float* y, float s, float alpha, float beta) { *y = beta == 0.0f ? alpha * s : alpha * s + beta * *y; }

// ---- portable ----------------------------------------------------------------------------------
void rows_portable(WFormat f, const uint8_t* W, int64_t n0, int64_t n1, int64_t K, int64_t M,
                   const float* X, int64_t ldx, float* Y, int64_t ldy, float alpha, float beta) {
  float* w = scratch(static_cast<size_t>(K), 2);  // the row widened (slot 2: unused on this path)
  for (int64_t n = n0; n < n1; n++) {
    widen_row(f, W, K, n, 0, K, w);
    float s[4] = {0, 0, 0, 0};
    for (int64_t k = 0; k < K; k++)
      for (int64_t m = 0; m < M; m++) s[m] += w[k] * X[m * ldx + k];
    for (int64_t m = 0; m < M; m++) put(Y + m * ldy + n, s[m], alpha, beta);
  }
}

#if defined(__x86_64__)
inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

// ---- AVX2 + FMA + F16C (x86-64-v3, the build's baseline) ----------------------------------------
template <WFormat F>
inline __m256 load8(const uint8_t* row, int64_t k) {
  if constexpr (F == WFormat::F32) return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + k);
  if constexpr (F == WFormat::BF16) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * k));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  if constexpr (F == WFormat::F16)
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * k)));
  return _mm256_setzero_ps();
}

// Float formats: two accumulators per row of X (four for one row), 8 values a step.
template <WFormat F, int M>
void rows_avx2_float(const uint8_t* W, int64_t rb, int64_t n0, int64_t n1, int64_t K, const float* X, int64_t ldx,
                     float* Y, int64_t ldy, float alpha, float beta) {
  constexpr int NA = M == 1 ? 4 : 2;
  for (int64_t n = n0; n < n1; n++) {
    const uint8_t* row = W + n * rb;
    __m256 acc[M][NA];
    for (int m = 0; m < M; m++)
      for (int a = 0; a < NA; a++) acc[m][a] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 * NA <= K; k += 8 * NA) {
#pragma GCC unroll 4
      for (int a = 0; a < NA; a++) {
        const __m256 w = load8<F>(row, k + 8 * a);
#pragma GCC unroll 4
        for (int m = 0; m < M; m++) acc[m][a] = _mm256_fmadd_ps(w, _mm256_loadu_ps(X + m * ldx + k + 8 * a), acc[m][a]);
      }
    }
    for (; k + 8 <= K; k += 8) {
      const __m256 w = load8<F>(row, k);
      for (int m = 0; m < M; m++) acc[m][0] = _mm256_fmadd_ps(w, _mm256_loadu_ps(X + m * ldx + k), acc[m][0]);
    }
    float tail[8];  // the last K % 8 weights of the row, widened
    if (k < K) widen_row(F, W, K, n, k, K, tail);
    for (int m = 0; m < M; m++) {
      __m256 s = acc[m][0];
      for (int a = 1; a < NA; a++) s = _mm256_add_ps(s, acc[m][a]);
      float t = hsum256(s);
      for (int64_t j = k; j < K; j++) t += tail[j - k] * X[m * ldx + j];
      put(Y + m * ldy + n, t, alpha, beta);
    }
  }
}

// The 32 weights of a q8_0 / q4_0 block as 32 bytes: q8_0 signed values; q4_0 its nibbles 0..15
// (values 0..15 from the low nibbles, 16..31 from the high ones), the offset 8 applied later.
template <WFormat F>
inline __m256i block_bytes(const uint8_t* blk) {
  if constexpr (F == WFormat::Q8_0) return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
  const __m128i lo = _mm_and_si128(b, _mm_set1_epi8(15)), hi = _mm_and_si128(_mm_srli_epi16(b, 4), _mm_set1_epi8(15));
  return _mm256_set_m128i(hi, lo);
}

// 8 int32 partial sums of w . x over one block: q8_0 through |w| (unsigned) times x with w's sign
// (maddubs's operands are unsigned x signed); q4_0's nibbles are already unsigned.
template <WFormat F>
inline __m256i block_dot_avx2(__m256i w, __m256i x) {
  __m256i p;
  if constexpr (F == WFormat::Q8_0) p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
  else p = _mm256_maddubs_epi16(w, x);
  return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

template <WFormat F, int M>
void rows_avx2_quant(const uint8_t* W, int64_t rb, int64_t n0, int64_t n1, const QAct& a, float* Y, int64_t ldy,
                     float alpha, float beta) {
  constexpr int64_t BB = F == WFormat::Q8_0 ? 34 : 18;
  for (int64_t n = n0; n < n1; n++) {
    const uint8_t* row = W + n * rb;
    __m256 acc[M][2];
    for (int m = 0; m < M; m++) acc[m][0] = acc[m][1] = _mm256_setzero_ps();
    float off[M];  // q4_0: sum_b d_w d_x 8 sum(q_x), subtracted at the end
    for (int m = 0; m < M; m++) off[m] = 0.0f;
    for (int64_t b = 0; b < a.nb; b++) {
      const uint8_t* blk = row + b * BB;
      const float dw = half_to_float(blk);
      const __m256i w = block_bytes<F>(blk);
#pragma GCC unroll 4
      for (int m = 0; m < M; m++) {
        const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q[m] + b * QB));
        const float sc = dw * a.d[m][b];
        acc[m][b & 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(block_dot_avx2<F>(w, x)), _mm256_set1_ps(sc), acc[m][b & 1]);
        if constexpr (F == WFormat::Q4_0) off[m] += sc * static_cast<float>(8 * a.sum[m][b]);
      }
    }
    for (int m = 0; m < M; m++) put(Y + m * ldy + n, hsum256(_mm256_add_ps(acc[m][0], acc[m][1])) - off[m], alpha, beta);
  }
}

// ---- AVX-512 (F, BW, VL, DQ; VNNI where present) -----------------------------------------------
#define T512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")))
#define T512VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c")))

template <WFormat F>
T512 inline __m512 load16(const uint8_t* row, int64_t k, __mmask16 mk) {
  if constexpr (F == WFormat::F32) return _mm512_maskz_loadu_ps(mk, reinterpret_cast<const float*>(row) + k);
  if constexpr (F == WFormat::BF16) {
    const __m256i h = _mm256_maskz_loadu_epi16(mk, row + 2 * k);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  if constexpr (F == WFormat::F16) return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mk, row + 2 * k));
  return _mm512_setzero_ps();
}

template <WFormat F, int M>
T512 void rows_avx512_float(const uint8_t* W, int64_t rb, int64_t n0, int64_t n1, int64_t K, const float* X,
                            int64_t ldx, float* Y, int64_t ldy, float alpha, float beta) {
  constexpr int NA = M == 1 ? 4 : 2;
  const __mmask16 all = 0xFFFF;
  for (int64_t n = n0; n < n1; n++) {
    const uint8_t* row = W + n * rb;
    __m512 acc[M][NA];
    for (int m = 0; m < M; m++)
      for (int a = 0; a < NA; a++) acc[m][a] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 16 * NA <= K; k += 16 * NA) {
#pragma GCC unroll 4
      for (int a = 0; a < NA; a++) {
        const __m512 w = load16<F>(row, k + 16 * a, all);
#pragma GCC unroll 4
        for (int m = 0; m < M; m++)
          acc[m][a] = _mm512_fmadd_ps(w, _mm512_loadu_ps(X + m * ldx + k + 16 * a), acc[m][a]);
      }
    }
    for (; k < K; k += 16) {
      const __mmask16 mk = K - k >= 16 ? all : static_cast<__mmask16>((1u << (K - k)) - 1);
      const __m512 w = load16<F>(row, k, mk);
      for (int m = 0; m < M; m++) acc[m][0] = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(mk, X + m * ldx + k), acc[m][0]);
    }
    for (int m = 0; m < M; m++) {
      __m512 s = acc[m][0];
      for (int a = 1; a < NA; a++) s = _mm512_add_ps(s, acc[m][a]);
      put(Y + m * ldy + n, _mm512_reduce_add_ps(s), alpha, beta);
    }
  }
}

template <WFormat F>
T512VNNI inline __m256i block_dot_vnni(__m256i w, __m256i x) {
  if constexpr (F == WFormat::Q8_0)
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(w), _mm256_sign_epi8(x, w));
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), w, x);
}

template <WFormat F>
T512VNNI inline __m256i block_bytes_vnni(const uint8_t* blk) {
  if constexpr (F == WFormat::Q8_0) return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
  const __m128i lo = _mm_and_si128(b, _mm_set1_epi8(15)), hi = _mm_and_si128(_mm_srli_epi16(b, 4), _mm_set1_epi8(15));
  return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
}

template <WFormat F, int M>
T512VNNI void rows_vnni_quant(const uint8_t* W, int64_t rb, int64_t n0, int64_t n1, const QAct& a, float* Y,
                              int64_t ldy, float alpha, float beta) {
  constexpr int64_t BB = F == WFormat::Q8_0 ? 34 : 18;
  for (int64_t n = n0; n < n1; n++) {
    const uint8_t* row = W + n * rb;
    __m256 acc[M][2];
    for (int m = 0; m < M; m++) acc[m][0] = acc[m][1] = _mm256_setzero_ps();
    float off[M];
    for (int m = 0; m < M; m++) off[m] = 0.0f;
    for (int64_t b = 0; b < a.nb; b++) {
      const uint8_t* blk = row + b * BB;
      const float dw = _cvtsh_ss(*reinterpret_cast<const uint16_t*>(blk));
      const __m256i w = block_bytes_vnni<F>(blk);
#pragma GCC unroll 4
      for (int m = 0; m < M; m++) {
        const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q[m] + b * QB));
        const float sc = dw * a.d[m][b];
        acc[m][b & 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(block_dot_vnni<F>(w, x)), _mm256_set1_ps(sc), acc[m][b & 1]);
        if constexpr (F == WFormat::Q4_0) off[m] += sc * static_cast<float>(8 * a.sum[m][b]);
      }
    }
    for (int m = 0; m < M; m++) {
      const __m256 s = _mm256_add_ps(acc[m][0], acc[m][1]);
      __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
      h = _mm_add_ps(h, _mm_movehl_ps(h, h));
      h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
      put(Y + m * ldy + n, _mm_cvtss_f32(h) - off[m], alpha, beta);
    }
  }
}

bool has_vnni() {
  __builtin_cpu_init();
  static const bool v = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl");
  return v;
}
#endif

enum class Isa { Portable, AVX2, AVX512 };

Isa isa_for(GemmPath p) {
#if defined(__x86_64__)
  if (p == GemmPath::AVX512 || p == GemmPath::AVX512BF16) return Isa::AVX512;
  if (p == GemmPath::AVX2) return Isa::AVX2;
#endif
  (void)p;
  return Isa::Portable;
}

// Rows [n0, n1) of one weight.
template <int M>
void rows_m(Isa isa, WFormat f, const uint8_t* W, int64_t rb, int64_t n0, int64_t n1, int64_t K, const float* X,
            int64_t ldx, const QAct& qa, float* Y, int64_t ldy, float alpha, float beta) {
#if defined(__x86_64__)
  if (isa == Isa::AVX512) {
    switch (f) {
      case WFormat::F32: return rows_avx512_float<WFormat::F32, M>(W, rb, n0, n1, K, X, ldx, Y, ldy, alpha, beta);
      case WFormat::BF16: return rows_avx512_float<WFormat::BF16, M>(W, rb, n0, n1, K, X, ldx, Y, ldy, alpha, beta);
      case WFormat::F16: return rows_avx512_float<WFormat::F16, M>(W, rb, n0, n1, K, X, ldx, Y, ldy, alpha, beta);
      case WFormat::Q8_0:
        if (has_vnni()) return rows_vnni_quant<WFormat::Q8_0, M>(W, rb, n0, n1, qa, Y, ldy, alpha, beta);
        return rows_avx2_quant<WFormat::Q8_0, M>(W, rb, n0, n1, qa, Y, ldy, alpha, beta);
      case WFormat::Q4_0:
        if (has_vnni()) return rows_vnni_quant<WFormat::Q4_0, M>(W, rb, n0, n1, qa, Y, ldy, alpha, beta);
        return rows_avx2_quant<WFormat::Q4_0, M>(W, rb, n0, n1, qa, Y, ldy, alpha, beta);
    }
  }
  if (isa == Isa::AVX2) {
    switch (f) {
      case WFormat::F32: return rows_avx2_float<WFormat::F32, M>(W, rb, n0, n1, K, X, ldx, Y, ldy, alpha, beta);
      case WFormat::BF16: return rows_avx2_float<WFormat::BF16, M>(W, rb, n0, n1, K, X, ldx, Y, ldy, alpha, beta);
      case WFormat::F16: return rows_avx2_float<WFormat::F16, M>(W, rb, n0, n1, K, X, ldx, Y, ldy, alpha, beta);
      case WFormat::Q8_0: return rows_avx2_quant<WFormat::Q8_0, M>(W, rb, n0, n1, qa, Y, ldy, alpha, beta);
      case WFormat::Q4_0: return rows_avx2_quant<WFormat::Q4_0, M>(W, rb, n0, n1, qa, Y, ldy, alpha, beta);
    }
  }
#endif
  (void)qa;
  rows_portable(f, W, n0, n1, K, M, X, ldx, Y, ldy, alpha, beta);
}

}  // namespace

void weight_matvec(const std::vector<MatvecPart>& parts, int64_t K, int64_t M, float alpha, const float* X,
                   int64_t ldx, float beta) {
  if (M <= 0 || M > kMatvecRows || parts.empty()) return;
  const Isa isa = isa_for(gemm_path());
  int64_t total = 0, bytes = 0;
  bool quant = false;
  for (const MatvecPart& p : parts) {
    total += p.N;
    bytes += p.N * wformat_row_bytes(static_cast<WFormat>(p.format), K);
    quant |= p.format == int(WFormat::Q8_0) || p.format == int(WFormat::Q4_0);
  }
  if (total == 0) return;
  QAct qa;
  if (quant && isa != Isa::Portable) quantize_rows(M, K, X, ldx, qa);
  // K == 0: every dot product is 0.
  // Chunks of at least ~64 KiB of weight, so a small matrix stays on one thread.
  const int64_t rowBytes = std::max<int64_t>(1, bytes / total);
  const int64_t grain = std::max<int64_t>(8, (64 << 10) / rowBytes);
  parallel_for(total, grain, [&](int64_t r0, int64_t r1) {
    int64_t base = 0;
    for (const MatvecPart& p : parts) {
      const int64_t s = std::max(r0, base) - base, e = std::min(r1, base + p.N) - base;
      base += p.N;
      if (s >= e) continue;
      const WFormat f = static_cast<WFormat>(p.format);
      const int64_t rb = wformat_row_bytes(f, K);
      switch (M) {
        case 1: rows_m<1>(isa, f, p.W, rb, s, e, K, X, ldx, qa, p.Y, p.ldy, alpha, beta); break;
        case 2: rows_m<2>(isa, f, p.W, rb, s, e, K, X, ldx, qa, p.Y, p.ldy, alpha, beta); break;
        case 3: rows_m<3>(isa, f, p.W, rb, s, e, K, X, ldx, qa, p.Y, p.ldy, alpha, beta); break;
        default: rows_m<4>(isa, f, p.W, rb, s, e, K, X, ldx, qa, p.Y, p.ldy, alpha, beta); break;
      }
    }
  });
}

}  // namespace fb
