// Attention for a few query rows per sequence (decoding with a KV cache): scores, softmax and the
// weighted sum of values computed directly, one task per (batch, kv head) on the pool, the query heads
// of a GQA group reading their keys and values while they are in cache. The general kernel
// (blas.cc) runs two gemms per head, which for one query row are matrix-vector products dominated
// by call overhead. Same semantics as attention_forward, probs included.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels.h"
#include "pool.h"
#include "vec.h"

namespace fb {

void attention_decode(const AttnArgs& a) {
  const int64_t B = a.B, T = a.T, S = a.S, H = a.H, Hkv = a.Hkv, Dh = a.Dh, group = H / Hkv;
  const int64_t ldq = H * Dh, ldk = Hkv * Dh;
  const int64_t W = a.causal && a.window > 0 ? a.window : 0;
  parallel_for(B * Hkv, 1, [&](int64_t s0, int64_t s1) {
    float* acc = scratch(Dh + 8, 1);  // slot 1: nothing in this loop uses it
    for (int64_t bk = s0; bk < s1; bk++) {
      const int64_t b = bk / Hkv, kh = bk % Hkv;
      const float* K = a.k + b * S * ldk + kh * Dh;
      const float* V = a.v + b * S * ldk + kh * Dh;
      const float* mask = a.keyMask ? a.keyMask + b * S : nullptr;
      for (int64_t h = kh * group; h < (kh + 1) * group; h++)
        for (int64_t t = 0; t < T; t++) {
          const float* q = a.q + (b * T + t) * ldq + h * Dh;
          float* o = a.out + (b * T + t) * ldq + h * Dh;
          float* row = a.probs + ((b * H + h) * T + t) * S;
          int64_t n = a.causal ? std::min(S, a.qOffset + t + 1) : S;  // visible keys [lo, n)
          if (n < 0) n = 0;
          const int64_t lo = std::min(W > 0 ? std::max<int64_t>(0, a.qOffset + t + 1 - W) : 0, n);
          std::memset(row, 0, lo * sizeof(float));
          if (n < S) std::memset(row + n, 0, (S - n) * sizeof(float));
          for (int64_t s = lo; s < n; s++) row[s] = a.scale * dot_f(q, K + s * ldk, Dh) + (mask ? mask[s] : 0.0f);
          const int64_t nv = n - lo;
          const float m = nv > 0 ? row_max(row + lo, nv) : -INFINITY;
          if (m == -INFINITY) {
            std::memset(row, 0, S * sizeof(float));
            std::memset(o, 0, Dh * sizeof(float));
            continue;
          }
          const float inv = static_cast<float>(1.0 / exp_sum(row + lo, m, row + lo, nv));
          std::memset(acc, 0, Dh * sizeof(float));
          for (int64_t s = lo; s < n; s++) {
            const float p = row[s] * inv;
            row[s] = p;
            const float* v = V + s * ldk;
            const __m256 vp = _mm256_set1_ps(p);
            int64_t d = 0;
            for (; d + 8 <= Dh; d += 8)
              _mm256_storeu_ps(acc + d, _mm256_fmadd_ps(vp, _mm256_loadu_ps(v + d), _mm256_loadu_ps(acc + d)));
            for (; d < Dh; d++) acc[d] += p * v[d];
          }
          std::memcpy(o, acc, Dh * sizeof(float));
        }
    }
  });
}

}  // namespace fb
