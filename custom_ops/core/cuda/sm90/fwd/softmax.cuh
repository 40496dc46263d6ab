// Online softmax for the sm90 forward consumers, on the "row x column" view
// of a wgmma accumulator (accum_layout.cuh).
#pragma once

#include <cute/tensor.hpp>
#include <math_constants.h>

#include "core/cuda/common/softmax.cuh"  // quad_max / quad_sum (a row lives in the 4 lanes of a quad here too), row_norm
#include "core/cuda/sm90/common/accum_layout.cuh"

namespace flashmask {
namespace cuda {
namespace sm90 {

using namespace cute;

// Running max (raw score units) and per-thread partial row sums of kRows rows.
template <int kRows>
struct OnlineSoftmax {
  float row_max[kRows], row_sum[kRows];

  __device__ __forceinline__ void reset() {
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      row_max[r] = -CUDART_INF_F;
      row_sum[r] = 0.f;
    }
  }

  // s: rowcol view of raw scores (-inf where masked) -> unnormalised
  // probabilities in place; alpha[r] = factor for what was accumulated so far.
  template <class TS>
  __device__ __forceinline__ void update(TS& s, float scale_log2, float (&alpha)[kRows]) {
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      float mx = row_max[r];
#pragma unroll
      for (int c = 0; c < size<1>(s); ++c) mx = fmaxf(mx, s(r, c));
      mx = quad_max(mx);
      const float m_scaled = mx == -CUDART_INF_F ? 0.f : mx * scale_log2;
      alpha[r] = exp2f(row_max[r] * scale_log2 - m_scaled);  // 0 when the old max is -inf
      row_max[r] = mx;
      float sum = 0.f;
#pragma unroll
      for (int c = 0; c < size<1>(s); ++c) {
        const float e = exp2f(s(r, c) * scale_log2 - m_scaled);
        s(r, c) = e;
        sum += e;
      }
      row_sum[r] = row_sum[r] * alpha[r] + sum;
    }
  }

  template <class TO>
  __device__ __forceinline__ void rescale(TO& o, const float (&alpha)[kRows]) {
#pragma unroll
    for (int r = 0; r < kRows; ++r)
#pragma unroll
      for (int c = 0; c < size<1>(o); ++c) o(r, c) *= alpha[r];
  }

  // Row sums over the quad, then row_norm (common/softmax.cuh): norm[r]
  // (0 for rows that saw no key, which also select O = 0) and lse[r] with the
  // sink's term (sink = -inf: none).
  __device__ __forceinline__ void finalize(float softmax_scale, float sink, RowNorm (&rn)[kRows]) {
#pragma unroll
    for (int r = 0; r < kRows; ++r) rn[r] = row_norm(row_max[r], quad_sum(row_sum[r]), softmax_scale, sink);
  }
};

}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
