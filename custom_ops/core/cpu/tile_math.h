// The CPU kernel's inner loops, compiled once per ISA level (target_clones):
// a small fp32 GEMM and a vectorised exp.
//
// GEMM:
//     C[m][n] += sum_k A(m, k) * B[k][n],   A(m, k) = A[m * a_row + k * a_col]
// The strided A covers every product attention needs (QK^T, PV, dO V^T, dS K,
// P^T dO, dS^T Q) with B and C row-major. M % 4 == 0, N % 16 == 0: tile
// buffers are padded with zeros to those multiples.
#pragma once

#include <cstdint>

namespace flashmask {
namespace cpu {

constexpr int kGemmRows = 4;
constexpr int kGemmCols = 16;

inline int round_up(int x, int m) { return (x + m - 1) / m * m; }

void gemm_acc(int M, int N, int K, const float* A, int64_t a_row, int64_t a_col, const float* B,
              int64_t ldb, float* C, int64_t ldc);

// gemm_acc that skips A(m, k) == 0 when B holds a NaN or Inf (b_finite false):
// a masked (zero) probability then never multiplies a non-finite value into
// C, so NaN/Inf travel only along unmasked (row, key) pairs. The plain GEMM
// when b_finite.
void gemm_acc_zero_safe(bool b_finite, int M, int N, int K, const float* A, int64_t a_row,
                        int64_t a_col, const float* B, int64_t ldb, float* C, int64_t ldc);

// Whether x[0, n) holds no NaN or Inf.
bool all_finite(const float* x, int64_t n);

// x[i] = exp(x[i] - shift) for i < n (n % 8 == 0); exp(-inf) is exactly 0.
// Relative error ~2e-7. Returns the sum of the results.
float exp_shifted(float* x, int n, float shift);

}  // namespace cpu
}  // namespace flashmask
