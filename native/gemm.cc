// Our own packed gemm: the GotoBLAS/BLIS loop nest around register-blocked micro-kernels.
//   each thread owns a slab of C (column panels, or rows when C is narrow); in it,
//   for jc (NC columns): for pc (KC of K): pack op(B)[pc, jc];
//     for MC row blocks: for NR column panels: for MR row panels: micro-kernel
//       (an MR x NR tile of C from an MR x KC piece of A and the KC x NR B panel).
// The B panel (KC x NR) stays in L1 while the A rows of one MC block stream from L2.
// AVX-512: MR 12 x NR 32 (24 zmm accumulators, two B vectors, one broadcast per row);
// AVX2: MR 6 x NR 16 (12 ymm accumulators). Edges are zero-padded in packing and masked at store.
#include "gemm.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "pool.h"

namespace fb {

namespace {

// A micro-kernel reads A(i, k) at A[i * rs + k] (ROWS: rows of a row-major A, unpacked) or at
// A[k * cs + i] (a packed panel, cs = MR, or a transposed A read in place, cs = lda).
// B(k, j) is at B[k * ldb + j]: ldb = NR for a packed panel, the row length of a row-major B read in
// place.
using Kernel = void (*)(int64_t kc, const float* A, int64_t stride, const float* B, int64_t ldb, float* C, int64_t ldc,
                        int m, int n, float alpha, float beta);

struct Spec {
  int MR, NR;
  int64_t MC, KC, NC;
  Kernel rows, cols;
};

#if defined(__x86_64__)
template <bool ROWS>
__attribute__((target("avx512f,avx512vl,avx512dq,fma"))) void kern_avx512(int64_t kc, const float* __restrict A,
                                                                         int64_t stride, const float* __restrict B,
                                                                         int64_t ldb, float* C, int64_t ldc, int m, int n,
                                                                         float alpha, float beta) {
  constexpr int MR = 12;
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 12
  for (int i = 0; i < MR; i++) c0[i] = c1[i] = _mm512_setzero_ps();
  if (ROWS) {
    const float* a0 = A;
    const float* a4 = A + 4 * stride;
    const float* a8 = A + 8 * stride;
    const int64_t s1 = stride, s2 = 2 * stride, s3 = 3 * stride;
#pragma GCC unroll 2
    for (int64_t k = 0; k < kc; k++) {
      const __m512 b0 = _mm512_loadu_ps(B), b1 = _mm512_loadu_ps(B + 16);
      const float* rowp[MR] = {a0, a0 + s1, a0 + s2, a0 + s3, a4, a4 + s1, a4 + s2, a4 + s3, a8, a8 + s1, a8 + s2, a8 + s3};
#pragma GCC unroll 12
      for (int i = 0; i < MR; i++) {
        const __m512 a = _mm512_set1_ps(rowp[i][k]);
        c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
        c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
      }
      B += ldb;
    }
  } else {
#pragma GCC unroll 2
    for (int64_t k = 0; k < kc; k++) {
      const __m512 b0 = _mm512_loadu_ps(B), b1 = _mm512_loadu_ps(B + 16);
#pragma GCC unroll 12
      for (int i = 0; i < MR; i++) {
        const __m512 a = _mm512_set1_ps(A[i]);
        c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
        c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
      }
      A += stride;
      B += ldb;
    }
  }
  const __mmask16 k0 = n >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << n) - 1);
  const __mmask16 k1 = n >= 32 ? 0xFFFF : n > 16 ? static_cast<__mmask16>((1u << (n - 16)) - 1) : 0;
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 12
  for (int i = 0; i < MR; i++) {
    if (i >= m) break;
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

template <bool ROWS>
__attribute__((target("avx2,fma"))) void kern_avx2(int64_t kc, const float* __restrict A, int64_t stride,
                                                   const float* __restrict B, int64_t ldb, float* C, int64_t ldc, int m, int n,
                                                   float alpha, float beta) {
  constexpr int MR = 6;
  __m256 c0[MR], c1[MR];
#pragma GCC unroll 6
  for (int i = 0; i < MR; i++) c0[i] = c1[i] = _mm256_setzero_ps();
#pragma GCC unroll 2
  for (int64_t k = 0; k < kc; k++) {
    const __m256 b0 = _mm256_loadu_ps(B), b1 = _mm256_loadu_ps(B + 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
      const __m256 a = _mm256_broadcast_ss(ROWS ? A + i * stride + k : A + i);
      c0[i] = _mm256_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm256_fmadd_ps(a, b1, c1[i]);
    }
    if (!ROWS) A += stride;
    B += ldb;
  }
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  for (int i = 0; i < m; i++) {
    float* cr = C + i * ldc;
    __m256 v0 = _mm256_mul_ps(va, c0[i]), v1 = _mm256_mul_ps(va, c1[i]);
    if (n == 16) {
      if (beta != 0.0f) {
        v0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(cr), v0);
        v1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(cr + 8), v1);
      }
      _mm256_storeu_ps(cr, v0);
      _mm256_storeu_ps(cr + 8, v1);
    } else {
      alignas(32) float t[16];
      _mm256_store_ps(t, v0);
      _mm256_store_ps(t + 8, v1);
      for (int j = 0; j < n; j++) cr[j] = beta != 0.0f ? t[j] + beta * cr[j] : t[j];
    }
  }
}
#endif

const Spec kAVX512{12, 32, 144, 256, 1536, nullptr, nullptr};
const Spec kAVX2{6, 16, 96, 256, 1536, nullptr, nullptr};

bool cpu_has(GemmPath p) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (p == GemmPath::AVX512) return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                                    __builtin_cpu_supports("avx512dq");
  if (p == GemmPath::AVX2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (p == GemmPath::AVX512BF16) return bf16_dot_available();
#endif
  return p == GemmPath::OpenBLAS;
}

GemmPath parse(const std::string& s, bool& ok) {
  ok = true;
  if (s == "avx512") return GemmPath::AVX512;
  if (s == "avx512bf16") return GemmPath::AVX512BF16;
  if (s == "avx2") return GemmPath::AVX2;
  if (s == "openblas") return GemmPath::OpenBLAS;
  ok = false;
  return GemmPath::OpenBLAS;
}

GemmPath best() {
  if (cpu_has(GemmPath::AVX512)) return GemmPath::AVX512;
  if (cpu_has(GemmPath::AVX2)) return GemmPath::AVX2;
  return GemmPath::OpenBLAS;
}

GemmPath initial() {
  if (const char* s = std::getenv("FEDBIOT_GEMM")) {
    bool ok;
    GemmPath p = parse(s, ok);
    if (ok && cpu_has(p)) return p;
    if (*s) std::fprintf(stderr, "fedbiot: FEDBIOT_GEMM=%s is not available on this CPU (avx512, avx512bf16, avx2, openblas); using %s\n", s,
                         gemm_path_name(best()));
  }
  return best();
}

GemmPath g_path = initial();

// 64-byte aligned, grow-only, per thread.
float* aligned_scratch(size_t n, int slot) {
  struct Buf {
    float* p = nullptr;
    size_t n = 0;
    ~Buf() { std::free(p); }
  };
  thread_local Buf bufs[2];
  Buf& b = bufs[slot];
  if (b.n < n) {
    std::free(b.p);
    size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    b.p = static_cast<float*>(std::aligned_alloc(64, bytes));
    b.n = n;
  }
  return b.p;
}

// Packs rows [i0, i0 + mc) x [k0, k0 + kc) of op(A) into panels of mr rows: dst[(ip * kc + k) * mr + r].
void pack_a(const float* A, int64_t lda, bool tA, int64_t i0, int64_t mc, int64_t k0, int64_t kc, int mr, float* dst) {
  for (int64_t ip = 0; ip * mr < mc; ip++) {
    float* d = dst + ip * kc * mr;
    const int rows = static_cast<int>(std::min<int64_t>(mr, mc - ip * mr));
    const int64_t r0 = i0 + ip * mr;
    if (!tA) {
      for (int r = 0; r < rows; r++) {
        const float* s = A + (r0 + r) * lda + k0;
        for (int64_t k = 0; k < kc; k++) d[k * mr + r] = s[k];
      }
      for (int r = rows; r < mr; r++)
        for (int64_t k = 0; k < kc; k++) d[k * mr + r] = 0.0f;
    } else {
      for (int64_t k = 0; k < kc; k++) {
        const float* s = A + (k0 + k) * lda + r0;
        float* dk = d + k * mr;
        for (int r = 0; r < rows; r++) dk[r] = s[r];
        for (int r = rows; r < mr; r++) dk[r] = 0.0f;
      }
    }
  }
}

const Spec& spec() {
#if defined(__x86_64__)
  static Spec s512 = [] { Spec s = kAVX512; s.rows = kern_avx512<true>; s.cols = kern_avx512<false>; return s; }();
  static Spec s2 = [] { Spec s = kAVX2; s.rows = kern_avx2<true>; s.cols = kern_avx2<false>; return s; }();
  return g_path == GemmPath::AVX512 || g_path == GemmPath::AVX512BF16 ? s512 : s2;
#else
  static Spec none{};
  return none;  // never used: only the OpenBLAS path exists here
#endif
}

// dst[k * ld + c] = src[c * lds + k] for an 8 x 8 block (c, k < 8).
inline void transpose8(const float* src, int64_t lds, float* dst, int64_t ld) {
#if defined(__x86_64__)
  __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + lds), r2 = _mm256_loadu_ps(src + 2 * lds),
         r3 = _mm256_loadu_ps(src + 3 * lds), r4 = _mm256_loadu_ps(src + 4 * lds), r5 = _mm256_loadu_ps(src + 5 * lds),
         r6 = _mm256_loadu_ps(src + 6 * lds), r7 = _mm256_loadu_ps(src + 7 * lds);
  __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
         t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
         t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE), u2 = _mm256_shuffle_ps(t1, t3, 0x44),
         u3 = _mm256_shuffle_ps(t1, t3, 0xEE), u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
         u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  _mm256_storeu_ps(dst, _mm256_permute2f128_ps(u0, u4, 0x20));
  _mm256_storeu_ps(dst + ld, _mm256_permute2f128_ps(u1, u5, 0x20));
  _mm256_storeu_ps(dst + 2 * ld, _mm256_permute2f128_ps(u2, u6, 0x20));
  _mm256_storeu_ps(dst + 3 * ld, _mm256_permute2f128_ps(u3, u7, 0x20));
  _mm256_storeu_ps(dst + 4 * ld, _mm256_permute2f128_ps(u0, u4, 0x31));
  _mm256_storeu_ps(dst + 5 * ld, _mm256_permute2f128_ps(u1, u5, 0x31));
  _mm256_storeu_ps(dst + 6 * ld, _mm256_permute2f128_ps(u2, u6, 0x31));
  _mm256_storeu_ps(dst + 7 * ld, _mm256_permute2f128_ps(u3, u7, 0x31));
#else
  for (int c = 0; c < 8; c++)
    for (int k = 0; k < 8; k++) dst[k * ld + c] = src[c * lds + k];
#endif
}

#if defined(__x86_64__)
// Independent FMA chains (16 accumulators, more than latency x throughput needs), widest vector.
__attribute__((target("avx512f"))) double fma_loop_avx512(int64_t iters) {
  __m512 a[16];
  for (int i = 0; i < 16; i++) a[i] = _mm512_set1_ps(1.0f + i * 1e-7f);
  const __m512 m = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
  for (int64_t t = 0; t < iters; t++) {
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) a[i] = _mm512_fmadd_ps(a[i], m, c);
  }
  __m512 s = a[0];
  for (int i = 1; i < 16; i++) s = _mm512_add_ps(s, a[i]);
  return _mm512_reduce_add_ps(s);
}
__attribute__((target("avx2,fma"))) double fma_loop_avx2(int64_t iters) {
  __m256 a[12];
  for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps(1.0f + i * 1e-7f);
  const __m256 m = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
  for (int64_t t = 0; t < iters; t++) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_ps(a[i], m, c);
  }
  __m256 s = a[0];
  for (int i = 1; i < 12; i++) s = _mm256_add_ps(s, a[i]);
  alignas(32) float o[8];
  _mm256_store_ps(o, s);
  return o[0];
}
#endif

}  // namespace

double peak_gflops(int64_t iters) {
#if defined(__x86_64__)
  const bool wide = cpu_has(GemmPath::AVX512);
  const int nt = get_threads();
  const double flopsPerIter = wide ? 16.0 * 32 : 12.0 * 16;
  volatile double sink = 0;
  auto t0 = std::chrono::steady_clock::now();
  parallel_for(nt, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) sink = sink + (wide ? fma_loop_avx512(iters) : fma_loop_avx2(iters));
  });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return nt * iters * flopsPerIter / s / 1e9;
#else
  (void)iters;
  return 0.0;
#endif
}

const char* gemm_path_name(GemmPath p) {
  switch (p) {
    case GemmPath::AVX512: return "avx512";
    case GemmPath::AVX512BF16: return "avx512bf16";
    case GemmPath::AVX2: return "avx2";
    case GemmPath::OpenBLAS: return "openblas";
  }
  return "?";
}

GemmPath gemm_path() { return g_path; }

int own_gemm_nr() { return g_path == GemmPath::OpenBLAS ? 0 : spec().NR; }

std::vector<std::string> gemm_paths_available() {
  std::vector<std::string> out;
  for (GemmPath p : {GemmPath::AVX512, GemmPath::AVX512BF16, GemmPath::AVX2, GemmPath::OpenBLAS})
    if (cpu_has(p)) out.push_back(gemm_path_name(p));
  return out;
}

bool set_gemm_path(const std::string& name) {
  bool ok;
  GemmPath p = parse(name, ok);
  if (!ok || !cpu_has(p)) return false;
  g_path = p;
  return true;
}

void transpose_into_panel(const float* src, int64_t lds, int64_t kc, float* dst, int64_t ld) {
  const int64_t k8 = kc / 8 * 8;
  for (int64_t k = 0; k < k8; k += 8) transpose8(src + k, lds, dst + k * ld, ld);
  for (int c = 0; c < 8; c++)
    for (int64_t k = k8; k < kc; k++) dst[k * ld + c] = src[c * lds + k];
}

PackB pack_f32(const float* B, int64_t ldb, bool tB) {
  return [=](int64_t k0, int64_t kc, int64_t j0, int64_t nc, int nr, float* dst) {
    for (int64_t jp = 0; jp * nr < nc; jp++) {
      float* d = dst + jp * kc * nr;
      const int cols = static_cast<int>(std::min<int64_t>(nr, nc - jp * nr));
      const int64_t c0 = j0 + jp * nr;
      if (!tB) {
        for (int64_t k = 0; k < kc; k++) {
          const float* s = B + (k0 + k) * ldb + c0;
          float* dk = d + k * nr;
          // A plain loop (vectorized) rather than memcpy: a call per 32 values cost more than the copy.
          for (int c = 0; c < cols; c++) dk[c] = s[c];
          for (int c = cols; c < nr; c++) dk[c] = 0.0f;
        }
      } else {
        // 8 x 8 transposes for whole blocks, element by element at the edges.
        const int c8 = cols / 8 * 8;
        const int64_t k8 = kc / 8 * 8;
        for (int c = 0; c < c8; c += 8)
          for (int64_t k = 0; k < k8; k += 8) transpose8(B + (c0 + c) * ldb + k0 + k, ldb, d + k * nr + c, nr);
        for (int c = 0; c < cols; c++) {
          const float* s = B + (c0 + c) * ldb + k0;
          for (int64_t k = c < c8 ? k8 : 0; k < kc; k++) d[k * nr + c] = s[k];
        }
        for (int c = cols; c < nr; c++)
          for (int64_t k = 0; k < kc; k++) d[k * nr + c] = 0.0f;
      }
    }
  };
}

namespace {

// Rows of C at or below which a plain row-major B is read in place instead of packed: with few row
// panels per B panel, packing costs about as much as the multiply-adds it serves (perf: a fifth of
// attention's time at B4 T256 H8 Dh64 went to packing; its backward, whose dV and dK products have
// up to 256 rows, took ~8% less CPU time at 256 than with packing, loaded machine).
constexpr int64_t kDirectRows = 256;

// A panel of NR (or fewer, at a segment's end) output columns: segment seg, local columns [j, j + n).
struct Panel {
  int seg;
  int64_t j;
  int n;
};

// Rows [r0, r1) x panels [p0, p1) of C on the calling thread: the whole loop nest, B packed into
// this thread's buffer. A block of NC / NR panels may span column segments (their B packed side by
// side), so A streams once per block for all of them; a KC block never spans K segments.
void gemm_block(const Spec& s, int64_t r0, int64_t r1, int64_t p0, int64_t p1, const std::vector<Panel>& panels,
                float alpha, bool tA, const std::vector<ColSeg>& cols, const std::vector<KSeg>& ks, float beta) {
  const int MR = s.MR, NR = s.NR;
  const int64_t M = r1 - r0;
  // A full-width panel of a plain row-major B is read in place when few row panels share it: packing
  // it would cost as much as the multiply-adds it serves (attention's blocks, LoRA's rank-r rows).
  const bool fewRows = M <= kDirectRows && ks.size() == 1;
  const auto direct = [&](const Panel& pn) { return fewRows && pn.n == NR && cols[pn.seg].B != nullptr; };
  const int64_t ncp = std::max<int64_t>(1, s.NC / NR);
  for (int64_t pa = p0; pa < p1; pa += ncp) {
    const int64_t pb = std::min(p1, pa + ncp);
    bool first = true;
    for (const KSeg& kseg : ks) {
      for (int64_t pc = 0; pc < kseg.K; pc += s.KC) {
        const int64_t kc = std::min(s.KC, kseg.K - pc);
        float* Bp = aligned_scratch((pb - pa) * NR * kc, 0);
        for (int64_t p = pa; p < pb; p++) {
          const Panel& pn = panels[p];
          if (direct(pn)) continue;
          const PackB& pack = cols[pn.seg].pack ? cols[pn.seg].pack : kseg.pack;
          pack(pc, kc, pn.j, pn.n, NR, Bp + (p - pa) * NR * kc);
        }
        const float bEff = first ? beta : 1.0f;
        first = false;
        const float* A = kseg.A;
        const int64_t lda = kseg.lda;
        float* Ap = aligned_scratch(MR * kc, 1);
        bool packedTail = false;
        for (int64_t i0 = 0; i0 < M; i0 += s.MC) {
          const int64_t mcur = std::min(s.MC, M - i0);
          for (int64_t p = pa; p < pb; p++) {
            const Panel& pn = panels[p];
            const ColSeg& cs = cols[pn.seg];
            const bool dir = direct(pn);
            const float* bp = dir ? cs.B + pc * cs.ldb + pn.j : Bp + (p - pa) * NR * kc;
            const int64_t ldb = dir ? cs.ldb : NR;
            for (int64_t ir = 0; ir < mcur; ir += MR) {
              const int m = static_cast<int>(std::min<int64_t>(MR, mcur - ir));
              const int64_t row = r0 + i0 + ir;
              float* ct = cs.C + row * cs.ldc + pn.j;
              // Full MR-row panels of A are read in place (row-major rows, or columns of a transposed
              // A); only a last partial panel is packed, zero-padded to MR rows.
              if (m == MR) {
                if (!tA) s.rows(kc, A + row * lda + pc, lda, bp, ldb, ct, cs.ldc, m, pn.n, alpha, bEff);
                else s.cols(kc, A + pc * lda + row, lda, bp, ldb, ct, cs.ldc, m, pn.n, alpha, bEff);
              } else {
                if (!packedTail) {
                  pack_a(A, lda, tA, row, m, pc, kc, MR, Ap);
                  packedTail = true;
                }
                s.cols(kc, Ap, MR, bp, ldb, ct, cs.ldc, m, pn.n, alpha, bEff);
              }
            }
          }
        }
      }
    }
  }
}

}  // namespace

// One parallel region per gemm: each thread computes a whole slab of C (a range of NR-column
// panels when there are enough, else a range of rows) with its own B packing, so the threads never
// wait for each other inside the gemm (a barrier per block cost much on a shared machine).
void own_gemm_group(int64_t M, float alpha, bool tA, const std::vector<ColSeg>& cols, const std::vector<KSeg>& ks,
                    float beta) {
  const Spec& s = spec();
  int64_t Ktot = 0;
  for (const KSeg& k : ks) Ktot += k.K;
  if (M <= 0) return;
  if (Ktot <= 0) {  // C = beta C
    for (const ColSeg& c : cols)
      for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < c.N; j++) c.C[i * c.ldc + j] = beta == 0.0f ? 0.0f : beta * c.C[i * c.ldc + j];
    return;
  }
  std::vector<Panel> panels;
  for (size_t c = 0; c < cols.size(); c++)
    for (int64_t j = 0; j < cols[c].N; j += s.NR)
      panels.push_back({static_cast<int>(c), j, static_cast<int>(std::min<int64_t>(s.NR, cols[c].N - j))});
  const int64_t npan = static_cast<int64_t>(panels.size());
  if (npan == 0) return;
  const int nt = blas_single_active() ? 1 : get_threads();
  const int64_t nrow = (M + s.MR - 1) / s.MR;
  if (nt <= 1) {
    gemm_block(s, 0, M, 0, npan, panels, alpha, tA, cols, ks, beta);
  } else if (npan >= 2 * nt) {
    parallel_for(npan, 1, [&](int64_t p0, int64_t p1) { gemm_block(s, 0, M, p0, p1, panels, alpha, tA, cols, ks, beta); });
  } else {
    parallel_for(nrow, 1, [&](int64_t q0, int64_t q1) {
      gemm_block(s, q0 * s.MR, std::min(M, q1 * s.MR), 0, npan, panels, alpha, tA, cols, ks, beta);
    });
  }
}

void own_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, bool tA, const PackB& packB,
              float beta, float* C, int64_t ldc, const float* Bplain, int64_t ldbPlain) {
  own_gemm_group(M, alpha, tA, {ColSeg{N, C, ldc, packB, Bplain, ldbPlain}}, {KSeg{K, A, lda, PackB()}}, beta);
}

}  // namespace fb
