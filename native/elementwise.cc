// Elementwise kernels, activations and optimisers: simple loops that GCC vectorises (ivdep:
// exact in-place aliasing is allowed and harmless, every element is read before it is written),
// split across the pool when large enough to pay for the wake-up.
#include <cmath>

#include "kernels.h"
#include "pool.h"
#include "vec.h"

namespace fb {

// Below this many elements a memory-bound loop is faster on one thread.
static constexpr int64_t kGrain = 1 << 15;

void add(const float* a, const float* b, float* out, int64_t n) {
  parallel_for(n, kGrain, [=](int64_t s, int64_t e) {
#pragma GCC ivdep
    for (int64_t i = s; i < e; i++) out[i] = a[i] + b[i];
  });
}

void mul(const float* a, const float* b, float* out, int64_t n) {
  parallel_for(n, kGrain, [=](int64_t s, int64_t e) {
#pragma GCC ivdep
    for (int64_t i = s; i < e; i++) out[i] = a[i] * b[i];
  });
}

void axpy(float alpha, const float* x, float* y, int64_t n) {
  parallel_for(n, kGrain, [=](int64_t s, int64_t e) {
#pragma GCC ivdep
    for (int64_t i = s; i < e; i++) y[i] += alpha * x[i];
  });
}

void scale(float alpha, const float* x, float* out, int64_t n) {
  parallel_for(n, kGrain, [=](int64_t s, int64_t e) {
#pragma GCC ivdep
    for (int64_t i = s; i < e; i++) out[i] = alpha * x[i];
  });
}

void fill(float* x, float value, int64_t n) {
  parallel_for(n, kGrain, [=](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; i++) x[i] = value;
  });
}

double sum_squares(const float* x, int64_t n) {
  double part[64] = {0};
  parallel_for_tid(n, kGrain, [&](int t, int64_t s, int64_t e) { part[t] = dot_d(x + s, x + s, e - s); });
  double total = 0;
  for (double p : part) total += p;
  return total;
}

// silu and its derivative from sigmoid: silu = x s, silu' = s (1 + x (1 - s)).
void swiglu_forward(const float* gate, const float* up, float* out, int64_t n) {
  parallel_for(n, kGrain, [=](int64_t s, int64_t e) {
    int64_t i = s;
    for (; i + 8 <= e; i += 8) {
      __m256 g = _mm256_loadu_ps(gate + i);
      __m256 y = _mm256_mul_ps(_mm256_mul_ps(g, sigmoid8(g)), _mm256_loadu_ps(up + i));
      _mm256_storeu_ps(out + i, y);
    }
    for (; i < e; i++) out[i] = gate[i] / (1.0f + scalar_exp(-gate[i])) * up[i];
  });
}

void swiglu_backward(const float* dOut, const float* gate, const float* up, float* dGate, float* dUp, int64_t n) {
  parallel_for(n, kGrain, [=](int64_t s, int64_t e) {
    const __m256 one = _mm256_set1_ps(1.0f);
    int64_t i = s;
    for (; i + 8 <= e; i += 8) {
      __m256 g = _mm256_loadu_ps(gate + i), d = _mm256_loadu_ps(dOut + i), u = _mm256_loadu_ps(up + i);
      __m256 sg = sigmoid8(g);
      __m256 silu = _mm256_mul_ps(g, sg);
      __m256 dsilu = _mm256_mul_ps(sg, _mm256_fmadd_ps(g, _mm256_sub_ps(one, sg), one));
      _mm256_storeu_ps(dGate + i, _mm256_fmadd_ps(_mm256_mul_ps(d, u), dsilu, _mm256_loadu_ps(dGate + i)));
      _mm256_storeu_ps(dUp + i, _mm256_fmadd_ps(d, silu, _mm256_loadu_ps(dUp + i)));
    }
    for (; i < e; i++) {
      float g = gate[i], sg = 1.0f / (1.0f + scalar_exp(-g));
      dGate[i] += dOut[i] * up[i] * sg * (1.0f + g * (1.0f - sg));
      dUp[i] += dOut[i] * g * sg;
    }
  });
}

void silu_forward(const float* x, float* out, int64_t n) {
  parallel_for(n, kGrain, [=](int64_t s, int64_t e) {
    int64_t i = s;
    for (; i + 8 <= e; i += 8) {
      __m256 g = _mm256_loadu_ps(x + i);
      _mm256_storeu_ps(out + i, _mm256_mul_ps(g, sigmoid8(g)));
    }
    for (; i < e; i++) out[i] = x[i] / (1.0f + scalar_exp(-x[i]));
  });
}

void silu_backward(const float* dOut, const float* x, float* dx, int64_t n) {
  parallel_for(n, kGrain, [=](int64_t s, int64_t e) {
    const __m256 one = _mm256_set1_ps(1.0f);
    int64_t i = s;
    for (; i + 8 <= e; i += 8) {
      __m256 g = _mm256_loadu_ps(x + i), sg = sigmoid8(g);
      __m256 dsilu = _mm256_mul_ps(sg, _mm256_fmadd_ps(g, _mm256_sub_ps(one, sg), one));
      _mm256_storeu_ps(dx + i, _mm256_fmadd_ps(_mm256_loadu_ps(dOut + i), dsilu, _mm256_loadu_ps(dx + i)));
    }
    for (; i < e; i++) {
      float sg = 1.0f / (1.0f + scalar_exp(-x[i]));
      dx[i] += dOut[i] * sg * (1.0f + x[i] * (1.0f - sg));
    }
  });
}

void nmse_forward(const float* student, const float* teacher, int64_t n, double* value, double* denom) {
  double num[64] = {0}, den[64] = {0};
  parallel_for_tid(n, kGrain, [&](int t, int64_t s, int64_t e) {
    double a = 0, b = 0;
    for (int64_t i = s; i < e; i++) {
      double d = static_cast<double>(teacher[i]) - student[i];
      a += d * d;
      b += static_cast<double>(teacher[i]) * teacher[i];
    }
    num[t] = a;
    den[t] = b;
  });
  double a = 0, b = 0;
  for (int t = 0; t < 64; t++) a += num[t], b += den[t];
  *value = a / b;
  *denom = b;
}

void nmse_backward(const float* student, const float* teacher, float* dStudent, int64_t n, double denom,
                   float gradScale) {
  const float c = static_cast<float>(2.0 * gradScale / denom);
  parallel_for(n, kGrain, [=](int64_t s, int64_t e) {
#pragma GCC ivdep
    for (int64_t i = s; i < e; i++) dStudent[i] += c * (student[i] - teacher[i]);
  });
}

void adamw_step(const AdamArgs& a) {
  const float b1 = static_cast<float>(a.beta1), b2 = static_cast<float>(a.beta2);
  const float decay = static_cast<float>(1.0 - a.lr * a.weightDecay);
  const float gs = static_cast<float>(a.gradScale), eps = static_cast<float>(a.eps);
  // Bias corrections folded in: step = lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps).
  const float stepSize = static_cast<float>(a.lr / (1.0 - std::pow(a.beta1, static_cast<double>(a.step))));
  const float rsqBc2 = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(a.beta2, static_cast<double>(a.step))));
  float *param = a.param, *m = a.m, *v = a.v;
  const float* grad = a.grad;
  parallel_for(a.n, kGrain, [=](int64_t s, int64_t e) {
#pragma GCC ivdep
    for (int64_t i = s; i < e; i++) {
      float g = grad[i] * gs;
      float mi = b1 * m[i] + (1.0f - b1) * g;
      float vi = b2 * v[i] + (1.0f - b2) * g * g;
      m[i] = mi;
      v[i] = vi;
      param[i] = param[i] * decay - stepSize * mi / (std::sqrt(vi) * rsqBc2 + eps);
    }
  });
}

void sgd_step(float* param, const float* grad, float* buf, int64_t n, double lr, double momentum,
              double weightDecay, double gradScale) {
  const float flr = static_cast<float>(lr), mu = static_cast<float>(momentum);
  const float wd = static_cast<float>(weightDecay), gs = static_cast<float>(gradScale);
  const bool useBuf = momentum != 0 && buf != nullptr;
  parallel_for(n, kGrain, [=](int64_t s, int64_t e) {
    if (useBuf) {
#pragma GCC ivdep
      for (int64_t i = s; i < e; i++) {
        float g = mu * buf[i] + grad[i] * gs + wd * param[i];
        buf[i] = g;
        param[i] -= flr * g;
      }
    } else {
#pragma GCC ivdep
      for (int64_t i = s; i < e; i++) param[i] -= flr * (grad[i] * gs + wd * param[i]);
    }
  });
}

}  // namespace fb
