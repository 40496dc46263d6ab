// Warp-level tensor-core GEMMs on shared-memory tiles (and register A
// fragments), plus the cp.async tile loader. Every tile in shared memory is
// row-major with a row pitch of (cols + 8) elements: the 16-byte pad makes the
// 8 row addresses of each ldmatrix hit 8 different bank groups.
//
// Fragment conventions (mma.m16n8k16): acc[mt][nt][4] holds, for lane
// (g = lane / 4, t = lane % 4), rows g / g + 8 and columns 2t, 2t + 1 of the
// 16x8 tile (mt, nt): acc[..][0..1] row g, acc[..][2..3] row g + 8.
#pragma once

#include "ptx.cuh"

namespace flashmask {
namespace cuda {

constexpr int kThreads = 128;  // 4 warps per CTA, every kernel
constexpr int kBlockN = 64;    // key columns per tile: the mask-bounds granularity

// A operand (m16 x k16) at (m0, k0) of a tile stored [m][k] (A_T: stored [k][m]).
template <bool A_T>
__device__ __forceinline__ void load_a(uint32_t base, int ld, int m0, int k0, int lane,
                                       uint32_t (&a)[4]) {
  if (!A_T) {
    ldsm_x4(base + ((m0 + (lane & 15)) * ld + k0 + (lane >> 4) * 8) * 2, a);
  } else {
    ldsm_x4_t(base + ((k0 + (lane & 7) + (lane >> 4) * 8) * ld + m0 + ((lane >> 3) & 1) * 8) * 2,
              a);
  }
}

// B operands of two n8 tiles (n0, n0 + 8) x k16 at k0, from a tile stored
// [n][k] (B_T: stored [k][n]). b[0..1] -> n tile n0, b[2..3] -> n0 + 8.
template <bool B_T>
__device__ __forceinline__ void load_b2(uint32_t base, int ld, int n0, int k0, int lane,
                                        uint32_t (&b)[4]) {
  if (!B_T) {
    ldsm_x4(base + ((n0 + (lane & 7) + (lane >> 4) * 8) * ld + k0 + ((lane >> 3) & 1) * 8) * 2, b);
  } else {
    ldsm_x4_t(base + ((k0 + (lane & 15)) * ld + n0 + (lane >> 4) * 8) * 2, b);
  }
}

// acc[MT][NT] += A[m0 .. m0 + 16 MT, k0 .. k0 + 16 KS] * B[.., n0 .. n0 + 8 NT].
template <typename T, int MT, int NT, int KS, bool A_T, bool B_T>
__device__ __forceinline__ void gemm_ss(float (&acc)[MT][NT][4], uint32_t sA, int lda, int m0,
                                        int ka0, uint32_t sB, int ldb, int n0, int kb0, int lane) {
  static_assert(NT % 2 == 0, "NT must be even");
#pragma unroll
  for (int ks = 0; ks < KS; ++ks) {
    uint32_t a[MT][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) load_a<A_T>(sA, lda, m0 + mt * 16, ka0 + ks * 16, lane, a[mt]);
#pragma unroll
    for (int np = 0; np < NT / 2; ++np) {
      uint32_t b[4];
      load_b2<B_T>(sB, ldb, n0 + np * 16, kb0 + ks * 16, lane, b);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        Mma<T>::run(acc[mt][2 * np], a[mt], b[0], b[1]);
        Mma<T>::run(acc[mt][2 * np + 1], a[mt], b[2], b[3]);
      }
    }
  }
}

// acc[MT][NT] += A (register fragments a[mt][ks]) * B (shared memory).
template <typename T, int MT, int NT, int KS, bool B_T>
__device__ __forceinline__ void gemm_rs(float (&acc)[MT][NT][4], const uint32_t (&a)[MT][KS][4],
                                        uint32_t sB, int ldb, int n0, int kb0, int lane) {
#pragma unroll
  for (int ks = 0; ks < KS; ++ks) {
#pragma unroll
    for (int np = 0; np < NT / 2; ++np) {
      uint32_t b[4];
      load_b2<B_T>(sB, ldb, n0 + np * 16, kb0 + ks * 16, lane, b);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        Mma<T>::run(acc[mt][2 * np], a[mt][ks], b[0], b[1]);
        Mma<T>::run(acc[mt][2 * np + 1], a[mt][ks], b[2], b[3]);
      }
    }
  }
}

// Accumulator tiles (m16 x n64 per mt, as fp32) -> A fragments (k = the n axis).
template <typename T, int MT, int NT>
__device__ __forceinline__ void acc_to_a(const float (&c)[MT][NT][4], uint32_t (&a)[MT][NT / 2][4]) {
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int ks = 0; ks < NT / 2; ++ks) {
      a[mt][ks][0] = Mma<T>::pack(c[mt][2 * ks][0], c[mt][2 * ks][1]);
      a[mt][ks][1] = Mma<T>::pack(c[mt][2 * ks][2], c[mt][2 * ks][3]);
      a[mt][ks][2] = Mma<T>::pack(c[mt][2 * ks + 1][0], c[mt][2 * ks + 1][1]);
      a[mt][ks][3] = Mma<T>::pack(c[mt][2 * ks + 1][2], c[mt][2 * ks + 1][3]);
    }
}

template <int MT, int NT>
__device__ __forceinline__ void zero(float (&c)[MT][NT][4]) {
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) c[mt][nt][e] = 0.f;
}

// cp.async of `rows` (<= ROWS) rows of D elements into a [ROWS][D + 8] tile;
// rows past `rows` are zero-filled.
template <typename T, int ROWS, int D, int NTHREADS = kThreads>
__device__ __forceinline__ void load_tile(T* smem, const T* gmem, int64_t row_stride, int rows,
                                          int tid) {
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
  const uint32_t base = smem_addr(smem);
#pragma unroll
  for (int c = tid; c < ROWS * kChunks; c += NTHREADS) {
    const int r = c / kChunks, k = c % kChunks;
    const bool ok = r < rows;
    const T* src = ok ? gmem + r * row_stride + k * 8 : gmem;
    cp_async16(base + (r * (D + 8) + k * 8) * 2, src, ok);
  }
}

}  // namespace cuda
}  // namespace flashmask
