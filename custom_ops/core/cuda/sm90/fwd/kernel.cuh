// The sm90a forward kernel: persistent, warp-specialized.
//   warpgroup 0: producer (setmaxnreg.dec); its warp 0 runs the scheduler,
//                the TMA loads and the meta messages, warps 1-3 are the mask
//                warps (partial blocks' row bits, mask_warps.cuh).
//   warpgroups 1, 2: consumers (setmaxnreg.inc), 64 query rows each.
// Barriers: K and V pipelines (TMA, kStages each), the meta pipeline
// (producer or mask warp -> consumers, kMetaStages), Q full (TMA) and Q
// empty per Q buffer (kQStages), mask jobs (kJobSlots); named: the
// consumers' O staging (kTmaStoreO) and their ping-pong turns (kPingPong).
#pragma once

#include "core/cuda/sm90/fwd/traits.h"
#include "core/cuda/sm90/fwd/mainloop_consumer.cuh"
#include "core/cuda/sm90/fwd/mainloop_producer.cuh"
#include "core/cuda/sm90/common/pipeline_params.cuh"

namespace flashmask {
namespace cuda {
namespace sm90 {

template <typename Traits>
__global__ void __launch_bounds__(Traits::kNumThreads, 1)
    fwd_kernel_sm90(const __grid_constant__ KernelParams<Traits> p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using SS = typename Traits::SharedStorage;
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  SS& ss = *reinterpret_cast<SS*>(smem_raw);

  const int warp_group = cutlass::canonical_warp_group_idx();
  const int warp = cutlass::canonical_warp_idx_sync();
  const int lane = threadIdx.x % 32;

  if (warp == 0 && lane == 0) {
    cute::prefetch_tma_descriptor(p.tma_q.get_tma_descriptor());
    cute::prefetch_tma_descriptor(p.tma_k.get_tma_descriptor());
    cute::prefetch_tma_descriptor(p.tma_v.get_tma_descriptor());
    if constexpr (Traits::kTmaStoreO) cute::prefetch_tma_descriptor(p.tma_o.get_tma_descriptor());
    for (int i = 0; i < Traits::kQStages; ++i) {
      cutlass::arch::ClusterTransactionBarrier::init(&ss.bar_q_full[i], 1);
      cutlass::arch::ClusterBarrier::init(&ss.bar_q_empty[i], Traits::kQEmptyArrivals);
    }
    for (int i = 0; i < Traits::kJobSlots; ++i) cutlass::arch::ClusterBarrier::init(&ss.bar_job[i], 1);
  }

  const auto kv_params =
      tma_pipeline_params<typename Traits::PipelineKV>(warp_group, Traits::kTmaBytesKV, Traits::kNumMmaThreads);
  typename Traits::PipelineKV pipe_k(ss.pipe_k, kv_params, Shape<_1, _1, _1>{});
  typename Traits::PipelineKV pipe_v(ss.pipe_v, kv_params, Shape<_1, _1, _1>{});

  typename Traits::PipelineMeta::Params meta_params;
  meta_params.role = warp_group == 0 ? Traits::PipelineMeta::ThreadCategory::Producer
                                     : Traits::PipelineMeta::ThreadCategory::Consumer;
  meta_params.producer_arv_count = 32;
  meta_params.consumer_arv_count = Traits::kNumMmaThreads;
  typename Traits::PipelineMeta pipe_meta(ss.pipe_meta, meta_params);

  cutlass::arch::fence_barrier_init();
  __syncthreads();

  if (warp_group == 0) {
    cutlass::arch::warpgroup_reg_dealloc<Traits::kProducerRegs>();
    if (warp == 0)
      ProducerMainloop<Traits>{p, ss, pipe_k, pipe_v, pipe_meta}.run();
    else if (warp <= Traits::kMaskWarps)
      MaskWarps<Traits>{p, ss, pipe_meta}.run(warp - 1);
  } else {
    cutlass::arch::warpgroup_reg_alloc<Traits::kConsumerRegs>();
    ConsumerMainloop<Traits>{p, ss, pipe_k, pipe_v, pipe_meta}.run(threadIdx.x - 128);
  }
#endif
}

}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
