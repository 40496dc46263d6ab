#include "core/cpu/tile_math.h"

#include <cmath>

namespace flashmask {
namespace cpu {
namespace {

// 8 floats; GCC lowers it to one AVX register (x86-64-v3) or two SSE ones.
// aligned(4): tile rows are only float-aligned, so loads and stores are unaligned.
typedef float vec8 __attribute__((vector_size(32), aligned(4)));

typedef int32_t ivec8 __attribute__((vector_size(32), aligned(4)));

__attribute__((always_inline)) inline vec8 load8(const float* p) {
  return *reinterpret_cast<const vec8*>(p);
}
__attribute__((always_inline)) inline void store8(float* p, vec8 v) {
  *reinterpret_cast<vec8*>(p) = v;
}

// exp(x) = 2^n * e^r with n = round(x * log2(e)) and r = x - n * ln2 computed
// in two parts (Cody-Waite) so r stays exact; e^r by its degree-6 Taylor
// polynomial (|r| <= ln2 / 2: error < 2e-7).
__attribute__((always_inline)) inline vec8 exp8(vec8 x) {
  // Below -87, exp(x) < 1.7e-38 (under the normal range): flushed to 0, as is exp(-inf).
  const vec8 xc = x < -87.f ? vec8{} - 87.f : (x > 87.f ? vec8{} + 87.f : x);
  const vec8 n = (xc * 1.44269504088896341f + 12582912.f) - 12582912.f;  // round (1.5*2^23 trick)
  const vec8 r = (xc - n * 0.693145751953125f) - n * 1.428606765330187e-06f;
  vec8 p = vec8{} + 1.f / 720.f;
  p = p * r + 1.f / 120.f;
  p = p * r + 1.f / 24.f;
  p = p * r + 1.f / 6.f;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  const ivec8 bits = reinterpret_cast<const ivec8&>(p) + (__builtin_convertvector(n, ivec8) << 23);
  const vec8 e = reinterpret_cast<const vec8&>(bits);
  return x < -87.f ? vec8{} : e;  // underflow (and -inf: masked scores) is exactly 0
}

// 4 x 16 register block: 8 accumulators, 2 B loads and 4 broadcasts per 8 FMAs.
__attribute__((always_inline)) inline void micro_kernel(int K, const float* A, int64_t a_row,
                                                        int64_t a_col, const float* B, int64_t ldb,
                                                        float* C, int64_t ldc) {
  static_assert(kGemmRows == 4 && kGemmCols == 16, "the block below is written out for 4 x 16");
  vec8 c00 = load8(C), c01 = load8(C + 8);
  vec8 c10 = load8(C + ldc), c11 = load8(C + ldc + 8);
  vec8 c20 = load8(C + 2 * ldc), c21 = load8(C + 2 * ldc + 8);
  vec8 c30 = load8(C + 3 * ldc), c31 = load8(C + 3 * ldc + 8);
  for (int k = 0; k < K; ++k) {
    const vec8 b0 = load8(B + k * ldb), b1 = load8(B + k * ldb + 8);
    const float* a = A + k * a_col;
    const float a0 = a[0], a1 = a[a_row], a2 = a[2 * a_row], a3 = a[3 * a_row];
    c00 += a0 * b0;
    c01 += a0 * b1;
    c10 += a1 * b0;
    c11 += a1 * b1;
    c20 += a2 * b0;
    c21 += a2 * b1;
    c30 += a3 * b0;
    c31 += a3 * b1;
  }
  store8(C, c00), store8(C + 8, c01);
  store8(C + ldc, c10), store8(C + ldc + 8, c11);
  store8(C + 2 * ldc, c20), store8(C + 2 * ldc + 8, c21);
  store8(C + 3 * ldc, c30), store8(C + 3 * ldc + 8, c31);
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

FM_ISA_CLONES float exp_shifted(float* x, int n, float shift) {
  vec8 sum = vec8{};
  for (int i = 0; i < n; i += 8) {
    const vec8 e = exp8(load8(x + i) - shift);
    store8(x + i, e);
    sum += e;
  }
  float total = 0.f;
  for (int i = 0; i < 8; ++i) total += sum[i];
  return total;
}

void gemm_acc_zero_safe(bool b_finite, int M, int N, int K, const float* A, int64_t a_row,
                        int64_t a_col, const float* B, int64_t ldb, float* C, int64_t ldc) {
  if (b_finite) return gemm_acc(M, N, K, A, a_row, a_col, B, ldb, C, ldc);
  for (int m = 0; m < M; ++m)
    for (int k = 0; k < K; ++k) {
      const float a = A[m * a_row + k * a_col];
      if (a == 0.f) continue;
      for (int n = 0; n < N; ++n) C[m * ldc + n] += a * B[k * ldb + n];
    }
}

bool all_finite(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return false;
  return true;
}

}  // namespace cpu
}  // namespace flashmask
