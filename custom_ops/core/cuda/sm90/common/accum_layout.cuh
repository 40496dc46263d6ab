// Register views of wgmma accumulators, shared by the forward and backward
// consumers: the "row x column" view (each thread: 2 rows, g and g + 8 of its
// warp's 16; a row's columns spread over the 4 lanes of a quad, as on sm80),
// an accumulator reinterpreted as the register A operand of the next wgmma
// (S -> P for O += P V), and element-wise conversion between register tensors.
#pragma once

#include <cute/tensor.hpp>
#include <cutlass/numeric_conversion.h>

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

}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
