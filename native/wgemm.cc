// GEMM against stored frozen weights: the weight is widened to f32 a block of rows at a time
// (about 1 MiB, so the block stays in cache for the gemm that follows), never as a whole copy.
// A few rows (decoding) take the matrix-vector path of matvec.cc: each weight row is read once and
// dotted with all of them.
#include <algorithm>
#include <cstring>

#include "gemm.h"
#include "kernels.h"
#include "matvec.h"
#include "pool.h"
#include "vec.h"
#include "weights.h"

namespace fb {

static constexpr int64_t kBlockFloats = 256 * 1024;  // 1 MiB of widened weight per block
static constexpr int64_t kDirectRows = kMatvecRows;  // M up to this: matrix-vector products

// Values [j0, j1) of row n, for any range: the quantized formats widen whole blocks of 32.
static void widen_range(WFormat f, const uint8_t* W, int64_t K, int64_t n, int64_t j0, int64_t j1, float* out) {
  if (f != WFormat::Q8_0 && f != WFormat::Q4_0) return widen_row(f, W, K, n, j0, j1, out);
  const int64_t a0 = j0 / 32 * 32, a1 = std::min(K, (j1 + 31) / 32 * 32);
  if (a0 == j0 && a1 == j1) return widen_row(f, W, K, n, j0, j1, out);
  float* t = scratch(a1 - a0, 3);
  widen_row(f, W, K, n, a0, a1, t);
  std::memcpy(out, t + (j0 - a0), (j1 - j0) * sizeof(float));
}

// The gemm's B packing straight from a stored weight W [N, K]: op(B) = W^T (transW, the forward)
// or W (the input gradient). Same panel layout as pack_f32.
static PackB pack_weight(WFormat f, const uint8_t* W, int64_t N, int64_t K, bool transW) {
  return [=](int64_t k0, int64_t kc, int64_t j0, int64_t nc, int nr, float* dst) {
    for (int64_t jp = 0; jp * nr < nc; jp++) {
      float* d = dst + jp * kc * nr;
      const int cols = static_cast<int>(std::min<int64_t>(nr, nc - jp * nr));
      const int64_t c0 = j0 + jp * nr;
      if (!transW) {  // op(B)(k, j) = W[k][j]: row pieces, already in panel order
        for (int64_t k = 0; k < kc; k++) {
          float* dk = d + k * nr;
          widen_range(f, W, K, k0 + k, c0, c0 + cols, dk);
          for (int c = cols; c < nr; c++) dk[c] = 0.0f;
        }
      } else {  // op(B)(k, j) = W[j][k]: widen 8 weight rows, then transpose them into the panel
        float* t = scratch(8 * kc, 3);
        int c = 0;
        for (; c + 8 <= cols; c += 8) {
          for (int r = 0; r < 8; r++) widen_row(f, W, K, c0 + c + r, k0, k0 + kc, t + r * kc);
          transpose_into_panel(t, kc, kc, d + c, nr);
        }
        for (; c < cols; c++) {
          widen_row(f, W, K, c0 + c, k0, k0 + kc, t);
          for (int64_t k = 0; k < kc; k++) d[k * nr + c] = t[k];
        }
        for (c = cols; c < nr; c++)
          for (int64_t k = 0; k < kc; k++) d[k * nr + c] = 0.0f;
      }
    }
  };
}

void weight_gemm(const WeightGemmArgs& g) {
  const WFormat f = static_cast<WFormat>(g.format);
  const int64_t M = g.M, N = g.N, K = g.K;
  if (M <= 0 || (g.transW ? N : K) <= 0) return;
  const bool f32 = f == WFormat::F32 && reinterpret_cast<uintptr_t>(g.W) % 4 == 0;
  if (g.transW && M <= kDirectRows && !(f32 && gemm_path() == GemmPath::OpenBLAS)) {
    weight_matvec({{g.format, g.W, N, g.Y, g.ldy}}, K, M, g.alpha, g.X, g.ldx, g.beta);
    return;
  }
  if (f32) {
    const float* W = reinterpret_cast<const float*>(g.W);
    if (g.transW) sgemm(false, true, M, N, K, g.alpha, g.X, g.ldx, W, K, g.beta, g.Y, g.ldy);
    else sgemm(false, false, M, K, N, g.alpha, g.X, g.ldx, W, K, g.beta, g.Y, g.ldy);
    return;
  }
  if (f == WFormat::BF16 && gemm_path() == GemmPath::AVX512BF16) {
    const uint16_t* W = reinterpret_cast<const uint16_t*>(g.W);
    if (g.transW) bf16_dot_gemm(M, N, K, g.alpha, g.X, g.ldx, W, K, true, g.beta, g.Y, g.ldy);
    else bf16_dot_gemm(M, K, N, g.alpha, g.X, g.ldx, W, K, false, g.beta, g.Y, g.ldy);
    return;
  }
  if (gemm_path() != GemmPath::OpenBLAS) {
    // Our own gemm widens the weight right in its B packing.
    if (g.transW) own_gemm(M, N, K, g.alpha, g.X, g.ldx, false, pack_weight(f, g.W, N, K, true), g.beta, g.Y, g.ldy);
    else own_gemm(M, K, N, g.alpha, g.X, g.ldx, false, pack_weight(f, g.W, N, K, false), g.beta, g.Y, g.ldy);
    return;
  }
  const int64_t nb = std::min(N, std::max<int64_t>(16, kBlockFloats / std::max<int64_t>(K, 1) / 16 * 16));
  float* wb = scratch(nb * K, 2);
  for (int64_t n0 = 0; n0 < N; n0 += nb) {
    const int64_t rows = std::min(nb, N - n0);
    parallel_for(rows, 4, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; r++) widen_row(f, g.W, K, n0 + r, 0, K, wb + r * K);
    });
    if (g.transW) {
      sgemm(false, true, M, rows, K, g.alpha, g.X, g.ldx, wb, K, g.beta, g.Y + n0, g.ldy);
    } else {
      sgemm(false, false, M, K, rows, g.alpha, g.X + n0, g.ldx, wb, K, n0 == 0 ? g.beta : 1.0f, g.Y, g.ldy);
    }
  }
}

// The B packing of one weight of a group: an f32 matrix packs directly, a stored format widens.
static PackB pack_part(const GroupPart& p, int64_t K, bool transW) {
  const WFormat f = static_cast<WFormat>(p.format);
  if (f == WFormat::F32 && reinterpret_cast<uintptr_t>(p.W) % 4 == 0)
    return pack_f32(reinterpret_cast<const float*>(p.W), K, transW);
  return pack_weight(f, p.W, p.N, K, transW);
}

void weight_group_gemm(const WeightGroupArgs& g) {
  const int64_t M = g.M, K = g.K;
  if (M <= 0 || g.parts.empty()) return;
  // A few rows (decoding): one matrix-vector pass over all parts, their rows split across threads.
  if (g.transW && M <= kDirectRows && gemm_path() != GemmPath::OpenBLAS) {
    std::vector<MatvecPart> mv;
    for (const GroupPart& p : g.parts) mv.push_back({p.format, p.W, p.N, p.io, p.ldio});
    weight_matvec(mv, K, M, g.alpha, g.shared, g.ldShared, g.beta);
    return;
  }
  // One part, a few rows or OpenBLAS: the parts one after another.
  bool bf16dot = false;  // bf16 parts on the avx512bf16 path take their own kernel
  for (const GroupPart& p : g.parts) bf16dot |= gemm_path() == GemmPath::AVX512BF16 && p.format == int(WFormat::BF16);
  if (g.parts.size() == 1 || M <= kDirectRows || gemm_path() == GemmPath::OpenBLAS || bf16dot) {
    for (size_t i = 0; i < g.parts.size(); i++) {
      const GroupPart& p = g.parts[i];
      WeightGemmArgs w;
      w.format = p.format, w.W = p.W, w.N = p.N, w.K = K, w.transW = g.transW, w.M = M, w.alpha = g.alpha;
      if (g.transW) {
        w.beta = g.beta, w.X = g.shared, w.ldx = g.ldShared, w.Y = p.io, w.ldy = p.ldio;
      } else {
        w.beta = i == 0 ? g.beta : 1.0f, w.X = p.io, w.ldx = p.ldio, w.Y = g.shared, w.ldy = g.ldShared;
      }
      weight_gemm(w);
    }
    return;
  }
  std::vector<ColSeg> cols;
  std::vector<KSeg> ks;
  if (g.transW) {  // Y_s[M, N_s] = alpha X W_s^T + beta Y_s: column segments, one A
    for (const GroupPart& p : g.parts) cols.push_back({p.N, p.io, p.ldio, pack_part(p, K, true)});
    ks.push_back({K, g.shared, g.ldShared, PackB()});
  } else {  // Y[M, K] = alpha sum_s X_s W_s + beta Y: K segments, one C
    cols.push_back({K, g.shared, g.ldShared, PackB()});
    for (const GroupPart& p : g.parts) ks.push_back({p.N, p.io, p.ldio, pack_part(p, K, false)});
  }
  own_gemm_group(M, g.alpha, false, cols, ks, g.beta);
}

}  // namespace fb
