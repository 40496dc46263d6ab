// Persistent tile scheduler, longest work first.
//
// A work tile is (batch, head, m_block of BM query rows); its work is the
// number of key blocks the mask leaves (block_kind != fully masked), which
// the TileBounds give without touching the mask itself. Before the attention
// kernel, two small kernels
//   work_count_kernel: work[b][hm][m] (one warp per (b, mask head, m_block)),
//   work_sort_kernel:  order[] = every (b, h, m) by work, descending within
//                      its L2 section (one CTA per section, counting sort),
// then the persistent CTAs (one per SM) take tiles in that order: the first
// one is blockIdx.x, the next ones come from an atomic counter, so a CTA that
// drew a heavy tile simply draws fewer (greedy LPT).
//
// L2 sections: sorting every tile by work alone would scatter the CTAs over
// all (batch, head)s at once, and each would stream its head's K/V from HBM
// (e.g. 64 heads x 4 MB of K/V at 8k x d128 - far past the 50 MB L2). So the
// (b, h) pairs are cut into sections of `heads_per_section` consecutive pairs
// whose K/V fit in about half the L2 (GQA groups are consecutive query heads,
// so they share a section), and the order is section-major, longest work
// first inside a section. The counter lets CTAs flow into the next section
// without any barrier.
//
// Without a mask tensor the order is static (per section: heaviest m_block
// first, exact for causal) and needs no sort; without the extra workspace
// the CTAs stride by gridDim.x.
//
// Only the producer warp talks to the scheduler; it forwards each tile to the
// consumers as a kMsgTile message, so there is no scheduler barrier.
#pragma once

#include "core/cuda/sm90/fwd/traits.h"
#include "core/cuda/sm90/common/mask.cuh"

namespace flashmask {
namespace cuda {
namespace sm90 {

struct WorkTile {
  int b, h, m;
};

template <typename Traits>
struct TileScheduler {
  const KernelParams<Traits>& p;
  int tile;

  __device__ __forceinline__ explicit TileScheduler(const KernelParams<Traits>& params)
      : p(params), tile(blockIdx.x) {}

  __device__ __forceinline__ bool valid() const { return tile < p.total_tiles; }

  __device__ __forceinline__ WorkTile decode() const {
    WorkTile w;
    if (p.order != nullptr) {
      const int packed = p.order[tile];  // (b * H + h) * M + m
      w.m = packed % p.m_blocks;
      const int bh = packed / p.m_blocks;
      w.h = bh % p.num_heads;
      w.b = bh / p.num_heads;
    } else {  // per L2 section: heaviest m_block first (causal), then (b, h)
      const int per_sec = p.heads_per_section * p.m_blocks;
      const int sec = tile / per_sec, rem = tile - sec * per_sec;
      const int bh0 = sec * p.heads_per_section;
      const int nbh = min(p.heads_per_section, p.batch * p.num_heads - bh0);
      w.m = p.m_blocks - 1 - rem / nbh;
      const int bh = bh0 + rem % nbh;
      w.h = bh % p.num_heads;
      w.b = bh / p.num_heads;
    }
    return w;
  }

  // Called by the whole producer warp; lane 0 draws, everyone gets the tile.
  __device__ __forceinline__ void advance() {
    int next = 0;
    if (threadIdx.x % 32 == 0)
      next = p.counter != nullptr ? static_cast<int>(gridDim.x) + atomicAdd(p.counter, 1)
                                  : tile + static_cast<int>(gridDim.x);
    tile = __shfl_sync(0xffffffffu, next, 0);
  }
};

// ---- pre-pass kernels ------------------------------------------------------

template <int BM, int BN>
__global__ void work_count_kernel(MaskGeom g, int mask_heads, int m_blocks, int total,
                                  int32_t* work) {
  const int w = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (w >= total) return;
  const int m = w % m_blocks;
  const int bhm = w / m_blocks;  // b * mask_heads + hm
  const TileBounds* tb = g.bounds + static_cast<int64_t>(bhm) * g.n_tiles64;
  const int r0 = m * BM, r1 = min(r0 + BM, g.seqlen_q);
  const int n_end = n_block_end<BN>(g, r1);
  int count = 0;
  for (int n = lane; n < n_end; n += 32) count += block_kind<BN>(g, tb, r0, r1, n) != 0;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) count += __shfl_xor_sync(0xffffffffu, count, o);
  if (lane == 0) work[w] = count;
}

constexpr int kSortThreads = 256;
constexpr int kSortBins = 2048;

// One CTA per L2 section (its tiles are the consecutive indices
// [bh0 * M, (bh0 + nbh) * M), and so are their places in order[]): order[] =
// the section's tile indices (b * H + h) * M + m, heaviest first, by a
// counting sort on the work level (levels are exact while max_work + 1 <=
// kSortBins). A single CTA for all sections took most of the prep time on
// short masks (32K tiles at 8K).
// (a template only so that every instantiation unit may define it)
template <int kBins = kSortBins>
__global__ void __launch_bounds__(kSortThreads)
    work_sort_kernel(const int32_t* work, int batch, int num_heads, int num_heads_k, int mask_heads,
                     int m_blocks, int heads_per_section, int max_work, int32_t* order) {
  __shared__ int bins[kBins];
  __shared__ int warp_sums[kSortThreads / 32];
  const int tid = threadIdx.x;
  const int bh0 = blockIdx.x * heads_per_section;
  const int first = bh0 * m_blocks;
  const int count = min(heads_per_section, batch * num_heads - bh0) * m_blocks;
  const int levels = min(kBins, max_work + 1);
  for (int i = tid; i < kBins; i += kSortThreads) bins[i] = 0;
  __syncthreads();
  auto key_of = [&](int t) {
    const int m = t % m_blocks;
    const int bh = t / m_blocks;
    const int h = bh % num_heads, b = bh / num_heads;
    const int hm = mask_head_of(h, mask_heads, num_heads, num_heads_k);
    const int wk = work[(static_cast<int64_t>(b) * mask_heads + hm) * m_blocks + m];
    return levels - 1 - static_cast<int>(static_cast<int64_t>(wk) * levels / (max_work + 1));
  };
  for (int i = tid; i < count; i += kSortThreads) atomicAdd(&bins[key_of(first + i)], 1);
  __syncthreads();
  // exclusive scan of bins: each thread owns kBins / kSortThreads of them
  constexpr int kPer = kBins / kSortThreads;
  int local[kPer], sum = 0;
#pragma unroll
  for (int k = 0; k < kPer; ++k) {
    local[k] = sum;
    sum += bins[tid * kPer + k];
  }
  int incl = sum;
  const int lane = tid & 31, warp = tid >> 5;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const int y = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += y;
  }
  if (lane == 31) warp_sums[warp] = incl;
  __syncthreads();
  if (warp == 0) {
    constexpr int kWarps = kSortThreads / 32;
    const int x = lane < kWarps ? warp_sums[lane] : 0;
    int xi = x;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const int y = __shfl_up_sync(0xffffffffu, xi, o);
      if (lane >= o) xi += y;
    }
    if (lane < kWarps) warp_sums[lane] = xi - x;  // exclusive
  }
  __syncthreads();
  const int base = warp_sums[warp] + incl - sum;
#pragma unroll
  for (int k = 0; k < kPer; ++k) bins[tid * kPer + k] = base + local[k];
  __syncthreads();
  for (int i = tid; i < count; i += kSortThreads) order[first + atomicAdd(&bins[key_of(first + i)], 1)] = first + i;
}

}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
