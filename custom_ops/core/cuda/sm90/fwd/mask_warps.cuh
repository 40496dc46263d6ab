// Mask warps (warps 1-3 of the producer warpgroup, after setmaxnreg.dec):
// they turn a partial key block's mask columns into the meta message's row
// bits, so the producer warp, which runs the scheduler and every TMA load,
// only posts the job. On the producer warp this work (one global latency for
// the columns, ~300 instructions per lane for the bits) sat between two key
// blocks' loads: per-head random masks, where every block is partial, waited
// on it.
//
// Protocol (sm90/fwd/traits.h): the producer warp acquires the meta stage,
// writes the head and the job (col0, r0), stores the stage in job slot
// j % kJobSlots and arrives on that slot's barrier (j counts modulo
// kJobPeriod on both sides). Mask warp j % kMaskWarps
// waits for it, writes the bits and commits the message (its 32 lanes are the
// stage's 32 producer arrivals). The producer's last messages are one
// kMsgExit per mask warp, as jobs: each mask warp commits its own and
// leaves; the consumers stop at the first. A waiting mask warp sleeps in
// the barrier (suspend-time hint) instead of spinning: an idle one that
// polled cost the consumers 2-4 % (d64 causal, which has no partial blocks).
#pragma once

#include "core/cuda/sm90/fwd/traits.h"
#include "core/cuda/sm90/common/mask.cuh"
#include "core/cuda/sm90/common/mbarrier_wait.cuh"

namespace flashmask {
namespace cuda {
namespace sm90 {

template <typename Traits>
struct MaskWarps {
  using SS = typename Traits::SharedStorage;
  using Msg = typename Traits::Msg;
  static constexpr int BM = Traits::kBlockM, BN = Traits::kBlockN;

  const KernelParams<Traits>& p;
  SS& ss;
  typename Traits::PipelineMeta& pipe_meta;

  // Producer warp, leader lane: post job j for the message in meta stage `stage`.
  __device__ static void post(SS& ss, int j, int stage) {
    const int slot = j % Traits::kJobSlots;
    ss.job_stage[slot] = stage;
    reinterpret_cast<cutlass::arch::ClusterBarrier*>(&ss.bar_job[slot])->arrive();  // releases the message's job
  }

  // Lane 0: wait for job j, asleep until its barrier completes.
  __device__ void wait_job(int j) {
    mbarrier_wait_parity(&ss.bar_job[j % Traits::kJobSlots], (j / Traits::kJobSlots) & 1);
  }

  // The row bits of rows r0 .. r0 + BM - 1 for the block's BN columns, BN / 32
  // per lane. All of a lane's column loads are in flight at once (one global
  // latency) when their ints fit 56 registers: kMaxCols (>= ncols) <= 2; the
  // 4-int layouts take two rounds.
  template <int kMaxCols>
  __device__ void put_row_bits(Msg& m, const MaskGeom& g, int lane) {
    constexpr int kPerLane = BN / 32;
    constexpr int kBatch = kMaxCols <= 2 ? kPerLane : 2;
    const int32_t* col0 = m.col0;
    const int n = m.head.y, r0 = m.r0;
#pragma unroll
    for (int k0 = 0; k0 < kPerLane; k0 += kBatch) {
      int32_t raw[kBatch][4];
#pragma unroll
      for (int k = 0; k < kBatch; ++k)
        load_column<kMaxCols>(col0, p.ncols, n * BN + lane + 32 * (k0 + k), g, raw[k]);
#pragma unroll
      for (int k = 0; k < kBatch; ++k) {
        const int c = lane + 32 * (k0 + k);
        const int4 iv = encode_column(raw[k], col0 != nullptr, p.ncols, n * BN + c, g);
#pragma unroll
        for (int w = 0; w < BM / 32; ++w) {
          const uint32_t bits = row_mask_word(iv, r0 + 32 * w);
          m.row_bits[2 * w][c] = static_cast<uint16_t>(bits);
          m.row_bits[2 * w + 1][c] = static_cast<uint16_t>(bits >> 16);
        }
      }
    }
  }

  // mask warp `self` (0 .. kMaskWarps - 1): jobs self, self + kMaskWarps, ...
  __device__ void run(int self) {
    const int lane = threadIdx.x % 32;
    const MaskGeom g = mask_geom(p);  // its bounds go unused here
    for (int j = self;; j = (j + Traits::kMaskWarps) % Traits::kJobPeriod) {
      if (lane == 0) wait_job(j);
      __syncwarp();  // lane 0's acquire of the job covers the warp
      const int stage = ss.job_stage[j % Traits::kJobSlots];
      Msg& m = ss.meta[stage];
      const cutlass::PipelineState<Traits::kMetaStages> st(stage, 0, 0);
      if (m.head.x == kMsgExit) {
        pipe_meta.producer_commit(st);
        break;
      }
      if (p.ncols <= 1)
        put_row_bits<1>(m, g, lane);
      else if (p.ncols == 2)
        put_row_bits<2>(m, g, lane);
      else
        put_row_bits<4>(m, g, lane);
      pipe_meta.producer_commit(st);  // every lane
    }
  }
};

}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
