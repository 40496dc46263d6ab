// The two O(S) kernels around the sm90 backward kernel:
//   bwd_pre_kernel:  delta = rowsum(dO * O) (fp32) and lse in the log2
//                    domain, both padded to m_blocks * kBlockM rows per (b, h)
//                    so each query block's 64/128 floats are one aligned bulk
//                    copy; padding rows and rows with lse = -inf (masked for
//                    every key) get lse_log2 = +inf, i.e. P = 0 there.
//   bwd_post_kernel: dq = softmax_scale * accumulator, converted; the
//                    accumulator tile is in the consumers' register order
//                    (float4 k of thread t at [k][t]), undone here with the
//                    same tiled-MMA partition through a shared-memory tile.
// Both are pure memory traffic (B*H*S*D: ~3 GB at 128K tokens, H = 32,
// D = 128), so every access is a full, coalesced vector.
#pragma once

#include <math_constants.h>

#include "core/cuda/sm90/bwd/traits.h"

namespace flashmask {
namespace cuda {
namespace sm90 {
namespace bwd {

struct PreArgs {
  const void* out;
  const void* dout;
  const float* lse;  // [B, H, Sq]
  int64_t o_batch_stride, o_row_stride, o_head_stride;
  int32_t num_heads, seqlen_q, head_dim, padded_rows;  // padded_rows = m_blocks * kBlockM
  int64_t total_rows;                                  // B * H * padded_rows
  float* lse_log2;
  float* delta;
  float* delta_plain;  // [B, H, Sq] (the sm80 workspace's delta), may be null
};

// pre_lanes<D>() lanes per padded row, each loading kIters x 16 bytes of O
// and of dO (D / 8 lanes at 64 / 128 / 256; 8 lanes x 3 at d192), so a warp
// covers 32 / kLanes rows: every lane loads, none idles.
template <int D>
constexpr int pre_lanes() {
  return (D / 8) % 3 == 0 ? D / 24 : D / 8;
}

template <typename Element, int D>
__global__ void __launch_bounds__(256) bwd_pre_kernel(const PreArgs a) {
  constexpr int kLanes = pre_lanes<D>();
  constexpr int kIters = D / (8 * kLanes);
  static_assert(kLanes >= 1 && kLanes <= 32 && (kLanes & (kLanes - 1)) == 0 && kIters * 8 * kLanes == D,
                "a power-of-two number of lanes per row");
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t r = t / kLanes;
  const int sub = static_cast<int>(t % kLanes);
  const bool valid = r < a.total_rows;  // no early exit: every lane takes part in the shuffles
  const int i = static_cast<int>(r % a.padded_rows);
  const int64_t bh = r / a.padded_rows;
  float sum = 0.f;
  if (valid && i < a.seqlen_q) {
    const int h = static_cast<int>(bh % a.num_heads);
    const int64_t b = bh / a.num_heads;
    const int64_t off = b * a.o_batch_stride + int64_t(i) * a.o_row_stride + int64_t(h) * a.o_head_stride + sub * 8;
#pragma unroll
    for (int k = 0; k < kIters; ++k) {
      const uint4 ov = *reinterpret_cast<const uint4*>(static_cast<const Element*>(a.out) + off + k * 8 * kLanes);
      const uint4 dv = *reinterpret_cast<const uint4*>(static_cast<const Element*>(a.dout) + off + k * 8 * kLanes);
      const Element* oe = reinterpret_cast<const Element*>(&ov);
      const Element* de = reinterpret_cast<const Element*>(&dv);
#pragma unroll
      for (int e = 0; e < 8; ++e) sum += float(oe[e]) * float(de[e]);
    }
  }
#pragma unroll
  for (int s = kLanes / 2; s > 0; s >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, s);
  if (!valid || sub != 0) return;
  if (i >= a.seqlen_q) {
    a.lse_log2[r] = CUDART_INF_F;
    a.delta[r] = 0.f;
    return;
  }
  const float l = a.lse[bh * a.seqlen_q + i];
  a.lse_log2[r] = l == -CUDART_INF_F ? CUDART_INF_F : l * 1.4426950408889634f;
  a.delta[r] = sum;
  if (a.delta_plain != nullptr) a.delta_plain[bh * a.seqlen_q + i] = sum;
}

struct PostArgs {
  const float* dq_acc;
  const int32_t* dq_state;  // 0: no key block visited the tile (dq = 0, the accumulator was never written)
  void* dq;
  int64_t dq_batch_stride, dq_row_stride, dq_head_stride;
  int32_t num_heads, seqlen_q, m_blocks;
  float softmax_scale;
};

// grid (m_blocks, H, B), kNumMmaThreads threads: one accumulator tile per CTA
// (kDqSlices column slices, one after the other), through shared memory so
// that both sides are coalesced: float4 loads in the register order, float2
// writes to a row-major tile (row stride DQ + 8 floats: a half-warp's 16
// float2 hit 32 distinct banks), then 4 consecutive columns per thread -> one
// 8-byte store of 4 elements (a warp writes 256 contiguous bytes of a row).
template <typename Traits>
__global__ void __launch_bounds__(Traits::kNumMmaThreads) bwd_post_kernel(const PostArgs a) {
  using Element = typename Traits::Element;
  constexpr int BM = Traits::kBlockM, DQ = Traits::DQ::value, T = Traits::kNumMmaThreads;
  constexpr int kStride = DQ + 8;
  __shared__ __align__(16) float tile[BM * kStride];
  const int m = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int tid = threadIdx.x;
  typename Traits::TiledMmadQ mma;
  auto thr = mma.get_thread_slice(tid);
  Tensor c = thr.partition_C(make_identity_tensor(Shape<Int<BM>, Int<DQ>>{}));
  constexpr int kVec = decltype(size(c))::value / 4;
  const int64_t tile_id = (static_cast<int64_t>(b) * a.num_heads + h) * a.m_blocks + m;
  Element* dq = static_cast<Element*>(a.dq) + b * a.dq_batch_stride + int64_t(h) * a.dq_head_stride;
  constexpr int kQuads = BM * DQ / 4;
  static_assert(kQuads % T == 0, "whole float4 steps");
  const bool visited = a.dq_state[tile_id] != 0;
#pragma unroll 1
  for (int s = 0; s < Traits::kDqSlices; ++s) {
    if (s > 0) __syncthreads();  // the previous slice is out of the tile
    const float4* src =
        reinterpret_cast<const float4*>(a.dq_acc + tile_id * Traits::kDqFloats + s * Traits::kDqSliceFloats);
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
      const float4 v = visited ? src[Traits::dq_float4_index(k, tid)] : make_float4(0.f, 0.f, 0.f, 0.f);
      // (4k, 4k + 1) and (4k + 2, 4k + 3): adjacent columns of one row each
      *reinterpret_cast<float2*>(&tile[get<0>(c(4 * k)) * kStride + get<1>(c(4 * k))]) = make_float2(v.x, v.y);
      *reinterpret_cast<float2*>(&tile[get<0>(c(4 * k + 2)) * kStride + get<1>(c(4 * k + 2))]) =
          make_float2(v.z, v.w);
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kQuads / T; ++k) {
      const int q = k * T + tid;
      const int row = q / (DQ / 4), col = (q % (DQ / 4)) * 4;
      if (m * BM + row >= a.seqlen_q) continue;
      const float4 v = *reinterpret_cast<const float4*>(&tile[row * kStride + col]);
      cutlass::Array<Element, 4> out;
      out[0] = Element(v.x * a.softmax_scale);
      out[1] = Element(v.y * a.softmax_scale);
      out[2] = Element(v.z * a.softmax_scale);
      out[3] = Element(v.w * a.softmax_scale);
      *reinterpret_cast<cutlass::Array<Element, 4>*>(dq + int64_t(m * BM + row) * a.dq_row_stride + s * DQ + col) =
          out;
    }
  }
}

}  // namespace bwd
}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
