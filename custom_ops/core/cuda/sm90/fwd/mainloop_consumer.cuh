// Consumer warpgroups (2 x 128 threads, after setmaxnreg.inc): each owns 64
// query rows of the work tile; both read every K/V stage.
//
// Per work tile (messages from the producer drive the loop):
//   first key block:  S = Q K^T (wgmma, smem x smem), mask,
//                     softmax, P = bf16/fp16(S) kept in registers
//   each next block n (intra-warpgroup overlap, as FlashAttention-3):
//     issue S' = Q K(n)^T           (async)
//     issue O += P V(prev)          (async, P from registers)
//     wait for S' only; release K(n); mask S' (partial and causal-only
//     blocks); softmax(S')
//       -> the exp2's run while the tensor cores do P V(prev)
//     wait for P V; release V(prev); O *= alpha; P = convert(S')
//   last: O += P V(last); epilogue (O / l, lse): O staged in the tile's Q
//   buffer and TMA-stored (d128), or stored from registers (d64, d192, d256).
// Fully masked blocks never arrive here; unmasked blocks do no mask work.
// kPingPong (d128): each issue of wgmma's above (from the K wait on) is one
// turn; the warpgroups alternate turns, warpgroup 0 first, as FA3 does.
#pragma once

#include "core/cuda/sm90/fwd/epilogue.cuh"
#include "core/cuda/sm90/fwd/traits.h"
#include "core/cuda/sm90/common/mask.cuh"
#include "core/cuda/sm90/fwd/softmax.cuh"
#include "core/cuda/sm90/common/wgmma.cuh"

namespace flashmask {
namespace cuda {
namespace sm90 {

// This consumer's warpgroup (0, 1), read from %tid.x where it is used. For
// the O staging barrier: one barrier instruction with this id spills nothing
// in the key loop, where a branch per warpgroup with constant ids (as the
// turns use) or an index kept from before the tile loop made ptxas spill there
// (the consumers are at the register cap).
__device__ __forceinline__ int warpgroup_now() {
  unsigned t;
  asm volatile("mov.u32 %0, %%tid.x;" : "=r"(t));
  return static_cast<int>(t / 128) - 1;
}

template <typename Traits>
struct ConsumerMainloop {
  using Element = typename Traits::Element;
  using SS = typename Traits::SharedStorage;
  static constexpr int BM = Traits::kBlockM, BN = Traits::kBlockN, D = Traits::kHeadDim;
  // CuTe's descriptor steps (sm90/common/wgmma.cuh: 64-bit ones made d256 slower here)
  static constexpr bool kDesc64 = false;

  const KernelParams<Traits>& p;
  SS& ss;
  typename Traits::PipelineKV& pipe_k;
  typename Traits::PipelineKV& pipe_v;
  typename Traits::PipelineMeta& pipe_meta;

  // tidx: 0 .. 255 over the two consumer warpgroups
  __device__ void run(int tidx) {
    Tensor sQ = make_tensor(make_smem_ptr(ss.smem_q.data()), typename Traits::SmemLayoutQ{});
    Tensor sK = make_tensor(make_smem_ptr(ss.smem_k.data()), typename Traits::SmemLayoutK{});
    Tensor sVt = make_tensor(make_smem_ptr(ss.smem_v.data()), typename Traits::SmemLayoutVt{});

    typename Traits::TiledMmaQK mma_qk;
    typename Traits::TiledMmaPV mma_pv;
    // smem operand descriptors are per warpgroup: slice at the warpgroup's first thread
    const int wg_first = (tidx / 128) * 128;
    auto wg_qk = mma_qk.get_thread_slice(wg_first);
    auto wg_pv = mma_pv.get_thread_slice(wg_first);
    Tensor tSrQ = wg_qk.partition_fragment_A(sQ);   // (MMA, MMA_M, MMA_K, Q stages)
    Tensor tSrK = wg_qk.partition_fragment_B(sK);   // (MMA, MMA_N, MMA_K, stages)
    Tensor tOrV = wg_pv.partition_fragment_B(sVt);  // (MMA, MMA_N, MMA_K, stages)

    auto thr_qk = mma_qk.get_thread_slice(tidx);
    auto thr_pv = mma_pv.get_thread_slice(tidx);
    Tensor tSrS = partition_fragment_C(mma_qk, Shape<Int<BM>, Int<BN>>{});
    Tensor tOrO = partition_fragment_C(mma_pv, Shape<Int<BM>, Int<D>>{});
    // element coordinates (row, col) within the block, in rowcol views
    Tensor tScS = thr_qk.partition_C(make_identity_tensor(Shape<Int<BM>, Int<BN>>{}));
    Tensor tOcO = thr_pv.partition_C(make_identity_tensor(Shape<Int<BM>, Int<D>>{}));
    Tensor s_rc = make_tensor(tSrS.data(), rowcol_layout(tSrS.layout()));
    Tensor o_rc = make_tensor(tOrO.data(), rowcol_layout(tOrO.layout()));
    Tensor cs_rc = make_tensor(tScS.data(), rowcol_layout(tScS.layout()));
    Tensor co_rc = make_tensor(tOcO.data(), rowcol_layout(tOcO.layout()));
    constexpr int kRows = decltype(size<0>(s_rc))::value;
    static_assert(kRows == decltype(size<0>(o_rc))::value, "S and O rows");

    // P (the probabilities in the element type) and its view as the A operand of P V
    Tensor rP = make_tensor<Element>(tSrS.layout());
    Tensor tOrP = make_tensor(rP.data(), acc_as_a_layout(tSrS.layout()));

    OnlineSoftmax<kRows> sm;
    float alpha[kRows];

    // kTmaStoreO: the Q buffer whose O store of this warpgroup's rows is in
    // flight, -1: none. Only the warpgroup's first thread, which issued the
    // store, sets it; it hands the buffer back once the store has read it.
    int staged = -1;
    auto release_staged = [&]() {
      if (Traits::kTmaStoreO && staged >= 0) {
        tma_store_wait<0>();
        reinterpret_cast<cutlass::arch::ClusterBarrier*>(&ss.bar_q_empty[staged])->arrive();
        staged = -1;
      }
    };
    Tensor mO = p.tma_o.get_tma_tensor(p.shape_q);  // (Sq, D, H, B)

    typename Traits::PipelineKV::PipelineState k_read, v_read;
    typename Traits::PipelineMeta::PipelineState meta_read;
    // -> this tile's Q buffer and the phase of its full barrier (one counter, not
    // a QState like the producer's: with one the d128 consumers spilled 52
    // bytes instead of 12)
    int tiles_done = 0;

    // ping-pong turns (named barrier kBarTurn<wg>: its 128 threads sync, the
    // other warpgroup's 128 arrive when they pass the turn). One branch per
    // warpgroup, each with a constant barrier id, rather than kBarTurn0 + wg:
    // no register is held across the key loop for the id (the consumers are
    // at the register cap), and it is the code the A/B measured.
    const int wg = tidx / 128;
    auto turn_wait = [&]() {
      if constexpr (Traits::kPingPong) {
        if (wg == 0)
          cutlass::arch::NamedBarrier::sync(Traits::kNumMmaThreads, Traits::kBarTurn0);
        else
          cutlass::arch::NamedBarrier::sync(Traits::kNumMmaThreads, Traits::kBarTurn1);
      }
    };
    auto turn_pass = [&]() {
      if constexpr (Traits::kPingPong) {
        if (wg == 0)
          cutlass::arch::NamedBarrier::arrive(Traits::kNumMmaThreads, Traits::kBarTurn1);
        else
          cutlass::arch::NamedBarrier::arrive(Traits::kNumMmaThreads, Traits::kBarTurn0);
      }
    };
    if (Traits::kPingPong && wg == 1)  // warpgroup 0 has the first turn
      cutlass::arch::NamedBarrier::arrive(Traits::kNumMmaThreads, Traits::kBarTurn0);

    auto next_msg = [&]() {
      pipe_meta.consumer_wait(meta_read);
      return ss.meta[meta_read.index()].head;
    };
    auto release_msg = [&]() {
      pipe_meta.consumer_release(meta_read);
      ++meta_read;
    };

    while (true) {
      const int4 tile = next_msg();
      release_msg();
      if (tile.x == kMsgExit) break;
      const int b = tile.y, h = tile.z, m = tile.w;
      const int row0 = m * BM;

      clear(tOrO);
      sm.reset();
      const int qi = tiles_done % Traits::kQStages;
      reinterpret_cast<cutlass::arch::ClusterTransactionBarrier*>(&ss.bar_q_full[qi])
          ->wait((tiles_done / Traits::kQStages) & 1);
      auto q_done = [&]() {  // no more Q reads in this tile: the producer may reload the buffer
        if constexpr (!Traits::kTmaStoreO)  // else: after the O store, see release_staged
          reinterpret_cast<cutlass::arch::ClusterBarrier*>(&ss.bar_q_empty[qi])->arrive();
        ++tiles_done;
      };
      Tensor tSrQi = tSrQ(_, _, _, qi);
      // the mask of a partial (row bits per column) or causal-only block
      auto mask_block = [&](const int4& key_msg) {
        if (key_msg.z == kBlockPartial)
          apply_mask<BN>(s_rc, cs_rc, ss.meta[meta_read.index()].row_bits);
        else if (Traits::kCausalOnlyBlocks && key_msg.z == kBlockCausalOnly)
          apply_causal_mask(s_rc, cs_rc, row0 + p.seqlen_k - p.seqlen_q - key_msg.y * BN);
      };

      int4 msg = next_msg();
      const bool any = msg.x == kMsgKey;
      if (any) {
        // first key block: S = Q K^T, no P V yet
        pipe_k.consumer_wait(k_read);
        turn_wait();
        wg_gemm<kDesc64>(mma_qk, tSrQi, tSrK(_, _, _, k_read.index()), tSrS, true);
        turn_pass();
        release_staged();  // the last tile's O store has long been read: no wait, under the GEMM
        warpgroup_wait<0>();
        warpgroup_fence_operand(tSrS);
        pipe_k.consumer_release(k_read);
        ++k_read;
        mask_block(msg);
        release_msg();
        sm.update(s_rc, p.scale_log2, alpha);
        convert_into(tSrS, rP);

        while (true) {
          msg = next_msg();
          if (msg.x != kMsgKey) break;
          pipe_k.consumer_wait(k_read);
          turn_wait();
          wg_gemm<kDesc64>(mma_qk, tSrQi, tSrK(_, _, _, k_read.index()), tSrS, true);
          pipe_v.consumer_wait(v_read);  // inside the turn, as FA3
          wg_gemm<kDesc64>(mma_pv, tOrP, tOrV(_, _, _, v_read.index()), tOrO, false);
          turn_pass();
          warpgroup_wait<1>();  // S' done (P V may still run)
          warpgroup_fence_operand(tSrS);
          pipe_k.consumer_release(k_read);
          ++k_read;
          mask_block(msg);
          release_msg();
          sm.update(s_rc, p.scale_log2, alpha);
          warpgroup_wait<0>();  // P V done
          warpgroup_fence_operand(tOrO);
          pipe_v.consumer_release(v_read);
          ++v_read;
          sm.rescale(o_rc, alpha);
          convert_into(tSrS, rP);
        }
        release_msg();   // the kMsgEnd
        q_done();
        pipe_v.consumer_wait(v_read);
        turn_wait();
        wg_gemm<kDesc64>(mma_pv, tOrP, tOrV(_, _, _, v_read.index()), tOrO, false);
        turn_pass();
        warpgroup_wait<0>();
        warpgroup_fence_operand(tOrO);
        pipe_v.consumer_release(v_read);
        ++v_read;
      } else {  // every key block is masked: O = 0, lse = -inf (the sink's logit)
        release_staged();
        release_msg();
        q_done();
      }
      if constexpr (Traits::kTmaStoreO) {
        // O into this tile's Q buffer, each warpgroup its own 64 rows (its Q K^T
        // read only those, all done), then its own TMA stores: a warpgroup goes
        // on to the next tile's first Q K^T while the other finishes this one
        Tensor sOi = sQ(_, _, qi);
        stage_tile_o<Traits>(p, tOrO, thr_pv.partition_C(sOi), co_rc, sm, b, h, m);
        tma_store_fence();
        const int owg = warpgroup_now();
        cutlass::arch::NamedBarrier::sync(128, Traits::kBarOStaged + owg);
        if (threadIdx.x % 128 == 0) {
          // the warpgroup's rows of each 64-column swizzle column: one 8 KB box
          // (SmemLayoutQ tiles its 8 x 64 atoms down the rows first, so a
          // swizzle column is BM x 64 contiguous elements, a buffer BM x D)
          Element* rows = ss.smem_q.data() + qi * (BM * D) + owg * (64 * 64);
#pragma unroll
          for (int kd = 0; kd < D / 64; ++kd) {
            Tensor sO = make_tensor(make_smem_ptr(rows + kd * (BM * 64)), typename Traits::SmemLayoutOBox{});
            Tensor gO = local_tile(mO(_, _, h, b), typename Traits::OBoxShape{}, make_coord(2 * m + owg, kd));
            auto [tOgO, tOsO] = tma_partition(p.tma_o, _0{}, Layout<_1>{}, group_modes<0, 2>(sO),
                                              group_modes<0, 2>(gO));
            copy(p.tma_o, tOsO, tOgO);
          }
          tma_store_arrive();
          staged = qi;
        }
      } else {
        write_tile<Traits>(p, o_rc, co_rc, sm, b, h, m);
      }
    }
    if (Traits::kTmaStoreO && staged >= 0) tma_store_wait<0>();  // smem stays valid until read
  }
};

}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
