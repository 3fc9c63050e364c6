// Row kernels: embedding, RMSNorm, rotary embeddings, softmax family and the losses.
// Each parallelises over rows; reductions within a row run in double.
#include <cmath>
#include <cstring>
#include <mutex>
#include <vector>

#include "kernels.h"
#include "pool.h"
#include "vec.h"

namespace fb {

// Rows per chunk so that one chunk is roughly 16K floats of work.
static inline int64_t row_grain(int64_t D) { return D >= 16384 ? 1 : 16384 / (D > 0 ? D : 1); }

void embedding_forward(const float* table, const int32_t* ids, float* out, int64_t N, int64_t D) {
  parallel_for(N, row_grain(D), [=](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; i++) std::memcpy(out + i * D, table + static_cast<int64_t>(ids[i]) * D, D * sizeof(float));
  });
}

void embedding_backward(const float* dOut, const int32_t* ids, float* dTable, int64_t N, int64_t D) {
  // Repeated ids write the same row, so split over columns instead of rows.
  parallel_for(D, 64, [=](int64_t c0, int64_t c1) {
    for (int64_t i = 0; i < N; i++) {
      float* dst = dTable + static_cast<int64_t>(ids[i]) * D;
      const float* src = dOut + i * D;
      for (int64_t j = c0; j < c1; j++) dst[j] += src[j];
    }
  });
}

void rmsnorm_forward(const float* x, const float* w, float* out, float* rstd, int64_t N, int64_t D, float eps) {
  parallel_for(N, row_grain(D), [=](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; i++) {
      const float* xi = x + i * D;
      float* oi = out + i * D;
      float r = static_cast<float>(1.0 / std::sqrt(dot_d(xi, xi, D) / D + eps));
      rstd[i] = r;
#pragma GCC ivdep
      for (int64_t j = 0; j < D; j++) oi[j] = xi[j] * r * w[j];
    }
  });
}

void rmsnorm_backward(const float* dOut, const float* x, const float* w, const float* rstd, float* dx, float* dw,
                      int64_t N, int64_t D) {
  // dx_j += r w_j dy_j - x_j r^3 / D * sum_k dy_k w_k x_k;  dw_j += sum_rows dy_j x_j r.
  // dw is summed per thread in scratch and reduced at the end (rows race on it otherwise).
  const int nt = Pool::get().size();
  std::vector<float*> parts(nt, nullptr);
  parallel_for_tid(N, row_grain(D), [&](int t, int64_t s, int64_t e) {
    float* dwp = nullptr;
    if (dw) {
      dwp = scratch(D, 1);
      std::memset(dwp, 0, D * sizeof(float));
      parts[t] = dwp;
    }
    float* tmp = scratch(D, 2);
    for (int64_t i = s; i < e; i++) {
      const float* xi = x + i * D;
      const float* gi = dOut + i * D;
      const float r = rstd[i];
      if (dwp) {
        for (int64_t j = 0; j < D; j++) dwp[j] += gi[j] * xi[j] * r;
      }
      if (dx) {
        for (int64_t j = 0; j < D; j++) tmp[j] = gi[j] * w[j];
        const float c = static_cast<float>(r * r * r * dot_d(tmp, xi, D) / D);
        float* di = dx + i * D;
        for (int64_t j = 0; j < D; j++) di[j] += r * tmp[j] - xi[j] * c;
      }
    }
  });
  if (dw) {
    for (int t = 0; t < nt; t++) {
      if (!parts[t]) continue;
      for (int64_t j = 0; j < D; j++) dw[j] += parts[t][j];
    }
  }
}

// cos/sin table for positions [posOffset, posOffset + T): computed in double (large positions
// lose precision in float) and cached, since every layer asks for the same table.
struct RopeTable {
  std::vector<float> invFreq, cs;  // cs: T x half pairs (cos, sin)
  int64_t T = -1, posOffset = -1;
};

static const float* rope_table(const float* invFreq, int64_t T, int64_t half, int64_t posOffset) {
  static std::mutex mu;
  static RopeTable tab;
  std::lock_guard<std::mutex> lk(mu);
  bool same = tab.T == T && tab.posOffset == posOffset && static_cast<int64_t>(tab.invFreq.size()) == half &&
              std::memcmp(tab.invFreq.data(), invFreq, half * sizeof(float)) == 0;
  if (!same) {
    tab.invFreq.assign(invFreq, invFreq + half);
    tab.cs.resize(T * half * 2);
    tab.T = T;
    tab.posOffset = posOffset;
    for (int64_t t = 0; t < T; t++) {
      for (int64_t i = 0; i < half; i++) {
        double th = static_cast<double>(posOffset + t) * static_cast<double>(invFreq[i]);
        tab.cs[(t * half + i) * 2] = static_cast<float>(std::cos(th));
        tab.cs[(t * half + i) * 2 + 1] = static_cast<float>(std::sin(th));
      }
    }
  }
  return tab.cs.data();
}

template <bool Backward>
static void rope(const float* x, float* out, const float* invFreq, int64_t B, int64_t T, int64_t H, int64_t Dh,
                 int64_t posOffset) {
  const int64_t half = Dh / 2;
  const float* cs = rope_table(invFreq, T, half, posOffset);
  parallel_for(B * T, row_grain(H * Dh), [=](int64_t s, int64_t e) {
    float* c = scratch(half, 1);
    float* sn = scratch(half, 2);
    for (int64_t bt = s; bt < e; bt++) {
      const int64_t t = bt % T;
      for (int64_t i = 0; i < half; i++) c[i] = cs[(t * half + i) * 2], sn[i] = cs[(t * half + i) * 2 + 1];
      for (int64_t h = 0; h < H; h++) {
        const float* xi = x + (bt * H + h) * Dh;
        float* oi = out + (bt * H + h) * Dh;
#pragma GCC ivdep
        for (int64_t i = 0; i < half; i++) {
          const float x1 = xi[i], x2 = xi[i + half];
          if (Backward) {  // dx += R^T dOut
            oi[i] += x1 * c[i] + x2 * sn[i];
            oi[i + half] += x2 * c[i] - x1 * sn[i];
          } else {  // out may alias x: both halves are read first
            oi[i] = x1 * c[i] - x2 * sn[i];
            oi[i + half] = x2 * c[i] + x1 * sn[i];
          }
        }
      }
    }
  });
}

void rope_forward(const float* x, float* out, const float* invFreq, int64_t B, int64_t T, int64_t H, int64_t Dh,
                  int64_t posOffset) {
  rope<false>(x, out, invFreq, B, T, H, Dh, posOffset);
}

void rope_backward(const float* dOut, float* dx, const float* invFreq, int64_t B, int64_t T, int64_t H, int64_t Dh,
                   int64_t posOffset) {
  rope<true>(dOut, dx, invFreq, B, T, H, Dh, posOffset);
}

void softmax_forward(const float* x, float* out, int64_t N, int64_t V) {
  parallel_for(N, row_grain(V), [=](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; i++) {
      const float* xi = x + i * V;
      float* oi = out + i * V;
      const float m = row_max(xi, V);
      const float inv = static_cast<float>(1.0 / exp_sum(xi, m, oi, V));
      for (int64_t j = 0; j < V; j++) oi[j] *= inv;
    }
  });
}

void softmax_backward(const float* dOut, const float* y, float* dx, int64_t N, int64_t V) {
  parallel_for(N, row_grain(V), [=](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; i++) {
      const float* gi = dOut + i * V;
      const float* yi = y + i * V;
      float* di = dx + i * V;
      const float dot = static_cast<float>(dot_d(gi, yi, V));
#pragma GCC ivdep
      for (int64_t j = 0; j < V; j++) di[j] += yi[j] * (gi[j] - dot);
    }
  });
}

void log_softmax_forward(const float* x, float* out, int64_t N, int64_t V) {
  parallel_for(N, row_grain(V), [=](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; i++) {
      const float* xi = x + i * V;
      float* oi = out + i * V;
      const float lse = row_lse(xi, V);
#pragma GCC ivdep
      for (int64_t j = 0; j < V; j++) oi[j] = xi[j] - lse;
    }
  });
}

void log_softmax_backward(const float* dOut, const float* y, float* dx, int64_t N, int64_t V) {
  parallel_for(N, row_grain(V), [=](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; i++) {
      const float* gi = dOut + i * V;
      const float* yi = y + i * V;
      float* di = dx + i * V;
      double sum = 0;
      for (int64_t j = 0; j < V; j++) sum += gi[j];
      const __m256 vs = _mm256_set1_ps(static_cast<float>(sum));
      int64_t j = 0;
      for (; j + 8 <= V; j += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(gi + j), _mm256_mul_ps(exp8(_mm256_loadu_ps(yi + j)), vs));
        _mm256_storeu_ps(di + j, _mm256_add_ps(_mm256_loadu_ps(di + j), d));
      }
      for (; j < V; j++) di[j] += gi[j] - scalar_exp(yi[j]) * static_cast<float>(sum);
    }
  });
}

double cross_entropy_forward(const float* logits, const int32_t* targets, float* lse, int64_t N, int64_t V,
                             int32_t ignoreIndex, int64_t* count) {
  double sums[64] = {0};
  int64_t counts[64] = {0};
  parallel_for_tid(N, row_grain(V), [&](int t, int64_t s, int64_t e) {
    double sum = 0;
    int64_t c = 0;
    for (int64_t i = s; i < e; i++) {
      const float* xi = logits + i * V;
      lse[i] = row_lse(xi, V);
      if (targets[i] == ignoreIndex) continue;
      sum += static_cast<double>(lse[i]) - xi[targets[i]];
      c++;
    }
    sums[t] = sum;
    counts[t] = c;
  });
  double sum = 0;
  int64_t c = 0;
  for (int t = 0; t < 64; t++) sum += sums[t], c += counts[t];
  *count = c;
  return sum;
}

// d[j] += g * (exp(x[j] - lse) - p[j]) with p = teacher probs (or null for none).
static inline void add_softmax_grad(float* d, const float* x, float lse, float g, int64_t V) {
  const __m256 vl = _mm256_set1_ps(lse), vg = _mm256_set1_ps(g);
  int64_t j = 0;
  for (; j + 8 <= V; j += 8) {
    __m256 p = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), vl));
    _mm256_storeu_ps(d + j, _mm256_fmadd_ps(vg, p, _mm256_loadu_ps(d + j)));
  }
  for (; j < V; j++) d[j] += g * scalar_exp(x[j] - lse);
}

void cross_entropy_backward(const float* logits, const int32_t* targets, const float* lse, float* dLogits,
                            int64_t N, int64_t V, int32_t ignoreIndex, float gradScale) {
  parallel_for(N, row_grain(V), [=](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; i++) {
      if (targets[i] == ignoreIndex) continue;
      add_softmax_grad(dLogits + i * V, logits + i * V, lse[i], gradScale, V);
      dLogits[i * V + targets[i]] -= gradScale;
    }
  });
}

// Teacher probabilities of one row into p (V floats).
static inline void teacher_probs(const float* teacher, float* p, int64_t V, bool teacherIsProbs) {
  if (teacherIsProbs) {
    std::memcpy(p, teacher, V * sizeof(float));
    return;
  }
  const float m = row_max(teacher, V);
  const float inv = static_cast<float>(1.0 / exp_sum(teacher, m, p, V));
  for (int64_t j = 0; j < V; j++) p[j] *= inv;
}

double kl_forward(const float* teacher, const float* student, float* studentLse, const float* rowWeight,
                  int64_t N, int64_t V, bool teacherIsProbs) {
  double part[64] = {0};
  parallel_for_tid(N, row_grain(V), [&](int t, int64_t s, int64_t e) {
    double total = 0;
    for (int64_t i = s; i < e; i++) {
      const float* si = student + i * V;
      const float* ti = teacher + i * V;
      const float lseS = row_lse(si, V);
      studentLse[i] = lseS;
      const float w = rowWeight ? rowWeight[i] : 1.0f;
      if (w == 0) continue;
      // KL = sum_j pT_j (log pT_j - log pS_j), with 0 log 0 = 0.
      double kl = 0;
      if (teacherIsProbs) {
        for (int64_t j = 0; j < V; j++) {
          const float pt = ti[j];
          if (pt > 0) kl += pt * (std::log(static_cast<double>(pt)) - (si[j] - lseS));
        }
      } else {
        const float lseT = row_lse(ti, V);
        float* pt = scratch(V, 1);
        exp_sum(ti, lseT, pt, V);
        for (int64_t j = 0; j < V; j++) kl += pt[j] * ((static_cast<double>(ti[j]) - lseT) - (static_cast<double>(si[j]) - lseS));
      }
      total += w * kl;
    }
    part[t] = total;
  });
  double total = 0;
  for (double p : part) total += p;
  return total;
}

void kl_backward(const float* teacher, const float* student, const float* studentLse, const float* rowWeight,
                 float* dStudent, int64_t N, int64_t V, bool teacherIsProbs, float gradScale) {
  parallel_for(N, row_grain(V), [=](int64_t s, int64_t e) {
    float* pt = scratch(V, 1);
    for (int64_t i = s; i < e; i++) {
      const float w = rowWeight ? rowWeight[i] : 1.0f;
      if (w == 0) continue;
      const float g = gradScale * w;
      float* di = dStudent + i * V;
      teacher_probs(teacher + i * V, pt, V, teacherIsProbs);
      add_softmax_grad(di, student + i * V, studentLse[i], g, V);
#pragma GCC ivdep
      for (int64_t j = 0; j < V; j++) di[j] -= g * pt[j];
    }
  });
}

}  // namespace fb
