// Consumer warpgroups of the sm90a backward, d64 / d128 (64 keys each): per
// visited block S = Q K^T and dP = dO V^T, P and dS (mask only on partial
// blocks), dV += P^T dO and dK += dS^T Q in registers, dQ = dS K into the
// writer's shared-memory tile; dK, dV at the end (d128 staged in smem and
// TMA-stored, d64 from registers). d192 / d256: sm90/bwd/consumer_split_d.cuh.
#pragma once

#include "core/cuda/sm90/common/accum_layout.cuh"
#include "core/cuda/sm90/common/wgmma.cuh"
#include "core/cuda/sm90/bwd/consumer_steps.cuh"
#include "core/cuda/sm90/bwd/mask.cuh"
#include "core/cuda/sm90/bwd/ptx.cuh"
#include "core/cuda/sm90/bwd/traits.h"

namespace flashmask {
namespace cuda {
namespace sm90 {
namespace bwd {

template <typename Traits>
__device__ __forceinline__ void consumer_warpgroups(const BwdKernelParams<Traits>& p,
                                                    typename Traits::SharedStorage& ss,
                                                    typename Traits::PipelineQ& pipe_q,
                                                    typename Traits::PipelinedO& pipe_do, int tidx, int b,
                                                    int hk, int n) {
  using Element = typename Traits::Element;
  constexpr int BM = Traits::kBlockM, BN = Traits::kBlockN, D = Traits::kHeadDim;
  constexpr int kPartial = static_cast<int>(TileKind::kPartial);
  static_assert(!Traits::kSplitD && Traits::kDsBufs == 2 && Traits::kDqSlices == 1, "the key-split variant");

  auto [sQ, sdO, sQt, sdOt, sK, sV, sKt, sdS, sdSt] = smem_views<Traits>(ss);

  typename Traits::TiledMmaSdP mma_sdp;
  typename Traits::TiledMmadKV mma_dkv;
  typename Traits::TiledMmadQ mma_dq;
  // smem operand descriptors are per warpgroup: slice at the warpgroup's first
  // thread. Broadcast from lane 0 so the compiler knows it is warp-uniform: the
  // descriptors then live in uniform registers, not rebuilt per wgmma (R2UR).
  const int wg = __shfl_sync(0xffffffffu, tidx / 128, 0);
  const int wg_first = wg * 128;
  auto wg_sdp = mma_sdp.get_thread_slice(wg_first);
  auto wg_dkv = mma_dkv.get_thread_slice(wg_first);
  auto wg_dq = mma_dq.get_thread_slice(wg_first);
  Tensor tSrK = wg_sdp.partition_fragment_A(sK);     // (MMA, MMA_M, MMA_K)
  Tensor tSrV = wg_sdp.partition_fragment_A(sV);
  Tensor tSrQ = wg_sdp.partition_fragment_B(sQ);     // (MMA, MMA_N, MMA_K, stages)
  Tensor tSrdO = wg_sdp.partition_fragment_B(sdO);
  Tensor tdVrdO = wg_dkv.partition_fragment_B(sdOt);  // (MMA, MMA_N, MMA_K, stages)
  Tensor tdKrQ = wg_dkv.partition_fragment_B(sQt);
  Tensor tdQrdS = wg_dq.partition_fragment_A(sdS);    // (MMA, MMA_M, MMA_K, 2)
  Tensor tdQrK = wg_dq.partition_fragment_B(sKt);     // (MMA, MMA_N, MMA_K)

  auto thr_sdp = mma_sdp.get_thread_slice(tidx);
  Tensor tSrS = partition_fragment_C(mma_sdp, Shape<Int<BN>, Int<BM>>{});
  Tensor tSrdP = partition_fragment_C(mma_sdp, Shape<Int<BN>, Int<BM>>{});
  Tensor tdVrdV = partition_fragment_C(mma_dkv, Shape<Int<BN>, Int<D>>{});
  Tensor tdKrdK = partition_fragment_C(mma_dkv, Shape<Int<BN>, Int<D>>{});
  Tensor tdQrdQ = partition_fragment_C(mma_dq, Shape<Int<BM>, Int<D>>{});

  Tensor tScS = thr_sdp.partition_C(make_identity_tensor(Shape<Int<BN>, Int<BM>>{}));
  Tensor s_rc = make_tensor(tSrS.data(), rowcol_layout(tSrS.layout()));
  Tensor dp_rc = make_tensor(tSrdP.data(), rowcol_layout(tSrdP.layout()));
  Tensor cs_rc = make_tensor(tScS.data(), rowcol_layout(tScS.layout()));

  // P^T and dS^T in the element type, as A operands of dV / dK
  Tensor rP = make_tensor<Element>(tSrS.layout());
  Tensor rdS = make_tensor<Element>(tSrdP.layout());
  Tensor tdVrP = make_tensor(rP.data(), acc_as_a_layout(tSrS.layout()));
  Tensor tdKrdS = make_tensor(rdS.data(), acc_as_a_layout(tSrdP.layout()));
  // dS^T to smem by stmatrix: (CPY, CPY_M, CPY_N, 2 buffers)
  auto stsm = stsm_copy<Element>(mma_sdp);
  auto thr_stsm = stsm.get_thread_slice(tidx);
  Tensor tdSsdS = thr_stsm.partition_D(as_position_independent_swizzle_tensor(sdSt));
  Tensor tdSrdS = thr_stsm.retile_S(rdS);

  const int c0 = n * BN;
  MaskGeom g = mask_geom(p);
  int4* smem_iv = ss.smem_iv.data();  // masked query rows per key (kept out of registers)

  clear(tdVrdV);
  clear(tdKrdK);
  reinterpret_cast<cutlass::arch::ClusterTransactionBarrier*>(&ss.bar_kv)->wait(0);

  typename Traits::PipelineQ::PipelineState q_read;
  typename Traits::PipelinedO::PipelineState do_read;
  int ds_buf = 0;
  const float scale_log2 = p.scale_log2;

  walk_blocks<Traits>(
      p, b, hk, n,
      [&](int, int hm) { load_head_intervals<Traits>(p, g, b, hm, c0, cs_rc, smem_iv); },
      [&](int, int, int m, int kind) {
        // S^T = K Q^T, dP^T = V dO^T; P^T, dS^T
        scores_and_grads<Traits>(mma_sdp, ss, pipe_q, q_read, pipe_do, do_read, tSrK, tSrV, tSrQ, tSrdO, tSrS,
                                 tSrdP, s_rc, dp_rc, cs_rc, rP, rdS, m, kind == kPartial, scale_log2, smem_iv);

        // dV += P^T dO (registers x smem)
        wg_gemm(mma_dkv, tdVrP, tdVrdO(_, _, _, do_read.index()), tdVrdV, false);
        // dS to smem for dQ (both warpgroups' halves)
        copy(stsm, tdSrdS, tdSsdS(_, _, _, ds_buf));
        // d128: dQ = dS K, then dK += dS^T Q (groups complete in order: dV,
        // dQ, dK), so the dQ smem write overlaps dK. d64 (BM = 128, bf16 dS^T
        // is 32 registers) issues dK first and waits for all: no spills.
        constexpr bool kDqFirst = !Traits::kDqSplitM;
        if constexpr (!kDqFirst) wg_gemm(mma_dkv, tdKrdS, tdKrQ(_, _, _, q_read.index()), tdKrdK, false);
        cutlass::arch::fence_view_async_shared();
        cutlass::arch::NamedBarrier::sync(Traits::kNumMmaThreads, Traits::kBarDs);
        wg_gemm(mma_dq, tdQrdS(_, _, _, ds_buf), tdQrK, tdQrdQ, true);
        if constexpr (kDqFirst) {
          wg_gemm(mma_dkv, tdKrdS, tdKrQ(_, _, _, q_read.index()), tdKrdK, false);
          warpgroup_wait<1>();  // dV and dQ done; dK may still run
        } else {
          warpgroup_wait<0>();
        }
        warpgroup_fence_operand(tdVrdV);
        warpgroup_fence_operand(tdQrdQ);
        pipe_do.consumer_release(do_read);  // dO: read by dP and dV only
        ++do_read;

        dq_part_to_writer<Traits>(tdQrdQ, ss, tidx, wg);

        warpgroup_wait<0>();  // dK done: Q and this dS buffer are free
        warpgroup_fence_operand(tdKrdK);
        pipe_q.consumer_release(q_read);
        ++q_read;
        ds_buf ^= 1;
      });
  wait_dq_parts_read<Traits>(wg);

  if constexpr (Traits::kTmaStoreDkv) {
    // both warpgroups past their last GEMM: the Q and dO buffers are free
    cutlass::arch::NamedBarrier::sync(Traits::kNumMmaThreads, Traits::kBarDs);
    stage_and_store_dk_dv<Traits>(p, ss, mma_dkv, tdVrdV, tdKrdK, tidx, b, hk, n);
  } else {
    store_dk_dv<Traits>(p, mma_dkv, tdVrdV, tdKrdK, tidx, b, hk, c0);
  }
}

}  // namespace bwd
}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
