// Small device helpers of the sm90a backward: bulk (TMA-engine) reduce-add of
// fp32 tiles, proxy fences and the acquire/release accesses of the dQ tile
// states and the deterministic-mode semaphores. (The wgmma issue is ../wgmma.cuh.)
#pragma once

#include <cute/tensor.hpp>

namespace flashmask {
namespace cuda {
namespace sm90 {
namespace bwd {

// (PTX of sm_90 only: the bodies are empty when this header is compiled for
// another architecture, where the kernel body is compiled out anyway.)
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define FM90_BWD_ASM 1
#endif
__device__ __forceinline__ void bulk_reduce_add_f32(float* gmem, const float* smem, int bytes) {
#ifdef FM90_BWD_ASM
  const uint32_t s = cute::cast_smem_ptr_to_uint(smem);
  asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], %2;\n" ::"l"(gmem),
               "r"(s), "r"(bytes)
               : "memory");
#endif
}
__device__ __forceinline__ void bulk_commit() {
#ifdef FM90_BWD_ASM
  asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
#endif
}
// until at most kPending of the committed bulk groups still read their smem
template <int kPending>
__device__ __forceinline__ void bulk_wait_read() {
#ifdef FM90_BWD_ASM
  asm volatile("cp.async.bulk.wait_group.read %0;\n" ::"n"(kPending) : "memory");
#endif
}
__device__ __forceinline__ void bulk_wait_all() {
#ifdef FM90_BWD_ASM
  asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void fence_proxy_async_global() {
#ifdef FM90_BWD_ASM
  asm volatile("fence.proxy.async.global;\n" ::: "memory");
#endif
}
__device__ __forceinline__ int ld_acquire_gpu(const int32_t* p) {
  int v = 0;
#ifdef FM90_BWD_ASM
  asm volatile("ld.acquire.gpu.global.b32 %0, [%1];\n" : "=r"(v) : "l"(p) : "memory");
#endif
  return v;
}
__device__ __forceinline__ void st_release_gpu(int32_t* p, int v) {
#ifdef FM90_BWD_ASM
  asm volatile("st.release.gpu.global.b32 [%0], %1;\n" ::"l"(p), "r"(v) : "memory");
#endif
}
__device__ __forceinline__ void red_release_or_gpu(int32_t* p, int v) {
#ifdef FM90_BWD_ASM
  asm volatile("red.release.gpu.global.or.b32 [%0], %1;\n" ::"l"(p), "r"(v) : "memory");
#endif
}

}  // namespace bwd
}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
