// Our own packed gemm (BLIS-style: packed panels, register-blocked micro-kernels) and the run-time
// choice between it and OpenBLAS. Paths: "avx512" (16-wide, on CPUs with AVX-512F), "avx2" (8-wide,
// x86-64-v3), "openblas" (the portable fallback, e.g. on ARM). The best available is the default;
// FEDBIOT_GEMM=<path> or set_gemm_path forces one.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace fb {

// AVX512BF16: the AVX512 path, plus bf16 stored weights multiplied with AVX512-BF16 dot products
// (vdpbf16ps, activations rounded to bf16); opt-in (FEDBIOT_GEMM=avx512bf16), never the default.
enum class GemmPath : int { OpenBLAS = 0, AVX2 = 1, AVX512 = 2, AVX512BF16 = 3 };

GemmPath gemm_path();
std::vector<std::string> gemm_paths_available();
const char* gemm_path_name(GemmPath p);
// False when the path is unknown or this CPU cannot run it.
bool set_gemm_path(const std::string& name);

// Packs values [k0, k0 + kc) x columns [j0, j0 + nc) of op(B) into panels of nr columns:
// dst[(jp * kc + k) * nr + c] = op(B)(k0 + k, j0 + jp * nr + c), zero beyond column nc.
using PackB = std::function<void(int64_t k0, int64_t kc, int64_t j0, int64_t nc, int nr, float* dst)>;

// C[M, N] = alpha op(A) op(B) + beta C on our own kernels (the current path must not be OpenBLAS).
// op(B) comes from packB, so a stored weight format can be widened right in the packing.
// Bplain, when given, is op(B) itself as a plain row-major f32 matrix (op(B)(k, n) = Bplain[k * ldbPlain + n]):
// the gemm may read it in place instead of calling packB.
void own_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, bool tA,
              const PackB& packB, float beta, float* C, int64_t ldc, const float* Bplain = nullptr,
              int64_t ldbPlain = 0);

// Columns per micro-kernel panel on the current path (32 on avx512, 16 on avx2, 0 on openblas).
int own_gemm_nr();

// A group of gemms fused into one: C (split by columns into segments, each with its own pointer
// and ldc) = alpha op(A) op(B) + beta C, where the summed dimension K may be split into segments too,
// each with its own A columns (pointer, lda). op(B) for a (column segment, K segment) block comes
// from the column segment's pack when it has one, else from the K segment's: concatenated weights
// along N (q/k/v projections: one A, several B and C) or along K (their input gradient: several A
// and B summed into one C). Pack coordinates are local to the segment. A KC block never spans two
// K segments, so the summation order is k in order, as in one gemm.
struct ColSeg {
  int64_t N;
  float* C;
  int64_t ldc;
  PackB pack;
  // Optional, with a single K segment: op(B) for this segment as a plain row-major f32 matrix
  // (B[k * ldb + n], local coordinates), which the gemm may read in place instead of packing.
  const float* B = nullptr;
  int64_t ldb = 0;
};
struct KSeg {
  int64_t K;
  const float* A;
  int64_t lda;
  PackB pack;
};
void own_gemm_group(int64_t M, float alpha, bool tA, const std::vector<ColSeg>& cols, const std::vector<KSeg>& ks,
                    float beta);

// dst[k * ld + c] = src[c * lds + k] for c < 8, k < kc (8 rows of src into 8 columns of a panel).
void transpose_into_panel(const float* src, int64_t lds, int64_t kc, float* dst, int64_t ld);

// This CPU's fp32 FMA throughput in GFLOP/s on all threads: independent FMAs at the widest vector
// width, iters loop trips per thread (0 where no x86 vector path exists).
double peak_gflops(int64_t iters);

// Whether this CPU has AVX512-BF16 (with the AVX-512 subsets the bf16 kernel uses).
bool bf16_dot_available();

// Y[M, N] = alpha X[M, Kr] op(W) + beta Y with W bf16 (row length ldW), multiplied by vdpbf16ps
// after rounding X to bf16: op(W)(k, n) = W[n][k] (transW, Kr = in features) or W[k][n] (!transW,
// Kr = the weight's rows). Only on CPUs where bf16_dot_available().
void bf16_dot_gemm(int64_t M, int64_t N, int64_t Kr, float alpha, const float* X, int64_t ldx, const uint16_t* W,
                   int64_t ldW, bool transW, float beta, float* Y, int64_t ldy);

// The PackB of a plain f32 matrix.
PackB pack_f32(const float* B, int64_t ldb, bool tB);

}  // namespace fb
