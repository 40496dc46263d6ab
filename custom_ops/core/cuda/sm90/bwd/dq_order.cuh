// Deterministic mode, the add order's successors scanned ahead (warp 2).
// Before its add into dQ tile m, the dQ writer of key block n must know the
// next higher key block that visits the tile (next_visible_block: a
// last_visible load, two TileBounds per lane, a ballot). Scanned by the
// writer itself, that latency sat in the writer's per-block cycle and made
// it, not the consumers, set the pace (a build without the scan: 3-10 %
// faster). So warp 2 walks the same blocks and posts each successor into a
// ring of kOrderSlots shared-memory slots, one mbarrier pair per slot; the
// writer only reads its slot.
#pragma once

#include <cutlass/arch/barrier.h>

#include "core/cuda/sm90/common/mbarrier_wait.cuh"
#include "core/cuda/sm90/bwd/mask.cuh"
#include "core/cuda/sm90/bwd/traits.h"

namespace flashmask {
namespace cuda {
namespace sm90 {
namespace bwd {

template <typename Traits>
__device__ __forceinline__ void init_order_ring(typename Traits::OrderRing& r) {
#pragma unroll
  for (int i = 0; i < Traits::kOrderSlots; ++i) {
    cutlass::arch::ClusterBarrier::init(&r.full[i], 1);
    cutlass::arch::ClusterBarrier::init(&r.empty[i], 1);
  }
}

// Warp 2: for the i-th visited block, slot i % kOrderSlots receives 1 + its
// successor key block (0: none, this block adds first). ptxas keeps the
// walk's per-head bounds in local memory here (24 registers a thread in this
// warpgroup); up to kOrderSlots blocks ahead of the writer, that is off the
// critical path.
template <typename Traits>
__device__ __forceinline__ void order_scanner_warp(const BwdKernelParams<Traits>& p, typename Traits::OrderRing& r,
                                                   int b, int hk, int n) {
  const int lane = threadIdx.x % 32;
  int slot = 0;
  uint32_t empty_parity = 1;  // the first round finds every slot empty
  walk_blocks<Traits>(
      p, b, hk, n, [&](int, int) {},
      [&](int hq, int hm, int m, int) {
        // the writer has read the slot's previous value
        if (lane == 0) mbarrier_wait_parity(&r.empty[slot], empty_parity);
        const int target = next_visible_block<Traits::kBlockM, Traits::kBlockN>(p, b, hq, hm, m, n) + 1;
        if (lane == 0) {
          r.target[slot] = target;
          cutlass::arch::ClusterBarrier::arrive(&r.full[slot]);
        }
        if (++slot == Traits::kOrderSlots) slot = 0, empty_parity ^= 1;
      });
}

// The dQ writer's lane 0: the successor target of its i-th visited block.
template <typename Traits>
__device__ __forceinline__ int take_order_target(typename Traits::OrderRing& r, int i) {
  const int slot = i % Traits::kOrderSlots;
  mbarrier_wait_parity(&r.full[slot], (i / Traits::kOrderSlots) & 1);
  const int target = r.target[slot];
  cutlass::arch::ClusterBarrier::arrive(&r.empty[slot]);
  return target;
}

}  // namespace bwd
}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
