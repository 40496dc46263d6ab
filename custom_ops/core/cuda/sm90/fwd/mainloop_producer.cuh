// Producer warp (warp 0 of warpgroup 0, after setmaxnreg.dec): for each work
// tile the scheduler hands out it
//   1. announces the tile to the consumers (kMsgTile),
//   2. waits until both consumer warpgroups are done with the tile that last
//      used this tile's Q buffer (kQStages buffers: with 2, the wait is for
//      the tile before the previous one, so the Q load overlaps the previous
//      tile's end), then TMA-loads Q (bar_q_full, expect-tx),
//   3. walks the key blocks from the last to the first, classifying 32 at a
//      time (one per lane, ballot): fully masked blocks are skipped, i.e.
//      never loaded; for each other block it sends a kMsgKey message (the
//      block index and its kind; a partial block's message goes to a mask
//      warp, which adds one bit per (row, column) and commits it) and then
//      TMA-loads K(n), and
//      V(previous block) - the order the consumers use them in,
//   4. sends kMsgEnd.
// After the last tile it sends kMsgExit, once per mask warp (as their jobs).
#pragma once

#include "core/cuda/sm90/fwd/traits.h"
#include "core/cuda/sm90/common/mask.cuh"
#include "core/cuda/sm90/fwd/mask_warps.cuh"
#include "core/cuda/sm90/fwd/tile_scheduler.cuh"

namespace flashmask {
namespace cuda {
namespace sm90 {

template <typename Traits>
struct ProducerMainloop {
  using Element = typename Traits::Element;
  using SS = typename Traits::SharedStorage;
  static constexpr int BM = Traits::kBlockM, BN = Traits::kBlockN, D = Traits::kHeadDim;

  const KernelParams<Traits>& p;
  SS& ss;
  typename Traits::PipelineKV& pipe_k;
  typename Traits::PipelineKV& pipe_v;
  typename Traits::PipelineMeta& pipe_meta;

  // Send one meta message; `fill(msg)` runs on every lane of the warp.
  template <typename Fill>
  __device__ __forceinline__ void send(cutlass::PipelineState<Traits::kMetaStages>& st, Fill&& fill) {
    pipe_meta.producer_acquire(st);
    fill(ss.meta[st.index()]);
    pipe_meta.producer_commit(st);  // each lane arrives: its own stores are released
    ++st;
  }

  // A message a mask warp completes and commits (a partial block's row bits,
  // or its kMsgExit); `fill(msg)` runs on the leader lane before the post.
  template <typename Fill>
  __device__ __forceinline__ void send_job(cutlass::PipelineState<Traits::kMetaStages>& st, int& jobs,
                                           Fill&& fill) {
    pipe_meta.producer_acquire(st);
    if (threadIdx.x % 32 == 0) {
      fill(ss.meta[st.index()]);
      MaskWarps<Traits>::post(ss, jobs, st.index());
    }
    if (++jobs == Traits::kJobPeriod) jobs = 0;
    ++st;
  }

  __device__ void run() {
    const int lane = threadIdx.x % 32;
    const bool leader = lane == 0;

    auto k_state = cutlass::make_producer_start_state<typename Traits::PipelineKV>();
    auto v_state = cutlass::make_producer_start_state<typename Traits::PipelineKV>();
    auto meta_state = cutlass::make_producer_start_state<typename Traits::PipelineMeta>();
    // phase 1: the empty barriers are fresh, so the first kQStages waits pass
    typename Traits::QState q_state(0, 1, 0);

    Tensor mQ = p.tma_q.get_tma_tensor(p.shape_q);  // (Sq, D, H, B)
    Tensor mK = p.tma_k.get_tma_tensor(p.shape_k);  // (Sk, D, Hk, B)
    Tensor mV = p.tma_v.get_tma_tensor(p.shape_k);
    Tensor sQ = make_tensor(make_smem_ptr(ss.smem_q.data()), typename Traits::SmemLayoutQ{});
    Tensor sK = make_tensor(make_smem_ptr(ss.smem_k.data()), typename Traits::SmemLayoutK{});
    Tensor sV = make_tensor(make_smem_ptr(ss.smem_v.data()), typename Traits::SmemLayoutV{});

    MaskGeom g = mask_geom(p);
    if (p.startend == nullptr) g.bounds = nullptr;

    int jobs = 0;  // partial blocks handed to the mask warps, modulo kJobPeriod
    TileScheduler<Traits> sched(p);
    for (; sched.valid(); sched.advance()) {
      const WorkTile w = sched.decode();
      send(meta_state, [&](typename Traits::Msg& m) {
        if (leader) m.head = make_int4(kMsgTile, w.b, w.h, w.m);
      });

      const int qi = q_state.index();
      reinterpret_cast<cutlass::arch::ClusterBarrier*>(&ss.bar_q_empty[qi])->wait(q_state.phase());
      ++q_state;
      if (leader) {
        auto& bar = *reinterpret_cast<cutlass::arch::ClusterTransactionBarrier*>(&ss.bar_q_full[qi]);
        bar.arrive_and_expect_tx(Traits::kTmaBytesQ);
        Tensor gQ = local_tile(mQ(_, _, w.h, w.b), Shape<Int<BM>, Int<D>>{}, make_coord(w.m, _0{}));
        auto [tQgQ, tQsQ] = tma_partition(p.tma_q, _0{}, Layout<_1>{}, group_modes<0, 2>(sQ),
                                          group_modes<0, 2>(gQ));
        copy(p.tma_q.with(ss.bar_q_full[qi], 0), tQgQ, tQsQ(_, qi));
      }

      const int hk = w.h / (p.num_heads / p.num_heads_k);
      const int hm = mask_head_of(w.h, p.mask_heads, p.num_heads, p.num_heads_k);
      Tensor gK = local_tile(mK(_, _, hk, w.b), Shape<Int<BN>, Int<D>>{}, make_coord(_, _0{}));
      Tensor gV = local_tile(mV(_, _, hk, w.b), Shape<Int<BN>, Int<D>>{}, make_coord(_, _0{}));
      auto [tKgK, tKsK] = tma_partition(p.tma_k, _0{}, Layout<_1>{}, group_modes<0, 2>(sK),
                                        group_modes<0, 2>(gK));
      auto [tVgV, tVsV] = tma_partition(p.tma_v, _0{}, Layout<_1>{}, group_modes<0, 2>(sV),
                                        group_modes<0, 2>(gV));

      const TileBounds* tb =
          g.bounds != nullptr ? g.bounds + (static_cast<int64_t>(w.b) * p.mask_heads + hm) * p.n_tiles64
                              : nullptr;
      const int32_t* col0 = p.startend != nullptr
                                ? p.startend + w.b * p.mask_batch_stride + hm * p.mask_head_stride
                                : nullptr;
      const int r0 = w.m * BM, r1 = min(r0 + BM, p.seqlen_q);
      const int n_end = n_block_end<BN>(g, r1);
      const int32_t* bm_row = p.block_mask.row(w.b, w.h, p.num_heads, p.num_heads_k);

      int prev = -1;
      for (int base = n_end - 1; base >= 0; base -= 32) {
        const int n_lane = base - lane;
        const int kind_lane =
            n_lane >= 0 && p.block_mask.kept(bm_row, r0, n_lane * BN) ? block_kind<BN>(g, tb, r0, r1, n_lane) : 0;
        unsigned todo = __ballot_sync(0xffffffffu, kind_lane != 0);
        while (todo != 0u) {
          const int l = __ffs(todo) - 1;  // lowest lane = highest block
          todo &= todo - 1;
          const int n = base - l;
          int kind = __shfl_sync(0xffffffffu, kind_lane, l);
          if (!Traits::kCausalOnlyBlocks && kind == kBlockCausalOnly) kind = kBlockPartial;
          if (kind == kBlockPartial) {  // a mask warp adds the row bits
            send_job(meta_state, jobs, [&](typename Traits::Msg& m) {
              m.head = make_int4(kMsgKey, n, kind, 0);
              m.col0 = col0;
              m.r0 = r0;
            });
          } else {
            send(meta_state, [&](typename Traits::Msg& m) {
              if (leader) m.head = make_int4(kMsgKey, n, kind, 0);
            });
          }
          if (leader) {
            pipe_k.producer_acquire(k_state);
            copy(p.tma_k.with(*pipe_k.producer_get_barrier(k_state), 0), tKgK(_, n), tKsK(_, k_state.index()));
            ++k_state;
            if (prev >= 0) {
              pipe_v.producer_acquire(v_state);
              copy(p.tma_v.with(*pipe_v.producer_get_barrier(v_state), 0), tVgV(_, prev),
                   tVsV(_, v_state.index()));
              ++v_state;
            }
          }
          prev = n;
        }
      }
      if (leader && prev >= 0) {
        pipe_v.producer_acquire(v_state);
        copy(p.tma_v.with(*pipe_v.producer_get_barrier(v_state), 0), tVgV(_, prev), tVsV(_, v_state.index()));
        ++v_state;
      }
      send(meta_state, [&](typename Traits::Msg& m) {
        if (leader) m.head = make_int4(kMsgEnd, 0, 0, 0);
      });
    }
    // one kMsgExit per mask warp, as its last job (the consumers stop at the first)
    for (int i = 0; i < Traits::kMaskWarps; ++i)
      send_job(meta_state, jobs, [&](typename Traits::Msg& m) { m.head = make_int4(kMsgExit, 0, 0, 0); });
    // no TMA may still be in flight into a CTA whose consumers have left
    if (leader) {
      pipe_k.producer_tail(k_state);
      pipe_v.producer_tail(v_state);
    }
  }
};

}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
