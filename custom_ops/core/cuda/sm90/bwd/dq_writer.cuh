// dQ writer warp of the sm90a backward (warp 1): per visited block, waits
// until the dQ tile is zeroed (warp 3 below), then for each of the tile's
// kDqSlices slices waits for each consumer warpgroup's fp32 part of it in
// shared memory and bulk reduce-adds the part into the accumulator
// (deterministic mode: after the next higher visible key block, by the
// per-(b, h, m) semaphore; warp 2 scanned which one it is,
// sm90/bwd/dq_order.cuh), then hands each part back once read. In the
// deterministic mode d192 / d256 (kDetWholeSlice) wait for both parts and add
// the slice in one bulk op: one link of the chain per slice, not two.
#pragma once

#include "core/cuda/sm90/bwd/dq_order.cuh"
#include "core/cuda/sm90/bwd/mask.cuh"
#include "core/cuda/sm90/bwd/ptx.cuh"
#include "core/cuda/sm90/bwd/traits.h"

namespace flashmask {
namespace cuda {
namespace sm90 {
namespace bwd {

// Tile state bit: the accumulator tile holds zeros (or sums on top of them).
// The low bits count the zeroers that claimed the tile (one per visit); the
// post kernel writes dq = 0 for tiles no visit claimed.
constexpr int32_t kDqZeroed = 1 << 30;

// dQ tile zeroing (warp 3, the zeroer): the first CTA whose zeroer reaches a
// dQ tile in its walk zeroes it in L2 (full-sector stores, no DRAM read), so
// the kernel needs no memset of the whole accumulator before it (whose zeros
// went to DRAM and were read back by the first add). The zeroer walks the
// CTA's blocks ahead of everything else, so the zeroing of the front CTA
// never delays a follower (when the dQ writer zeroed its own tiles, each
// follower of a long causal column or a document waited for the front CTA's
// zeroing, which made them 12-15 % slower). The zeroing lanes fence their
// generic-proxy stores against the async proxy (the bulk adds, of any CTA)
// before the release; the writers acquire it (wait_dq_tile_zeroed).
// Deterministic mode: only the first adder of a tile waits for the zeros;
// the others acquire them with the semaphore of the adder before them.
template <typename Traits>
__device__ __forceinline__ void dq_zeroer_warp(const BwdKernelParams<Traits>& p, int b, int hk, int n) {
  const int lane = threadIdx.x % 32;
  walk_blocks<Traits>(
      p, b, hk, n, [&](int, int) {},
      [&](int hq, int, int m, int) {
        const int64_t tile = (static_cast<int64_t>(b) * p.num_heads + hq) * p.m_blocks + m;
        int claims = 0;
        if (lane == 0) claims = atomicAdd(p.dq_state + tile, 1);
        if (__shfl_sync(0xffffffffu, claims, 0) != 0) return;
        float4* dst = reinterpret_cast<float4*>(p.dq_acc + tile * Traits::kDqFloats);
#pragma unroll 8
        for (int i = lane; i < Traits::kDqFloats / 4; i += 32) dst[i] = make_float4(0.f, 0.f, 0.f, 0.f);
        fence_proxy_async_global();
        __threadfence();
        __syncwarp();
        if (lane == 0) red_release_or_gpu(p.dq_state + tile, kDqZeroed);
      });
}

// Lane 0 of the dQ writer, before its first bulk add into the tile.
__device__ __forceinline__ void wait_dq_tile_zeroed(const int32_t* state) {
  while ((ld_acquire_gpu(state) & kDqZeroed) == 0) __nanosleep(64);
}

// Deterministic mode, lane 0 of the dQ writer: wait for the tile's add chain
// to reach this block (target: 1 + the key block whose add comes before ours),
// and pass it on once this block's adds are in.
__device__ __forceinline__ void wait_dq_chain(const int32_t* sem, int target) {
  while (ld_acquire_gpu(sem) != target) __nanosleep(32);
}
__device__ __forceinline__ void pass_dq_chain(int32_t* sem, int n) {
  // the adds are complete and, past the proxy fence, ordered before the
  // release (as CUTLASS's arrive_inc: acq_rel fence + store); a
  // __threadfence (fence.sc) here cost ~1 us on every link of the chain,
  // 2-10 % of the deterministic backward
  bulk_wait_all();
  fence_proxy_async_global();
  st_release_gpu(sem, n + 1);
}

template <typename Traits>
__device__ __forceinline__ void dq_writer_warp(const BwdKernelParams<Traits>& p,
                                               typename Traits::SharedStorage& ss, int b, int hk, int n) {
  constexpr int kThreads = Traits::kDqPartThreads;
  constexpr int kPartBytes = Traits::kDqPartFloats * int(sizeof(float));
  const int lane = threadIdx.x % 32;
  // both parts of the buffer start empty
  cutlass::arch::NamedBarrier::arrive(kThreads, Traits::kBarDqEmpty + 0);
  cutlass::arch::NamedBarrier::arrive(kThreads, Traits::kBarDqEmpty + 1);
  int visit = 0;
  walk_blocks<Traits>(
      p, b, hk, n, [&](int, int) {},
      [&](int hq, int, int m, int) {
        int target = 0;  // lane 0's: 1 + the key block whose add comes before ours
        if (p.deterministic) {
          if (lane == 0) target = take_order_target<Traits>(ss.order, visit);
          ++visit;
        }
        const int64_t tile = (static_cast<int64_t>(b) * p.num_heads + hq) * p.m_blocks + m;
        // while the consumers compute the block
        if (lane == 0 && (!p.deterministic || target == 0)) wait_dq_tile_zeroed(p.dq_state + tile);
#pragma unroll 1
        for (int s = 0; s < Traits::kDqSlices; ++s) {
          const int off = s * Traits::kDqSliceFloats;
          float* dst = p.dq_acc + tile * Traits::kDqFloats + off;
          if (Traits::kDetWholeSlice && p.deterministic) {
            // both parts in smem, then one add of the slice (the parts are
            // contiguous in smem and in the accumulator)
            cutlass::arch::NamedBarrier::sync(kThreads, Traits::kBarDqFull + 0);
            cutlass::arch::NamedBarrier::sync(kThreads, Traits::kBarDqFull + 1);
            if (lane == 0) {
              if (s == 0) wait_dq_chain(p.sem + tile, target);
              bulk_reduce_add_f32(dst, ss.smem_dq.data(), Traits::kDqSliceFloats * int(sizeof(float)));
              bulk_commit();
              if (s + 1 == Traits::kDqSlices)
                pass_dq_chain(p.sem + tile, n);
              else
                bulk_wait_read<0>();
            }
            __syncwarp();
            cutlass::arch::NamedBarrier::arrive(kThreads, Traits::kBarDqEmpty + 0);
            cutlass::arch::NamedBarrier::arrive(kThreads, Traits::kBarDqEmpty + 1);
            continue;
          }
          // each warpgroup's part as soon as it is in smem (warpgroup 0 first)
#pragma unroll
          for (int w = 0; w < Traits::kNumMmaWarpGroups; ++w) {
            cutlass::arch::NamedBarrier::sync(kThreads, Traits::kBarDqFull + w);
            if (lane == 0) {
              if (p.deterministic && s == 0 && w == 0) wait_dq_chain(p.sem + tile, target);
              bulk_reduce_add_f32(dst + w * Traits::kDqPartFloats,
                                  ss.smem_dq.data() + w * Traits::kDqPartFloats, kPartBytes);
              bulk_commit();
            }
          }
          // each part back as soon as its add has read it
          if (lane == 0) bulk_wait_read<1>();
          __syncwarp();
          cutlass::arch::NamedBarrier::arrive(kThreads, Traits::kBarDqEmpty + 0);
          if (lane == 0) {
            if (p.deterministic && s + 1 == Traits::kDqSlices)
              pass_dq_chain(p.sem + tile, n);
            else
              bulk_wait_read<0>();
          }
          __syncwarp();
          cutlass::arch::NamedBarrier::arrive(kThreads, Traits::kBarDqEmpty + 1);
        }
      });
  if (lane == 0) bulk_wait_all();
}

}  // namespace bwd
}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
