// Layout of the sm80 backward's fp32 dQ accumulator (atomic mode).
//
// Each 16-row x 8-column block of one (batch, head)'s dQ is stored as one
// mma.sync C fragment in lane order: 512 contiguous bytes, lane l's four
// values (rows l / 4 and l / 4 + 8, columns 2 (l % 4) and + 1) at 4 l. A
// warp adds a whole fragment with one red.global.add.v4.f32 over 4 full
// 128-byte lines. Row-major float2 adds touched 8 lines (32 bytes each) per
// instruction and needed twice the instructions: the L1 worked through 4x the
// wavefronts, and the REDs still in flight at the end of a step held their
// source registers long enough to stall the next step (ncu, dkdv2 at 8K:
// long scoreboard 15.8 % of stall samples against FA2's 6.7 %; FA2 also adds
// dQ in an accumulator-private order). dq_convert_kernel (prep/mask_bounds.cu) reads the
// layout back through dq_fragment_coords; nothing else sees it.
#pragma once

#include <cstdint>

namespace flashmask {
namespace cuda {

// Rows per (batch, head) slab: seqlen_q rounded up to whole fragments.
__host__ __device__ __forceinline__ int dq_accum_rows(int seqlen_q) {
  return (seqlen_q + 15) & ~15;
}

// Offset (floats) of the fragment whose top-left element is (row0, col0) of
// a slab; row0 % 16 == 0, col0 % 8 == 0.
__device__ __forceinline__ int64_t dq_fragment_offset(int64_t row0, int col0, int head_dim) {
  return row0 * head_dim + col0 * 16;
}

// The inverse, for the reader: float4 number q of a slab (lane q % 32 of
// fragment q / 32) holds elements (row, col) and (row, col + 1) of the slab
// in .x/.y, (row + 8, col) and (row + 8, col + 1) in .z/.w; returns {row, col}.
__device__ __forceinline__ int2 dq_fragment_coords(int q, int head_dim) {
  const int lane = q & 31, fragment = q >> 5, per_band = head_dim / 8;
  return make_int2((fragment / per_band) * 16 + (lane >> 2), (fragment % per_band) * 8 + 2 * (lane & 3));
}

// Adds one C fragment (c[0..1]: row g, c[2..3]: row g + 8, of lane 4 g + t)
// at `fragment` (from dq_fragment_offset).
__device__ __forceinline__ void dq_add_fragment(float* fragment, int lane, const float (&c)[4]) {
  float* dst = fragment + lane * 4;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  atomicAdd(reinterpret_cast<float4*>(dst), make_float4(c[0], c[1], c[2], c[3]));
#else
#pragma unroll
  for (int e = 0; e < 4; ++e) atomicAdd(dst + e, c[e]);
#endif
}

}  // namespace cuda
}  // namespace flashmask
