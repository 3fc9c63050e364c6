// Matrix-vector products against stored weights for a few rows (decoding); see matvec.cc.
#pragma once
#include <cstdint>
#include <vector>

namespace fb {

// Rows of X up to this take the matrix-vector path (weight_gemm's direct path).
constexpr int64_t kMatvecRows = 4;

// One weight W [N, K] in a stored format (WFormat id) and its output Y [M, N] (leading dimension ldy).
struct MatvecPart {
  int format;
  const uint8_t* W;
  int64_t N;
  float* Y;
  int64_t ldy;
};

// Y_s[m, n] = alpha X[m, :] . W_s[n, :] + beta Y_s[m, n] for m < M <= kMatvecRows (beta = 0 ignores
// Y). Quantized parts take ceil(K / 32) blocks a row, the last one partial when K is not a multiple.
void weight_matvec(const std::vector<MatvecPart>& parts, int64_t K, int64_t M, float alpha, const float* X,
                   int64_t ldx, float beta);

}  // namespace fb
