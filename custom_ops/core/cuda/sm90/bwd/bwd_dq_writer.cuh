// dQ writer warp of the sm90a backward (warp 1): per visited block, for each
// of the dQ tile's kDqSlices slices, waits for the consumers' fp32 slice in
// shared memory and bulk reduce-adds it into the accumulator (deterministic
// mode: after the next higher visible key block, by the per-(b, h, m)
// semaphore), then hands the buffer back.
#pragma once

#include "bwd_mask.cuh"
#include "bwd_ptx.cuh"
#include "bwd_traits.h"

namespace flashmask {
namespace cuda {
namespace sm90 {
namespace bwd {

template <typename Traits>
__device__ __forceinline__ void dq_writer_warp(const BwdKernelParams<Traits>& p,
                                               typename Traits::SharedStorage& ss, int b, int hk, int n) {
  constexpr int BM = Traits::kBlockM, BN = Traits::kBlockN;
  constexpr int kBarThreads = Traits::kNumMmaThreads + 32;
  const int lane = threadIdx.x % 32;
  cutlass::arch::NamedBarrier::arrive(kBarThreads, Traits::kBarDqEmpty);  // the buffer starts empty
  walk_blocks<Traits>(
      p, b, hk, n, [&](int, int) {},
      [&](int hq, int hm, int m, int) {
        int target = 0;
        if (p.deterministic) target = next_visible_block<BM, BN>(p, b, hm, m, n) + 1;
        const int64_t tile = (static_cast<int64_t>(b) * p.num_heads + hq) * p.m_blocks + m;
#pragma unroll 1
        for (int s = 0; s < Traits::kDqSlices; ++s) {
          cutlass::arch::NamedBarrier::sync(kBarThreads, Traits::kBarDqFull);
          if (lane == 0) {
            float* dst = p.dq_acc + tile * Traits::kDqFloats + s * Traits::kDqSliceFloats;
            constexpr int kBytes = Traits::kDqSliceFloats * int(sizeof(float));
            if (p.deterministic) {
              int32_t* sem = p.sem + tile;
              if (s == 0)
                while (ld_acquire_gpu(sem) != target) __nanosleep(32);
              bulk_reduce_add_f32(dst, ss.smem_dq.data(), kBytes);
              bulk_commit();
              if (s + 1 < Traits::kDqSlices) {
                bulk_wait_read_all();
              } else {
                bulk_wait_all();  // the adds are done before the next lower key block starts its own
                fence_proxy_async_global();
                __threadfence();
                st_release_gpu(sem, n + 1);
              }
            } else {
              bulk_reduce_add_f32(dst, ss.smem_dq.data(), kBytes);
              bulk_commit();
              bulk_wait_read_all();  // smem_dq may be overwritten
            }
          }
          __syncwarp();
          cutlass::arch::NamedBarrier::arrive(kBarThreads, Traits::kBarDqEmpty);
        }
      });
  if (lane == 0) bulk_wait_all();
}

}  // namespace bwd
}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
