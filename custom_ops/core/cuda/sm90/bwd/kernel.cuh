// The sm90a FlashMask backward kernel: one CTA per (key block n, kv head,
// batch), warp-specialized, 384 threads.
//   warpgroup 0 (setmaxnreg.dec):
//     warp 0 = producer: TMA of K, V once; then for every visited (query
//              head of the group, query block m): TMA Q(m) + bulk copy of
//              its lse (Q pipeline) and TMA dO(m) + delta (dO pipeline).
//     warp 1 = dQ writer: per visited block, waits for each consumer
//              warpgroup's part of the dQ tile in smem, bulk reduce-adds it
//              (cp.reduce.async.bulk.add.f32) into the fp32 accumulator,
//              releases that part; deterministic mode: first waits on a
//              per-(b, h, m) semaphore for the next higher visiting key
//              block (fixed descending order).
//     warp 3 = dQ zeroer: walks ahead and zeroes the dQ tiles no CTA has
//              claimed yet (the writers wait for that).
//     warp 2 = deterministic mode: scans each visited block's successor in
//              the add order ahead of the writer (sm90/bwd/dq_order.cuh); else exits.
//   warpgroups 1, 2 (setmaxnreg.inc): consumers, 64 keys each, or (d192, d256)
//     sharing 64 keys and splitting the head dim (see sm90/bwd/traits.h for the
//     GEMMs). Fully masked blocks are never visited;
//     unmasked blocks run with no mask code.
// All roles walk the same (head, m) sequence (walk_blocks), so no messages
// are needed between them.
#pragma once

#include <cute/arch/copy_sm90_tma.hpp>

#include "core/cuda/sm90/common/pipeline_params.cuh"
#include "core/cuda/sm90/bwd/consumer.cuh"
#include "core/cuda/sm90/bwd/consumer_split_d.cuh"
#include "core/cuda/sm90/bwd/dq_order.cuh"
#include "core/cuda/sm90/bwd/dq_writer.cuh"
#include "core/cuda/sm90/bwd/producer.cuh"
#include "core/cuda/sm90/bwd/traits.h"

namespace flashmask {
namespace cuda {
namespace sm90 {
namespace bwd {

template <typename Traits>
__global__ void __launch_bounds__(Traits::kNumThreads, 1)
    bwd_kernel_sm90(const __grid_constant__ BwdKernelParams<Traits> p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using SS = typename Traits::SharedStorage;
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  SS& ss = *reinterpret_cast<SS*>(smem_raw);
  // deterministic mode: highest key block first (it waits only on higher key
  // blocks of its (b, kv head), which therefore are already resident)
  const int n = p.deterministic ? gridDim.x - 1 - blockIdx.x : blockIdx.x;
  const int hk = blockIdx.y, b = blockIdx.z;

  const int warp_group = cutlass::canonical_warp_group_idx();
  const int warp = cutlass::canonical_warp_idx_sync();
  const int lane = threadIdx.x % 32;

  if (warp == 0 && lane == 0) {
    cute::prefetch_tma_descriptor(p.tma_q.get_tma_descriptor());
    cute::prefetch_tma_descriptor(p.tma_do.get_tma_descriptor());
    cute::prefetch_tma_descriptor(p.tma_k.get_tma_descriptor());
    cute::prefetch_tma_descriptor(p.tma_v.get_tma_descriptor());
    if constexpr (Traits::kTmaStoreDkv) {
      cute::prefetch_tma_descriptor(p.tma_dk.get_tma_descriptor());
      cute::prefetch_tma_descriptor(p.tma_dv.get_tma_descriptor());
    }
    cutlass::arch::ClusterTransactionBarrier::init(&ss.bar_kv, 1);
    init_order_ring<Traits>(ss.order);
  }

  typename Traits::PipelineQ pipe_q(
      ss.pipe_q,
      tma_pipeline_params<typename Traits::PipelineQ>(warp_group, Traits::kTmaBytesQ, Traits::kNumMmaThreads),
      Shape<_1, _1, _1>{});
  typename Traits::PipelinedO pipe_do(
      ss.pipe_do,
      tma_pipeline_params<typename Traits::PipelinedO>(warp_group, Traits::kTmaBytesdO, Traits::kNumMmaThreads),
      Shape<_1, _1, _1>{});

  cutlass::arch::fence_barrier_init();
  __syncthreads();

  if (warp_group == 0) {
    cutlass::arch::warpgroup_reg_dealloc<Traits::kProducerRegs>();
    if (warp == 0) {
      if (lane == 0) producer_warp<Traits>(p, ss, pipe_q, pipe_do, b, hk, n);
    } else if (warp == 1) {
      dq_writer_warp<Traits>(p, ss, b, hk, n);
    } else if (warp == 2) {
      if (p.deterministic) order_scanner_warp<Traits>(p, ss.order, b, hk, n);
    } else if (warp == 3) {
      dq_zeroer_warp<Traits>(p, b, hk, n);
    }
  } else {
    cutlass::arch::warpgroup_reg_alloc<Traits::kConsumerRegs>();
    if constexpr (Traits::kSplitD)
      consumer_warpgroups_split_d<Traits>(p, ss, pipe_q, pipe_do, threadIdx.x - 128, b, hk, n);
    else
      consumer_warpgroups<Traits>(p, ss, pipe_q, pipe_do, threadIdx.x - 128, b, hk, n);
  }
#endif
}

}  // namespace bwd
}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
