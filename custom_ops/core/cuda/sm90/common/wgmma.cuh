// The asynchronous warpgroup GEMM issue shared by the sm90a forward and
// backward: C (+)= A B over the K mode on one warpgroup, as one committed
// wgmma group. The caller decides where to wait (warpgroup_wait<N>), which is
// what lets softmax or mask work run under the tensor cores.
#pragma once

#include <cute/arch/mma_sm90_gmma.hpp>
#include <cute/atom/mma_traits_sm90_gmma.hpp>
#include <cute/tensor.hpp>

#include <type_traits>

namespace flashmask {
namespace cuda {
namespace sm90 {

template <class TiledMma, class TA, class TB, class TC>
__device__ __forceinline__ void wg_gemm(TiledMma& mma, const TA& a, const TB& b, TC& c, bool zero_init) {
  // A from registers (P in the forward's P V): fence it like the accumulator
  constexpr bool kRegA =
      !std::is_base_of<cute::GMMA::DescriptorIterator, typename TiledMma::FrgTypeA>::value;
  if constexpr (kRegA) cute::warpgroup_fence_operand(const_cast<TA&>(a));
  cute::warpgroup_fence_operand(c);
  cute::warpgroup_arrive();
  mma.accumulate_ = zero_init ? cute::GMMA::ScaleOut::Zero : cute::GMMA::ScaleOut::One;
#pragma unroll
  for (int k = 0; k < cute::size<2>(a); ++k) {
    cute::gemm(mma, a(cute::_, cute::_, k), b(cute::_, cute::_, k), c);
    mma.accumulate_ = cute::GMMA::ScaleOut::One;
  }
  cute::warpgroup_commit_batch();
  cute::warpgroup_fence_operand(c);
  if constexpr (kRegA) cute::warpgroup_fence_operand(const_cast<TA&>(a));
}

}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
