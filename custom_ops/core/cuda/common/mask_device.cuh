// Device side of the FlashMask column semantics: which mask head serves a
// query head, the per-tile bounds (from the preprocessing workspace, or the
// constant "no mask" bounds), the element test, and the CTA-wide compaction
// of the tiles a CTA must visit (fully masked tiles never enter the list, so
// they cost no loads and no math).
#pragma once

#include <type_traits>

#include "core/cuda/common/cuda_check.h"
#include "core/cuda/common/tile_size.h"
#include "core/flashmask_params.h"
#include "core/mask_bounds.h"

namespace flashmask {
namespace cuda {

__device__ __forceinline__ int mask_head_of(const FwdParams& p, int h) {
  if (p.mask.heads <= 1) return 0;
  if (p.mask.heads == p.num_heads) return h;
  return h / (p.num_heads / p.num_heads_k);
}

// Paddle's block_mask: whether the 128x128 block holding the tile whose first
// row is r0 and first key c0 is kept (no block mask: always). Every kernel
// tile nests in one such block (tile_size.h), so one lookup decides the tile.
__device__ __forceinline__ bool block_kept(const FwdParams& p, int b, int h, int r0, int c0) {
  const BlockMaskArgs& bm = p.block_mask;
  if (bm.heads == 0) return true;
  const int hb = bm.heads == 1 ? 0 : bm.heads == p.num_heads ? h : h / (p.num_heads / p.num_heads_k);
  const int blocks_k = (p.seqlen_k + kBlockMaskSize - 1) / kBlockMaskSize;  // block_mask_blocks(Sk)
  const int64_t at = b * bm.batch_stride + hb * bm.head_stride +
                     static_cast<int64_t>(r0 / kBlockMaskSize) * blocks_k + c0 / kBlockMaskSize;
  return __ldg(bm.blocks + at) != 0;
}

// Bounds of a column when there is no mask tensor: both bands empty.
__device__ __forceinline__ TileBounds no_mask_bounds(int sq) {
  return TileBounds{sq, sq, sq, sq, 0, 0, 0, 0};
}

struct MaskCols {
  const int32_t* col0;  // column 0 of this (batch, mask head); nullptr: no mask tensor
  int ncols, seqlen_q, seqlen_k, shift;
  bool causal;

  __device__ __forceinline__ ColumnBounds column(int j) const {
    if (col0 == nullptr) return ColumnBounds{seqlen_q, seqlen_q, 0, 0};
    return decode_column(col0 + static_cast<int64_t>(j) * ncols, ncols, causal, seqlen_q);
  }
  // Key j (must be < seqlen_k for the column read) masked for row i.
  __device__ __forceinline__ bool masked(const ColumnBounds& c, int i, int j) const {
    return j >= seqlen_k || element_masked(c, i, j, causal, shift);
  }
};

__device__ __forceinline__ MaskCols mask_cols(const FwdParams& p, int b, int hm) {
  MaskCols m;
  m.col0 = p.mask.ncols > 0 ? p.mask.startend + b * p.mask.batch_stride + hm * p.mask.head_stride
                            : nullptr;
  m.ncols = p.mask.ncols;
  m.seqlen_q = p.seqlen_q;
  m.seqlen_k = p.seqlen_k;
  m.shift = p.seqlen_k - p.seqlen_q;
  m.causal = p.causal;
  return m;
}

// Kernels that split causal-only tiles out (tile_kind<true>) list them as
// kTileCausalOnly (mask_bounds.h) and test their elements against a per-row
// last key (last_key): the causal diagonal tiles of plain causal attention
// and of document masks.
// Kind of the (rows [r0, r1), keys [c0, c0 + width)) tile; a tile that runs
// past seqlen_k is never "unmasked" (its padding columns must be masked).
template <bool kSplitCausal = false>
__device__ __forceinline__ int tile_kind(const TileBounds& t, int r0, int r1, int c0,
                                         const FwdParams& p, int width = kBoundsTile) {
  const int c1 = min(c0 + width, p.seqlen_k);
  TileKind k = classify_tile(t, r0, r1, c0, c1, p.causal, p.seqlen_k - p.seqlen_q);
  if (k == TileKind::kUnmasked && c0 + width > p.seqlen_k) k = TileKind::kPartial;
  return kSplitCausal ? split_causal_only(k, t, r0, r1) : static_cast<int>(k);
}

// The last key row i sees on a kTileCausalOnly tile (keys past it are masked).
__device__ __forceinline__ int last_key(int i, const FwdParams& p) {
  return p.causal ? min(p.seqlen_k - 1, i + (p.seqlen_k - p.seqlen_q)) : p.seqlen_k - 1;
}

// The step variant a visited tile runs: no element mask, the causal-only
// test, or the full column test.
enum class ElementMask { kNone, kCausal, kColumns };
template <ElementMask M>
using MaskTag = std::integral_constant<ElementMask, M>;

// step(args..., MaskTag<..>{}) for a tile of kind `kind` (a compact_tiles
// entry & 3).
template <typename Step, typename... Args>
__device__ __forceinline__ void run_step(int kind, Step& step, Args... args) {
  if (kind == static_cast<int>(TileKind::kPartial))
    step(args..., MaskTag<ElementMask::kColumns>{});
  else if (kind == kTileCausalOnly)
    step(args..., MaskTag<ElementMask::kCausal>{});
  else
    step(args..., MaskTag<ElementMask::kNone>{});
}

// step(entry, next, it, MaskTag<..>{}) for every entry of a compact_tiles<..,
// true> list (its entries, then a negative sentinel); `first` is list[0];
// `next` is the following entry or the sentinel, `it` the entry's position.
// Returns the sentinel. The loop carries the entry and a pointer, not an
// index, the count and the list base: ptxas spilled those, and every step
// then began with a local load, the dependent shared load of its entry and
// the branch on it (~4 % of the sm80 forward's stall samples).
template <typename Step>
__device__ __forceinline__ int visit_tiles(const int* list, int first, Step& step) {
  int entry = first, it = 0;
  for (const int* e = list + 1; entry >= 0; ++e, ++it) {
    const int next = *e;
    run_step(entry & 3, step, entry, next, it);
    entry = next;
  }
  return entry;
}

// Bounds of key tiles [n0, n0 + count) of 64 keys merged (count tiles exist
// only below n_tiles_k).
__device__ __forceinline__ TileBounds merged_bounds(const TileBounds* tb, int n0, int count,
                                                    int n_tiles_k) {
  TileBounds t = tb[n0];
  for (int n = n0 + 1; n < n0 + count && n < n_tiles_k; ++n) {
    merge_tile_bounds(t, tb[n]);
  }
  return t;
}

// list[0 .. return) = (index << 2 | kind) of every index in [lo, hi) whose
// kind(index) is not fully masked, ascending; with kSentinel, and lo < hi,
// list[return] = sentinel (negative) too (list must then hold hi - lo + 1
// ints). All NTHREADS threads call it; `scratch` holds NTHREADS / 32 ints of
// shared memory (apart from the list). Ends with a barrier.
template <int NTHREADS = sm80::kThreads, bool kSentinel = false, typename KindFn>
__device__ int compact_tiles(int lo, int hi, KindFn kind_of, int* list, int* scratch,
                             int sentinel = -1) {
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  int total = 0;
  for (int base = lo; base < hi; base += NTHREADS) {
    const int idx = base + tid;
    const int kind = idx < hi ? kind_of(idx) : 0;
    const unsigned ballot = __ballot_sync(0xffffffffu, kind != 0);
    if (lane == 0) scratch[warp] = __popc(ballot);
    __syncthreads();
    int before = 0, chunk = 0;
#pragma unroll
    for (int w = 0; w < NTHREADS / 32; ++w) {
      before += w < warp ? scratch[w] : 0;
      chunk += scratch[w];
    }
    if (kind != 0) list[total + before + __popc(ballot & ((1u << lane) - 1u))] = (idx << 2) | kind;
    total += chunk;
    if (kSentinel && tid == 0 && base + NTHREADS >= hi) list[total] = sentinel;
    __syncthreads();
  }
  return total;
}

// The tiles [lo, hi) in chunks of sm80::kTileListCap candidates: per chunk,
// list = compact_tiles<NTHREADS, true>(chunk) (so list holds kTileListCap + 1
// ints, whatever the sequence length), then visit_chunk(count) (count >= 0),
// which returns the list's sentinel (list[count]). A chunk's pipeline starts
// from its first entry: one restart per chunk with visible tiles, none inside
// the visit loop. All NTHREADS threads call it; compact_tiles' first barrier
// orders the previous chunk's reads of the list before its rewrite. Where to
// go on is in the sentinel, ~(next chunk's first index) or -1 after the last
// chunk, not in a register live across the steps.
template <int NTHREADS, typename KindFn, typename VisitFn>
__device__ __forceinline__ void for_each_tile_chunk(int lo, int hi, KindFn kind_of, int* list,
                                                    int* scratch, VisitFn visit_chunk) {
  if (lo >= hi) return;
  int c = lo;
  do {
    const int end = min(c + sm80::kTileListCap, hi);
    const int count = compact_tiles<NTHREADS, true>(c, end, kind_of, list, scratch, end < hi ? ~end : -1);
    c = ~visit_chunk(count);  // 0 after the last chunk
  } while (c > 0);
}

}  // namespace cuda
}  // namespace flashmask
