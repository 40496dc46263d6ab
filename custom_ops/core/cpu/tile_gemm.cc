#include "tile_gemm.h"

namespace flashmask {
namespace cpu {
namespace {

// 4 x 16 register block: 8 AVX2 accumulators, one B load per 4 FMAs.
__attribute__((always_inline)) inline void micro_kernel(int K, const float* A, int64_t a_row,
                                                        int64_t a_col, const float* B, int64_t ldb,
                                                        float* C, int64_t ldc) {
  float acc[kGemmRows][kGemmCols];
  for (int r = 0; r < kGemmRows; ++r)
    for (int x = 0; x < kGemmCols; ++x) acc[r][x] = C[r * ldc + x];
  for (int k = 0; k < K; ++k) {
    const float* b = B + k * ldb;
    for (int r = 0; r < kGemmRows; ++r) {
      const float a = A[r * a_row + k * a_col];
      for (int x = 0; x < kGemmCols; ++x) acc[r][x] += a * b[x];
    }
  }
  for (int r = 0; r < kGemmRows; ++r)
    for (int x = 0; x < kGemmCols; ++x) C[r * ldc + x] = acc[r][x];
}

}  // namespace

// One clone per ISA level; the loader picks the best the CPU runs.
#if defined(__x86_64__) && defined(__GNUC__)
#define FM_ISA_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define FM_ISA_CLONES
#endif

FM_ISA_CLONES void gemm_acc(
    int M, int N, int K, const float* A, int64_t a_row, int64_t a_col, const float* B, int64_t ldb,
    float* C, int64_t ldc) {
  for (int m = 0; m < M; m += kGemmRows)
    for (int n = 0; n < N; n += kGemmCols)
      micro_kernel(K, A + m * a_row, a_row, a_col, B + n, ldb, C + m * ldc + n, ldc);
}

}  // namespace cpu
}  // namespace flashmask
