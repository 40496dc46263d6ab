// The sleeping wait on an mbarrier phase, for warps that wait on another
// warp's message (the forward's mask warps, the backward's order ring).
#pragma once

#include <cute/arch/util.hpp>

namespace flashmask {
namespace cuda {
namespace sm90 {

// Until the phase of the given parity completed (acquire). The thread sleeps
// inside try_wait up to the hint, so a waiting warp takes no issue slots from
// the consumers. (sm_90 PTX: empty for another architecture's pass, where no
// kernel calls it.)
__device__ __forceinline__ void mbarrier_wait_parity(const uint64_t* bar, uint32_t parity) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  const uint32_t a = cute::cast_smem_ptr_to_uint(bar);
  uint32_t done = 0;
  while (!done)
    asm volatile(
        "{\n\t.reg .pred P;\n\t"
        "mbarrier.try_wait.parity.shared::cta.b64 P, [%1], %2, %3;\n\t"
        "selp.b32 %0, 1, 0, P;\n\t}"
        : "=r"(done)
        : "r"(a), "r"(parity), "r"(1000000u)  // ns; completion wakes it earlier
        : "memory");
#endif
}

}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
