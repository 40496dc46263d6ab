// Producer warp of the sm90a backward (warp 0, one elected lane): TMA of this
// CTA's K and V once, then per visited (query head, query block) Q + lse on
// the Q pipeline and dO + delta on the dO pipeline.
#pragma once

#include <cute/arch/copy_sm90_tma.hpp>

#include "core/cuda/sm90/bwd/mask.cuh"
#include "core/cuda/sm90/bwd/traits.h"

namespace flashmask {
namespace cuda {
namespace sm90 {
namespace bwd {

template <typename Traits>
__device__ __forceinline__ void producer_warp(const BwdKernelParams<Traits>& p,
                                              typename Traits::SharedStorage& ss,
                                              typename Traits::PipelineQ& pipe_q,
                                              typename Traits::PipelinedO& pipe_do, int b, int hk, int n) {
  constexpr int BM = Traits::kBlockM, BN = Traits::kBlockN, D = Traits::kHeadDim;
  using HD = Int<D>;
  Tensor mQ = p.tma_q.get_tma_tensor(p.shape_q);  // (Sq, D, H, B)
  Tensor mdO = p.tma_do.get_tma_tensor(p.shape_q);
  Tensor mK = p.tma_k.get_tma_tensor(p.shape_k);  // (Sk, D, Hk, B)
  Tensor mV = p.tma_v.get_tma_tensor(p.shape_k);
  Tensor sQ = make_tensor(make_smem_ptr(ss.smem_q.data()), typename Traits::SmemLayoutQ{});
  Tensor sdO = make_tensor(make_smem_ptr(ss.smem_do.data()), typename Traits::SmemLayoutdO{});
  Tensor sK = make_tensor(make_smem_ptr(ss.smem_k.data()), typename Traits::SmemLayoutK{});
  Tensor sV = make_tensor(make_smem_ptr(ss.smem_v.data()), typename Traits::SmemLayoutK{});

  {
    auto& bar_kv = *reinterpret_cast<cutlass::arch::ClusterTransactionBarrier*>(&ss.bar_kv);
    bar_kv.arrive_and_expect_tx(Traits::kTmaBytesKV);
    Tensor gK = local_tile(mK(_, _, hk, b), Shape<Int<BN>, HD>{}, make_coord(n, _0{}));
    Tensor gV = local_tile(mV(_, _, hk, b), Shape<Int<BN>, HD>{}, make_coord(n, _0{}));
    auto [tKgK, tKsK] = tma_partition(p.tma_k, _0{}, Layout<_1>{}, group_modes<0, 2>(sK), group_modes<0, 2>(gK));
    auto [tVgV, tVsV] = tma_partition(p.tma_v, _0{}, Layout<_1>{}, group_modes<0, 2>(sV), group_modes<0, 2>(gV));
    copy(p.tma_k.with(reinterpret_cast<uint64_t&>(ss.bar_kv), 0), tKgK, tKsK);
    copy(p.tma_v.with(reinterpret_cast<uint64_t&>(ss.bar_kv), 0), tVgV, tVsV);
  }

  auto q_state = cutlass::make_producer_start_state<typename Traits::PipelineQ>();
  auto do_state = cutlass::make_producer_start_state<typename Traits::PipelinedO>();
  walk_blocks<Traits>(
      p, b, hk, n, [&](int, int) {},
      [&](int hq, int, int m, int) {
        const int64_t row0 = (static_cast<int64_t>(b) * p.num_heads + hq) * p.m_blocks * BM + int64_t(m) * BM;
        {
          Tensor gQ = local_tile(mQ(_, _, hq, b), Shape<Int<BM>, HD>{}, make_coord(_, _0{}));
          auto [tQgQ, tQsQ] =
              tma_partition(p.tma_q, _0{}, Layout<_1>{}, group_modes<0, 2>(sQ), group_modes<0, 2>(gQ));
          pipe_q.producer_acquire(q_state);
          uint64_t* bar = pipe_q.producer_get_barrier(q_state);
          copy(p.tma_q.with(*bar, 0), tQgQ(_, m), tQsQ(_, q_state.index()));
          SM90_BULK_COPY_G2S::copy(p.lse_log2 + row0, bar, ss.smem_lse.data() + q_state.index() * BM,
                                   BM * int(sizeof(float)));
          ++q_state;
        }
        {
          Tensor gdO = local_tile(mdO(_, _, hq, b), Shape<Int<BM>, HD>{}, make_coord(_, _0{}));
          auto [tdOgdO, tdOsdO] =
              tma_partition(p.tma_do, _0{}, Layout<_1>{}, group_modes<0, 2>(sdO), group_modes<0, 2>(gdO));
          pipe_do.producer_acquire(do_state);
          uint64_t* bar = pipe_do.producer_get_barrier(do_state);
          copy(p.tma_do.with(*bar, 0), tdOgdO(_, m), tdOsdO(_, do_state.index()));
          SM90_BULK_COPY_G2S::copy(p.delta + row0, bar, ss.smem_delta.data() + do_state.index() * BM,
                                   BM * int(sizeof(float)));
          ++do_state;
        }
      });
  // no TMA may still be in flight into a CTA whose consumers have left
  pipe_q.producer_tail(q_state);
  pipe_do.producer_tail(do_state);
}

}  // namespace bwd
}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
