// The two O(S) kernels around the sm90 backward kernel:
//   bwd_pre_kernel:  delta = rowsum(dO * O) (fp32) and lse in the log2
//                    domain, both padded to m_blocks * kBlockM rows per (b, h)
//                    so each query block's 64/128 floats are one aligned bulk
//                    copy; padding rows and rows with lse = -inf (masked for
//                    every key) get lse_log2 = +inf, i.e. P = 0 there.
//   bwd_post_kernel: dq = softmax_scale * accumulator, converted; the
//                    accumulator tile is in the consumers' register order
//                    (float4 k of thread t at [k][t]), undone here with the
//                    same tiled-MMA partition.
#pragma once

#include <math_constants.h>

#include "bwd_traits.h"

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

// One warp per padded row; 8 elements (16 bytes) per lane and step.
template <typename Element>
__global__ void __launch_bounds__(256) bwd_pre_kernel(const PreArgs a) {
  const int64_t r = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (r >= a.total_rows) return;
  const int i = static_cast<int>(r % a.padded_rows);
  const int64_t bh = r / a.padded_rows;
  if (i >= a.seqlen_q) {
    if (lane == 0) {
      a.lse_log2[r] = CUDART_INF_F;
      a.delta[r] = 0.f;
    }
    return;
  }
  const int h = static_cast<int>(bh % a.num_heads);
  const int64_t b = bh / a.num_heads;
  const int64_t off = b * a.o_batch_stride + int64_t(i) * a.o_row_stride + int64_t(h) * a.o_head_stride;
  const Element* o = static_cast<const Element*>(a.out) + off;
  const Element* d = static_cast<const Element*>(a.dout) + off;
  float sum = 0.f;
  for (int c = lane * 8; c < a.head_dim; c += 256) {
    const uint4 ov = *reinterpret_cast<const uint4*>(o + c);
    const uint4 dv = *reinterpret_cast<const uint4*>(d + c);
    const Element* oe = reinterpret_cast<const Element*>(&ov);
    const Element* de = reinterpret_cast<const Element*>(&dv);
#pragma unroll
    for (int t = 0; t < 8; ++t) sum += float(oe[t]) * float(de[t]);
  }
#pragma unroll
  for (int s = 16; s > 0; s >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, s);
  if (lane == 0) {
    const float l = a.lse[bh * a.seqlen_q + i];
    a.lse_log2[r] = l == -CUDART_INF_F ? CUDART_INF_F : l * 1.4426950408889634f;
    a.delta[r] = sum;
    if (a.delta_plain != nullptr) a.delta_plain[bh * a.seqlen_q + i] = sum;
  }
}

struct PostArgs {
  const float* dq_acc;
  void* dq;
  int64_t dq_batch_stride, dq_row_stride, dq_head_stride;
  int32_t num_heads, seqlen_q, m_blocks;
  float softmax_scale;
};

// grid (m_blocks, H, B), kNumMmaThreads threads: one accumulator tile per CTA.
template <typename Traits>
__global__ void __launch_bounds__(Traits::kNumMmaThreads) bwd_post_kernel(const PostArgs a) {
  using Element = typename Traits::Element;
  constexpr int BM = Traits::kBlockM, D = Traits::kHeadDim, T = Traits::kNumMmaThreads;
  const int m = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int tid = threadIdx.x;
  typename Traits::TiledMmadQ mma;
  auto thr = mma.get_thread_slice(tid);
  Tensor c = thr.partition_C(make_identity_tensor(Shape<Int<BM>, Int<D>>{}));
  constexpr int kVec = decltype(size(c))::value / 4;
  const int64_t tile = (static_cast<int64_t>(b) * a.num_heads + h) * a.m_blocks + m;
  const float4* src = reinterpret_cast<const float4*>(a.dq_acc + tile * Traits::kDqFloats);
  Element* dq = static_cast<Element*>(a.dq) + b * a.dq_batch_stride + int64_t(h) * a.dq_head_stride;
#pragma unroll
  for (int k = 0; k < kVec; ++k) {
    const float4 v = src[k * T + tid];
    const float x[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int e = 0; e < 4; e += 2) {  // (e, e + 1): adjacent columns of one row
      const int row = m * BM + get<0>(c(4 * k + e));
      const int col = get<1>(c(4 * k + e));
      if (row >= a.seqlen_q) continue;
      cutlass::Array<Element, 2> pr;
      pr[0] = Element(x[e] * a.softmax_scale);
      pr[1] = Element(x[e + 1] * a.softmax_scale);
      *reinterpret_cast<cutlass::Array<Element, 2>*>(dq + int64_t(row) * a.dq_row_stride + col) = pr;
    }
  }
}

}  // namespace bwd
}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
