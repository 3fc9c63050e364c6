// The native kernels, one C++ function per entry of src/kernels/api.ts (float32 only).
// Sizes are int64_t; arrays are plain pointers already offset by the typed array's byteOffset.
#pragma once
#include <cstdint>
#include <vector>

namespace fb {

struct GemmArgs {
  bool transA, transB;
  int64_t M, N, K;
  float alpha, beta;
  const float* A; int64_t lda, strideA;
  const float* B; int64_t ldb, strideB;
  float* C; int64_t ldc, strideC;
  int64_t batch;
};
void gemm(const GemmArgs& g);

// One row-major gemm C = alpha op(A) op(B) + beta C on the selected backend (beta = 0 ignores C).
void sgemm(bool tA, bool tB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// GEMM against a stored frozen weight W [N, K] (format ids and layouts in weights.h):
// transW: Y[M, N] = alpha X[M, K] W^T + beta Y;  !transW: Y[M, K] = alpha X[M, N] W + beta Y.
struct WeightGemmArgs {
  int format;
  const uint8_t* W;
  int64_t N, K;
  bool transW;
  int64_t M;
  float alpha, beta;
  const float* X; int64_t ldx;
  float* Y; int64_t ldy;
};
void weight_gemm(const WeightGemmArgs& g);

// Several weights W_s [N_s, K] (each f32 or a stored format) in one gemm:
// transW: Y_s[M, N_s] = alpha X[M, K] W_s^T + beta Y_s (X shared, io = Y_s; the q/k/v forward);
// !transW: Y[M, K] = alpha sum_s X_s[M, N_s] W_s + beta Y (Y shared, io = X_s; their input gradient).
struct GroupPart {
  int format;
  const uint8_t* W;
  int64_t N;
  float* io;
  int64_t ldio;
};
struct WeightGroupArgs {
  int64_t K;
  bool transW;
  int64_t M;
  float alpha, beta;
  float* shared;
  int64_t ldShared;
  std::vector<GroupPart> parts;
};
void weight_group_gemm(const WeightGroupArgs& g);

// Elementwise: out may be exactly one of the inputs (in place); partial overlap is not allowed.
void add(const float* a, const float* b, float* out, int64_t n);
void mul(const float* a, const float* b, float* out, int64_t n);
void axpy(float alpha, const float* x, float* y, int64_t n);
void scale(float alpha, const float* x, float* out, int64_t n);
void fill(float* x, float value, int64_t n);
double sum_squares(const float* x, int64_t n);

void embedding_forward(const float* table, const int32_t* ids, float* out, int64_t N, int64_t D);
void embedding_backward(const float* dOut, const int32_t* ids, float* dTable, int64_t N, int64_t D);

void rmsnorm_forward(const float* x, const float* w, float* out, float* rstd, int64_t N, int64_t D, float eps);
void rmsnorm_backward(const float* dOut, const float* x, const float* w, const float* rstd, float* dx, float* dw,
                      int64_t N, int64_t D);

void rope_forward(const float* x, float* out, const float* invFreq, int64_t B, int64_t T, int64_t H, int64_t Dh,
                  int64_t posOffset);
void rope_backward(const float* dOut, float* dx, const float* invFreq, int64_t B, int64_t T, int64_t H, int64_t Dh,
                   int64_t posOffset);

struct AttnArgs {
  const float *q, *k, *v;
  float *out, *probs;
  const float* keyMask;  // may be null
  // backward only
  const float* dOut;
  float *dq, *dk, *dv;
  int64_t B, T, S, H, Hkv, Dh, qOffset;
  int64_t window;  // forward, causal only: a query sees its last `window` keys (0: all)
  float scale;
  bool causal;
};
void attention_forward(const AttnArgs& a);
// attention_forward for at most kDecodeQueries query rows per sequence (attn_decode.cc).
constexpr int64_t kDecodeQueries = 4;
void attention_decode(const AttnArgs& a);
void attention_backward(const AttnArgs& a);

void swiglu_forward(const float* gate, const float* up, float* out, int64_t n);
void swiglu_backward(const float* dOut, const float* gate, const float* up, float* dGate, float* dUp, int64_t n);
void silu_forward(const float* x, float* out, int64_t n);
void silu_backward(const float* dOut, const float* x, float* dx, int64_t n);

void softmax_forward(const float* x, float* out, int64_t N, int64_t V);
void softmax_backward(const float* dOut, const float* y, float* dx, int64_t N, int64_t V);
void log_softmax_forward(const float* x, float* out, int64_t N, int64_t V);
void log_softmax_backward(const float* dOut, const float* y, float* dx, int64_t N, int64_t V);

// Returns the loss sum; *count receives the number of kept rows.
double cross_entropy_forward(const float* logits, const int32_t* targets, float* lse, int64_t N, int64_t V,
                             int32_t ignoreIndex, int64_t* count);
void cross_entropy_backward(const float* logits, const int32_t* targets, const float* lse, float* dLogits,
                            int64_t N, int64_t V, int32_t ignoreIndex, float gradScale);

double kl_forward(const float* teacher, const float* student, float* studentLse, const float* rowWeight,
                  int64_t N, int64_t V, bool teacherIsProbs);
void kl_backward(const float* teacher, const float* student, const float* studentLse, const float* rowWeight,
                 float* dStudent, int64_t N, int64_t V, bool teacherIsProbs, float gradScale);

void nmse_forward(const float* student, const float* teacher, int64_t n, double* value, double* denom);
void nmse_backward(const float* student, const float* teacher, float* dStudent, int64_t n, double denom,
                   float gradScale);

struct AdamArgs {
  float *param, *m, *v;
  const float* grad;
  int64_t n;
  double lr, beta1, beta2, eps, weightDecay, gradScale;
  int64_t step;
};
void adamw_step(const AdamArgs& a);
void sgd_step(float* param, const float* grad, float* buf, int64_t n, double lr, double momentum,
              double weightDecay, double gradScale);

}  // namespace fb
