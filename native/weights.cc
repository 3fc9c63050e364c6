// Widening of stored frozen weights (bf16, f16, GGUF q8_0 / q4_0 blocks) to f32, 8 values at a time.
#include "weights.h"

#include <immintrin.h>

#include <cstring>

namespace fb {

int64_t wformat_row_bytes(WFormat f, int64_t K) {
  switch (f) {
    case WFormat::F32: return 4 * K;
    case WFormat::BF16:
    case WFormat::F16: return 2 * K;
    case WFormat::Q8_0: return (K + 31) / 32 * 34;
    case WFormat::Q4_0: return (K + 31) / 32 * 18;
  }
  return 0;
}

void widen_row(WFormat f, const uint8_t* W, int64_t K, int64_t n, int64_t k0, int64_t k1, float* out) {
  const uint8_t* row = W + n * wformat_row_bytes(f, K);
  const int64_t len = k1 - k0;
  switch (f) {
    case WFormat::F32:
      std::memcpy(out, row + 4 * k0, 4 * len);
      return;
    case WFormat::BF16: {
      const uint16_t* src = reinterpret_cast<const uint16_t*>(row) + k0;
      int64_t i = 0;
      for (; i + 8 <= len; i += 8) {
        __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
        _mm256_storeu_ps(out + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
      }
      for (; i < len; i++) {
        uint32_t u = static_cast<uint32_t>(src[i]) << 16;
        std::memcpy(out + i, &u, 4);
      }
      return;
    }
    case WFormat::F16: {
      const uint16_t* src = reinterpret_cast<const uint16_t*>(row) + k0;
      int64_t i = 0;
      for (; i + 8 <= len; i += 8)
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
      for (; i < len; i++) out[i] = _cvtsh_ss(src[i]);
      return;
    }
    case WFormat::Q8_0:
      for (int64_t b = k0 / 32; b * 32 < k1; b++) {
        const uint8_t* blk = row + b * 34;
        const __m256 d = _mm256_set1_ps(half_to_float(blk));
        float t[32];  // a partial last block (k1 = K not a multiple of 32) widens here first
        const bool whole = b * 32 + 32 <= k1;
        float* o = whole ? out + (b * 32 - k0) : t;
        for (int j = 0; j < 32; j += 8) {
          __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk + 2 + j));
          _mm256_storeu_ps(o + j, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q))));
        }
        if (!whole) std::memcpy(out + (b * 32 - k0), t, (k1 - b * 32) * sizeof(float));
      }
      return;
    case WFormat::Q4_0:
      for (int64_t b = k0 / 32; b * 32 < k1; b++) {
        const uint8_t* blk = row + b * 18;
        const __m256 d = _mm256_set1_ps(half_to_float(blk));
        const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
        const __m128i lo = _mm_sub_epi8(_mm_and_si128(bytes, _mm_set1_epi8(15)), _mm_set1_epi8(8));
        const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(bytes, 4), _mm_set1_epi8(15)), _mm_set1_epi8(8));
        float t[32];  // a partial last block widens here first
        const bool whole = b * 32 + 32 <= k1;
        float* o = whole ? out + (b * 32 - k0) : t;
        _mm256_storeu_ps(o, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo))));
        _mm256_storeu_ps(o + 8, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)))));
        _mm256_storeu_ps(o + 16, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi))));
        _mm256_storeu_ps(o + 24, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)))));
        if (!whole) std::memcpy(out + (b * 32 - k0), t, (k1 - b * 32) * sizeof(float));
      }
      return;
  }
}

}  // namespace fb
