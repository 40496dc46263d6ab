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

// A wgmma shared-memory descriptor stepped by one 64-bit add. CuTe's own
// iterator (CUTLASS 4.x) adds to the low word only, which compiles to an add
// plus a move of the unchanged high word into the operand's register pair,
// for both operands of every wgmma (the d128 backward's loop: 677 -> 624
// instructions with this one). The start address is in the low 14 bits, so
// the sums agree.
struct Desc64Iterator {
  using reference = uint64_t;
  using element_type = uint64_t;
  using value_type = uint64_t;
  uint64_t desc;
  __device__ __forceinline__ uint64_t operator*() const { return desc; }
  template <class Index>
  __device__ __forceinline__ Desc64Iterator operator+(const Index& offset) const {
    return {desc + uint64_t(offset)};
  }
  template <class Index>
  __device__ __forceinline__ uint64_t operator[](const Index& i) const {
    return desc + uint64_t(i);
  }
};

// A descriptor fragment as the same layout over Desc64Iterator; a register
// fragment as it is.
template <class T>
__device__ __forceinline__ auto desc64_view(const T& t) {
  using Iter = std::remove_cv_t<std::remove_reference_t<decltype(t.data())>>;
  if constexpr (std::is_base_of<cute::GMMA::DescriptorIterator, Iter>::value)
    return cute::make_tensor(Desc64Iterator{uint64_t(t.data().desc_)}, t.layout());
  else
    return t;
}

template <class TiledMma, class TA, class TB, class TC>
__device__ __forceinline__ void wg_gemm_k(TiledMma& mma, const TA& a, const TB& b, TC& c) {
#pragma unroll
  for (int k = 0; k < cute::size<2>(a); ++k) {
    cute::gemm(mma, a(cute::_, cute::_, k), b(cute::_, cute::_, k), c);
    mma.accumulate_ = cute::GMMA::ScaleOut::One;
  }
}

// kDesc64: the smem operands' descriptors stepped by Desc64Iterator (the
// backward), else by CuTe's iterator (the forward: its d256 came out 2-4 %
// slower with Desc64Iterator in the same A/B, #29).
template <bool kDesc64 = true, class TiledMma, class TA, class TB, class TC>
__device__ __forceinline__ void wg_gemm(TiledMma& mma, const TA& a, const TB& b, TC& c, bool zero_init) {
  // A from registers (P in the forward's P V): fence it like the accumulator
  constexpr bool kRegA =
      !std::is_base_of<cute::GMMA::DescriptorIterator, typename TiledMma::FrgTypeA>::value;
  if constexpr (kRegA) cute::warpgroup_fence_operand(const_cast<TA&>(a));
  cute::warpgroup_fence_operand(c);
  cute::warpgroup_arrive();
  mma.accumulate_ = zero_init ? cute::GMMA::ScaleOut::Zero : cute::GMMA::ScaleOut::One;
  if constexpr (kDesc64) {
    auto a64 = desc64_view(a);
    auto b64 = desc64_view(b);
    wg_gemm_k(mma, a64, b64, c);
  } else {
    wg_gemm_k(mma, a, b, c);
  }
  cute::warpgroup_commit_batch();
  cute::warpgroup_fence_operand(c);
  if constexpr (kRegA) cute::warpgroup_fence_operand(const_cast<TA&>(a));
}

}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
