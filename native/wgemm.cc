// GEMM against stored frozen weights: the weight is widened to f32 a block of rows at a time
// (about 1 MiB, so the block stays in cache for the gemm that follows), never as a whole copy.
// A few rows (decoding) take a direct path: each weight row is widened once and dotted with them.
#include <algorithm>
#include <cstring>

#include "kernels.h"
#include "pool.h"
#include "vec.h"
#include "weights.h"

namespace fb {

static constexpr int64_t kBlockFloats = 256 * 1024;  // 1 MiB of widened weight per block
static constexpr int64_t kDirectRows = 4;            // M up to this: row-by-row dot products

void weight_gemm(const WeightGemmArgs& g) {
  const WFormat f = static_cast<WFormat>(g.format);
  const int64_t M = g.M, N = g.N, K = g.K;
  if (M <= 0 || (g.transW ? N : K) <= 0) return;
  if (f == WFormat::F32 && reinterpret_cast<uintptr_t>(g.W) % 4 == 0) {
    const float* W = reinterpret_cast<const float*>(g.W);
    if (g.transW) sgemm(false, true, M, N, K, g.alpha, g.X, g.ldx, W, K, g.beta, g.Y, g.ldy);
    else sgemm(false, false, M, K, N, g.alpha, g.X, g.ldx, W, K, g.beta, g.Y, g.ldy);
    return;
  }
  if (g.transW && M <= kDirectRows) {
    parallel_for(N, 16, [&](int64_t n0, int64_t n1) {
      float* w = scratch(K, 1);
      for (int64_t n = n0; n < n1; n++) {
        widen_row(f, g.W, K, n, 0, K, w);
        for (int64_t m = 0; m < M; m++) {
          const float* x = g.X + m * g.ldx;
          const float s = dot_f(x, w, K);
          float& y = g.Y[m * g.ldy + n];
          y = g.beta == 0.0f ? g.alpha * s : g.alpha * s + g.beta * y;
        }
      }
    });
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

}  // namespace fb
