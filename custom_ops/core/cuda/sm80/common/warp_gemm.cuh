// Warp-level tensor-core GEMMs on shared-memory tiles (and register A
// fragments), plus the cp.async tile loader. Every tile in shared memory is
// row-major with a row pitch of (cols + 8) elements: the 16-byte pad makes the
// 8 row addresses of each ldmatrix hit 8 different bank groups.
//
// Fragment conventions (mma.m16n8k16): acc[mt][nt][4] holds, for lane
// (g = lane / 4, t = lane % 4), rows g / g + 8 and columns 2t, 2t + 1 of the
// 16x8 tile (mt, nt): acc[..][0..1] row g, acc[..][2..3] row g + 8.
#pragma once

#include "core/cuda/common/tile_size.h"
#include "core/cuda/sm80/common/ptx.cuh"

namespace flashmask {
namespace cuda {

using sm80::kBlockN;
using sm80::kThreads;

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
// Software-pipelined one fragment ahead: the B pair of the next (k-step,
// n-pair) and the A fragments of the next k-step are loaded before the MMAs
// that precede them, so an ldmatrix overlaps MMAs instead of stalling the
// next MMA on its result (12 extra registers; ncu: short-scoreboard stalls).
template <typename T, int MT, int NT, int KS, bool A_T, bool B_T>
__device__ __forceinline__ void gemm_ss(float (&acc)[MT][NT][4], uint32_t sA, int lda, int m0,
                                        int ka0, uint32_t sB, int ldb, int n0, int kb0, int lane) {
  static_assert(NT % 2 == 0, "NT must be even");
  constexpr int NP = NT / 2, kSteps = KS * NP;
  uint32_t a[2][MT][4], b[2][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) load_a<A_T>(sA, lda, m0 + mt * 16, ka0, lane, a[0][mt]);
  load_b2<B_T>(sB, ldb, n0, kb0, lane, b[0]);
#pragma unroll
  for (int st = 0; st < kSteps; ++st) {
    const int ks = st / NP, np = st % NP;
    if (np == 0 && ks + 1 < KS) {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
        load_a<A_T>(sA, lda, m0 + mt * 16, ka0 + (ks + 1) * 16, lane, a[(ks + 1) & 1][mt]);
    }
    if (st + 1 < kSteps)
      load_b2<B_T>(sB, ldb, n0 + ((st + 1) % NP) * 16, kb0 + ((st + 1) / NP) * 16, lane,
                   b[(st + 1) & 1]);
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      Mma<T>::run(acc[mt][2 * np], a[ks & 1][mt], b[st & 1][0], b[st & 1][1]);
      Mma<T>::run(acc[mt][2 * np + 1], a[ks & 1][mt], b[st & 1][2], b[st & 1][3]);
    }
  }
}

// acc[MT][NT] += A (register fragments a[mt][ks]) * B (shared memory), with
// the next B pair loaded one step ahead as in gemm_ss.
template <typename T, int MT, int NT, int KS, bool B_T>
__device__ __forceinline__ void gemm_rs(float (&acc)[MT][NT][4], const uint32_t (&a)[MT][KS][4],
                                        uint32_t sB, int ldb, int n0, int kb0, int lane) {
  static_assert(NT % 2 == 0, "NT must be even");
  constexpr int NP = NT / 2, kSteps = KS * NP;
  uint32_t b[2][4];
  load_b2<B_T>(sB, ldb, n0, kb0, lane, b[0]);
#pragma unroll
  for (int st = 0; st < kSteps; ++st) {
    const int ks = st / NP, np = st % NP;
    if (st + 1 < kSteps)
      load_b2<B_T>(sB, ldb, n0 + ((st + 1) % NP) * 16, kb0 + ((st + 1) / NP) * 16, lane,
                   b[(st + 1) & 1]);
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      Mma<T>::run(acc[mt][2 * np], a[mt][ks], b[st & 1][0], b[st & 1][1]);
      Mma<T>::run(acc[mt][2 * np + 1], a[mt][ks], b[st & 1][2], b[st & 1][3]);
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
// rows past `rows` are zero-filled (src-size 0: nothing is read, so their
// source address may lie past the tensor, as in CUTLASS's zfill copies).
// Where a pass of NTHREADS copies covers whole rows (D = 64, 128, 256) the
// trip count is a compile-time constant and a thread keeps its chunk column,
// stepping its source pointer by a fixed number of rows: ~4 instructions per
// 16-byte copy instead of ~25 for a loop from tid (which does not unroll).
template <typename T, int ROWS, int D, int NTHREADS = kThreads>
__device__ __forceinline__ void load_tile(T* smem, const T* gmem, int64_t row_stride, int rows,
                                          int tid) {
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
  constexpr int kTotal = ROWS * kChunks;
  constexpr int kIters = (kTotal + NTHREADS - 1) / NTHREADS;
  const uint32_t base = smem_addr(smem);
  if constexpr (NTHREADS % kChunks == 0) {
    constexpr int kRowStep = NTHREADS / kChunks;
    const int r0 = tid / kChunks, k = tid % kChunks;
    const int left = rows - r0;  // compared with constants below: no per-copy row registers
    const T* src = gmem + r0 * row_stride + k * 8;
    const int64_t step = kRowStep * row_stride;
    const uint32_t dst = base + (r0 * (D + 8) + k * 8) * 2;
#pragma unroll
    for (int i = 0; i < kIters; ++i, src += step) {
      if (kTotal % NTHREADS != 0 && r0 + i * kRowStep >= ROWS) break;
      cp_async16(dst + i * kRowStep * (D + 8) * 2, src, i * kRowStep < left);
    }
  } else {
    // D = 96, 192: a pass ends mid-row. A loop from tid keeps the per-copy
    // row / chunk arithmetic inside the loop; unrolling it made the compiler
    // hoist those per-thread constants out of the caller's tile loop (spills).
#pragma unroll
    for (int c = tid; c < kTotal; c += NTHREADS) {
      const int r = c / kChunks, k = c % kChunks;
      cp_async16(base + (r * (D + 8) + k * 8) * 2, gmem + r * row_stride + k * 8, r < rows);
    }
  }
}

}  // namespace cuda
}  // namespace flashmask
