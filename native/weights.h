// Stored frozen-weight formats (layouts in src/kernels/weights.ts) and their widening to f32.
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace fb {

// Same order as WEIGHT_FORMATS in src/kernels/weights.ts.
enum class WFormat : int { F32 = 0, BF16 = 1, F16 = 2, Q8_0 = 3, Q4_0 = 4 };

// Bytes of one row of K values. The quantized formats take ceil(K / 32) blocks: when K is not a
// multiple of 32 the last block is partial, its values past K zero (as quantized) and its scale
// taken over the real values only.
int64_t wformat_row_bytes(WFormat f, int64_t K);

// One IEEE half (as stored: f16 weights, the scales of q8_0 / q4_0 blocks) widened to f32.
inline float half_to_float(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// Widens values [k0, k1) of row n into out[0 .. k1 - k0). For q8_0 / q4_0, k0 and k1 are multiples
// of 32 (or k1 = K); nothing is written past out[k1 - k0 - 1], also when the last block is partial.
void widen_row(WFormat f, const uint8_t* W, int64_t K, int64_t n, int64_t k0, int64_t k1, float* out);

}  // namespace fb
