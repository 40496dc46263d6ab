// Consumer warpgroups of the sm90a backward, d192 / d256 (kSplitD): both
// warpgroups share the block's 64 keys; warpgroup w holds S^T / dP^T for
// queries [32w, 32w + 32) and dK / dV for head-dim columns [D/2 w, D/2 (w+1))
// (2 x D/2 fp32 registers; owning all D columns would take 2 D). Per
// visited block:
//   1. S^T = K Q_w^T, dP^T = V dO_w^T            (SS, N = 32 queries)
//   2. P^T (mask on partial blocks), dS^T; both to smem (one buffer each,
//      so first a barrier: the other warpgroup is done reading the last ones)
//   3. dQ slice 0 = dS K[:, slice 0]  and  dV_w += P^T dO[:, Dw]
//      -> slice 0 to the writer while dV runs,
//      dQ slice 1 and dK_w += dS^T Q[:, Dw]
//      -> release dO (after dV), slice 1 to the writer,
//      (d192) dQ slice 2 -> release Q (after dK), slice 2 to the writer;
//      (d256) release Q (after dK).
// dK, dV stored at the end.
#pragma once

#include "core/cuda/sm90/common/accum_layout.cuh"
#include "core/cuda/sm90/common/wgmma.cuh"
#include "core/cuda/sm90/bwd/consumer_steps.cuh"
#include "core/cuda/sm90/bwd/mask.cuh"
#include "core/cuda/sm90/bwd/traits.h"

namespace flashmask {
namespace cuda {
namespace sm90 {
namespace bwd {

template <typename Traits>
__device__ __forceinline__ void consumer_warpgroups_split_d(const BwdKernelParams<Traits>& p,
                                                            typename Traits::SharedStorage& ss,
                                                            typename Traits::PipelineQ& pipe_q,
                                                            typename Traits::PipelinedO& pipe_do, int tidx, int b,
                                                            int hk, int n) {
  using Element = typename Traits::Element;
  constexpr int BM = Traits::kBlockM, BN = Traits::kBlockN, D = Traits::kHeadDim;
  constexpr int kPartial = static_cast<int>(TileKind::kPartial);
  static_assert(Traits::kSplitD && Traits::kDsBufs == 1 && (Traits::kDqSlices == 2 || Traits::kDqSlices == 3),
                "the head-dim-split variant");
  using DQ = typename Traits::DQ;

  auto [sQ, sdO, sQt, sdOt, sK, sV, sKt, sdS, sdSt] = smem_views<Traits>(ss);
  Tensor sPt = make_tensor(make_smem_ptr(ss.smem_p.data()), typename Traits::SmemLayoutdSt{});
  // the column slices of K^T that dQ's slices multiply (the last one is
  // slice 1 again at d256: never used there)
  constexpr int kLast = Traits::kDqSlices - 1;
  Tensor sKt0 = local_tile(sKt, Shape<DQ, Int<BN>>{}, make_coord(_0{}, _0{}));
  Tensor sKt1 = local_tile(sKt, Shape<DQ, Int<BN>>{}, make_coord(_1{}, _0{}));
  Tensor sKt2 = local_tile(sKt, Shape<DQ, Int<BN>>{}, make_coord(Int<kLast>{}, _0{}));

  typename Traits::TiledMmaSdP mma_sdp;
  typename Traits::TiledMmadKV mma_dkv;
  typename Traits::TiledMmadQ mma_dq;
  // smem operand descriptors are per warpgroup: slice at the warpgroup's first thread
  // (broadcast from lane 0: warp-uniform, so the descriptors stay in uniform registers)
  const int wg = __shfl_sync(0xffffffffu, tidx / 128, 0);
  auto wg_sdp = mma_sdp.get_thread_slice(wg * 128);
  auto wg_dkv = mma_dkv.get_thread_slice(wg * 128);
  auto wg_dq = mma_dq.get_thread_slice(wg * 128);
  Tensor tSrK = wg_sdp.partition_fragment_A(sK);      // (MMA, MMA_M, MMA_K)
  Tensor tSrV = wg_sdp.partition_fragment_A(sV);
  Tensor tSrQ = wg_sdp.partition_fragment_B(sQ);      // (MMA, MMA_N, MMA_K, stages)
  Tensor tSrdO = wg_sdp.partition_fragment_B(sdO);
  Tensor tdVrP = wg_dkv.partition_fragment_A(sPt);    // (MMA, MMA_M, MMA_K, 1)
  Tensor tdKrdS = wg_dkv.partition_fragment_A(sdSt);
  Tensor tdVrdO = wg_dkv.partition_fragment_B(sdOt);  // (MMA, MMA_N, MMA_K, stages)
  Tensor tdKrQ = wg_dkv.partition_fragment_B(sQt);
  Tensor tdQrdS = wg_dq.partition_fragment_A(sdS);    // (MMA, MMA_M, MMA_K, 1)
  Tensor tdQrK0 = wg_dq.partition_fragment_B(sKt0);   // (MMA, MMA_N, MMA_K)
  Tensor tdQrK1 = wg_dq.partition_fragment_B(sKt1);
  Tensor tdQrK2 = wg_dq.partition_fragment_B(sKt2);

  auto thr_sdp = mma_sdp.get_thread_slice(tidx);
  Tensor tSrS = partition_fragment_C(mma_sdp, Shape<Int<BN>, Int<BM>>{});
  Tensor tSrdP = partition_fragment_C(mma_sdp, Shape<Int<BN>, Int<BM>>{});
  Tensor tdVrdV = partition_fragment_C(mma_dkv, Shape<Int<BN>, Int<D>>{});
  Tensor tdKrdK = partition_fragment_C(mma_dkv, Shape<Int<BN>, Int<D>>{});
  Tensor tdQrdQ = partition_fragment_C(mma_dq, Shape<Int<BM>, DQ>{});  // one slice

  Tensor tScS = thr_sdp.partition_C(make_identity_tensor(Shape<Int<BN>, Int<BM>>{}));
  Tensor s_rc = make_tensor(tSrS.data(), rowcol_layout(tSrS.layout()));
  Tensor dp_rc = make_tensor(tSrdP.data(), rowcol_layout(tSrdP.layout()));
  Tensor cs_rc = make_tensor(tScS.data(), rowcol_layout(tScS.layout()));

  // P^T and dS^T in the element type, on their way to smem
  Tensor rP = make_tensor<Element>(tSrS.layout());
  Tensor rdS = make_tensor<Element>(tSrdP.layout());
  // to smem by stmatrix: (CPY, CPY_M, CPY_N, 1 buffer)
  auto stsm = stsm_copy<Element>(mma_sdp);
  auto thr_stsm = stsm.get_thread_slice(tidx);
  Tensor tPsP = thr_stsm.partition_D(as_position_independent_swizzle_tensor(sPt));
  Tensor tdSsdS = thr_stsm.partition_D(as_position_independent_swizzle_tensor(sdSt));
  Tensor tPrP = thr_stsm.retile_S(rP);
  Tensor tdSrdS = thr_stsm.retile_S(rdS);

  const int c0 = n * BN;
  MaskGeom g = mask_geom(p);
  int4* smem_iv = ss.smem_iv.data() + wg * BN;  // both warpgroups hold every key: one table each

  clear(tdVrdV);
  clear(tdKrdK);
  reinterpret_cast<cutlass::arch::ClusterTransactionBarrier*>(&ss.bar_kv)->wait(0);

  typename Traits::PipelineQ::PipelineState q_read;
  typename Traits::PipelinedO::PipelineState do_read;
  const float scale_log2 = p.scale_log2;

  walk_blocks<Traits>(
      p, b, hk, n,
      [&](int, int hm) { load_head_intervals<Traits>(p, g, b, hm, c0, cs_rc, smem_iv); },
      [&](int, int, int m, int kind) {
        // 1. S^T = K Q^T, dP^T = V dO^T (this warpgroup's queries); P^T, dS^T
        scores_and_grads<Traits>(mma_sdp, ss, pipe_q, q_read, pipe_do, do_read, tSrK, tSrV, tSrQ, tSrdO, tSrS,
                                 tSrdP, s_rc, dp_rc, cs_rc, rP, rdS, m, kind == kPartial, scale_log2, smem_iv);
        // 2. P^T, dS^T -> smem
        cutlass::arch::NamedBarrier::sync(Traits::kNumMmaThreads, Traits::kBarPdsFree);
        copy(stsm, tPrP, tPsP(_, _, _, 0));
        copy(stsm, tdSrdS, tdSsdS(_, _, _, 0));
        cutlass::arch::fence_view_async_shared();
        cutlass::arch::NamedBarrier::sync(Traits::kNumMmaThreads, Traits::kBarDs);

        // 3. dQ slice 0 and dV; slice 0 leaves while dV runs
        wg_gemm(mma_dq, tdQrdS(_, _, _, 0), tdQrK0, tdQrdQ, true);
        wg_gemm(mma_dkv, tdVrP(_, _, _, 0), tdVrdO(_, _, _, do_read.index()), tdVrdV, false);
        warpgroup_wait<1>();
        warpgroup_fence_operand(tdQrdQ);
        dq_part_to_writer<Traits>(tdQrdQ, ss, tidx, wg);
        //    dQ slice 1 and dK
        wg_gemm(mma_dq, tdQrdS(_, _, _, 0), tdQrK1, tdQrdQ, true);
        wg_gemm(mma_dkv, tdKrdS(_, _, _, 0), tdKrQ(_, _, _, q_read.index()), tdKrdK, false);
        warpgroup_wait<2>();  // dV done: dO is free (read by dP and dV only)
        warpgroup_fence_operand(tdVrdV);
        pipe_do.consumer_release(do_read);
        ++do_read;
        warpgroup_wait<1>();
        warpgroup_fence_operand(tdQrdQ);
        dq_part_to_writer<Traits>(tdQrdQ, ss, tidx, wg);
        if constexpr (Traits::kDqSlices == 3) {
          //  dQ slice 2 (its registers are free again) while dK finishes
          wg_gemm(mma_dq, tdQrdS(_, _, _, 0), tdQrK2, tdQrdQ, true);
          warpgroup_wait<1>();  // dK done: Q is free
          warpgroup_fence_operand(tdKrdK);
          pipe_q.consumer_release(q_read);
          ++q_read;
          warpgroup_wait<0>();
          warpgroup_fence_operand(tdQrdQ);
          dq_part_to_writer<Traits>(tdQrdQ, ss, tidx, wg);
        } else {
          warpgroup_wait<0>();  // dK done: Q is free
          warpgroup_fence_operand(tdKrdK);
          pipe_q.consumer_release(q_read);
          ++q_read;
        }
      });
  wait_dq_parts_read<Traits>(wg);

  store_dk_dv<Traits>(p, mma_dkv, tdVrdV, tdKrdK, tidx, b, hk, c0);
}

}  // namespace bwd
}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
