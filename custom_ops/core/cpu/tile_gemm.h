// A small fp32 GEMM for the CPU kernel's tiles:
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

}  // namespace cpu
}  // namespace flashmask
