// Online softmax for the sm90 consumers, on the "row x column" view of a
// wgmma accumulator (each thread: 2 rows, g and g + 8 of its warp's 16; a
// row's columns spread over the 4 lanes of a quad, as on sm80), plus the
// layout helpers that build those views and reinterpret S as the register A
// operand of O += P V.
#pragma once

#include <cute/tensor.hpp>
#include <cutlass/numeric_conversion.h>
#include <math_constants.h>

#include "../softmax.cuh"  // quad_max / quad_sum: a row lives in the 4 lanes of a quad here too

namespace flashmask {
namespace cuda {
namespace sm90 {

using namespace cute;

// wgmma accumulator ((2, 2, N/8), MMA_M, MMA_N) -> ((2, MMA_M), (2, N/8, MMA_N))
template <class Layout>
__device__ __forceinline__ auto rowcol_layout(Layout acc) {
  static_assert(decltype(rank<0>(acc))::value == 3, "sm90 accumulator layout");
  static_assert(decltype(size<0, 0>(acc))::value == 2 && decltype(size<0, 1>(acc))::value == 2);
  return make_layout(make_layout(get<0, 1>(acc), get<1>(acc)),
                     make_layout(get<0, 0>(acc), get<0, 2>(acc), get<2>(acc)));
}

// S accumulator ((2, 2, N/8), MMA_M, MMA_N) -> A-operand registers of a
// 16-bit wgmma with K = N: ((2, 2, 2), MMA_M, N/16 * MMA_N)
template <class Layout>
__device__ __forceinline__ auto acc_as_a_layout(Layout acc) {
  auto l = logical_divide(get<0, 2>(acc), Tile<_2>{});  // ((2, N/16))
  return make_layout(make_layout(get<0, 0>(acc), get<0, 1>(acc), get<0, 0>(l)), get<1>(acc),
                     coalesce(make_layout(get<2>(acc), get<0, 1>(l))));
}

// dst = src converted element-wise (same layout, both register tensors)
template <class TSrc, class TDst>
__device__ __forceinline__ void convert_into(const TSrc& src, TDst& dst) {
  using From = typename TSrc::value_type;
  using To = typename TDst::value_type;
  constexpr int N = decltype(size(src))::value;
  static_assert(N == decltype(size(dst))::value, "sizes");
  cutlass::NumericArrayConverter<To, From, N> conv;
  *reinterpret_cast<cutlass::Array<To, N>*>(dst.data()) =
      conv(*reinterpret_cast<const cutlass::Array<From, N>*>(src.data()));
}

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

  // Row sums over the quad; inv[r] = 1 / l (0 for rows that saw no key),
  // lse[r] = natural-log sum-exp of the scaled scores (-inf for those rows).
  __device__ __forceinline__ void finalize(float softmax_scale, float (&inv)[kRows], float (&lse)[kRows]) {
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const float l = quad_sum(row_sum[r]);
      const bool any = l > 0.f;
      inv[r] = any ? 1.f / l : 0.f;
      lse[r] = any ? row_max[r] * softmax_scale + logf(l) : -CUDART_INF_F;
    }
  }
};

}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
