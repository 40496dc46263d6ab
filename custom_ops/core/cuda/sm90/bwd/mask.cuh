// The mask in the column direction. A CTA owns one key block (kBlockN keys)
// for all query blocks, so:
//   * block_kind_col(): fully masked / partial / unmasked for (query block m,
//     key block n), from prep/mask_bounds.cu's TileBounds (the two 64-key tiles of the
//     key block merged once per head). Producer, consumers, the dQ writer and
//     the deterministic ordering (next_visible_block) all use this one
//     function, so they agree on the visited blocks by construction.
//   * each consumer thread owns 2 key rows of the S^T accumulator; their
//     masked query intervals (both FlashMask bands, causal and the seqlen_k
//     tail folded in: encode_column of ../mask.cuh) sit in registers for the
//     whole head: a partial block costs 4 compares per element, no smem.
#pragma once

#include "core/cuda/sm90/common/mask.cuh"
#include "core/cuda/sm90/bwd/traits.h"

namespace flashmask {
namespace cuda {
namespace sm90 {
namespace bwd {

FM90_HD TileBounds no_mask_bounds(int seqlen_q) {
  return TileBounds{seqlen_q, seqlen_q, seqlen_q, seqlen_q, 0, 0, 0, 0};
}

// Merged TileBounds of key block n (kBlockN / 64 prep tiles) for mask head hm.
template <int BN, class P>
__device__ __forceinline__ TileBounds key_block_bounds(const P& p, int b, int hm, int n) {
  if (p.bounds == nullptr) return no_mask_bounds(p.seqlen_q);
  constexpr int kSub = BN / kPrepTileN;
  const TileBounds* tb = p.bounds + (static_cast<int64_t>(b) * p.mask_heads + hm) * p.n_tiles64;
  TileBounds t = tb[n * kSub];
#pragma unroll
  for (int s = 1; s < kSub; ++s)
    if (n * kSub + s < p.n_tiles64) merge_tile_bounds(t, tb[n * kSub + s]);
  return t;
}

template <int BM, int BN>
FM90_HD int block_kind_col(const TileBounds& t, int m, int n, int seqlen_q, int seqlen_k, bool causal) {
  const int r0 = m * BM, r1 = min(r0 + BM, seqlen_q);
  const int c0 = n * BN, c1 = min(c0 + BN, seqlen_k);
  TileKind k = classify_tile(t, r0, r1, c0, c1, causal, seqlen_k - seqlen_q);
  // a block running past seqlen_k is never unmasked: its padding keys must go
  if (k == TileKind::kUnmasked && c0 + BN > seqlen_k) k = TileKind::kPartial;
  return static_cast<int>(k);
}

// Whether block (m, n) is not fully masked for mask head hm and, with
// bm_row (BlockMaskView::row of the query head; nullptr: ignore), kept by the
// block mask (the deterministic order's scans; the walks classify once per
// head instead).
template <int BM, int BN, class P>
__device__ __forceinline__ bool block_visible(const P& p, int b, int hm, const int32_t* bm_row, int m, int n) {
  if (!p.block_mask.kept(bm_row, m * BM, n * BN)) return false;
  const TileBounds t = key_block_bounds<BN>(p, b, hm, n);
  return block_kind_col<BM, BN>(t, m, n, p.seqlen_q, p.seqlen_k, p.causal) !=
         static_cast<int>(TileKind::kFullyMasked);
}

// First query block that can see key block n (causal rows i < c0 - shift see none of it).
template <int BM, int BN>
FM90_HD int m_block_begin(int n, int seqlen_q, int seqlen_k, bool causal) {
  if (!causal) return 0;
  const int first_row = n * BN - (seqlen_k - seqlen_q);
  return first_row <= 0 ? 0 : first_row / BM;
}

// Deterministic mode: the dQ tile of query block m receives its adds in
// descending key-block order, so key block n waits for the smallest key block
// n' > n whose (m, n') block is not fully masked for this mask head (-1: none,
// n adds first). Descending, not ascending: under a causal mask key block n
// reaches query block m one step after key block n + 1 did, so nobody idles
// (ascending order chains every column behind key block 0). With a mask the
// scan stops at the tile's last visible key block (last_visible_kernel), so
// the first adder of a tile (e.g. a document's last key block) does not scan
// every later key block of the row: at 32K that was up to 8 dependent warp
// steps per block, on the chain's first link. The first step does not wait
// for that bound (nothing past it is visible anyway), so its two loads are
// one L2 round trip, not two. One warp; all lanes get it.
template <int BM, int BN, class P>
__device__ __forceinline__ int next_visible_block(const P& p, int b, int hq, int hm, int m, int n) {
  const int n_blocks = (p.seqlen_k + BN - 1) / BN;
  const int lane = threadIdx.x % 32;
  const int32_t* bm_row = p.block_mask.row(b, hq, p.num_heads, p.num_heads_k);
  // without a mask tensor or a block mask the visible key blocks of a query block are a prefix
  const bool prefix = p.bounds == nullptr && bm_row == nullptr;
  const int span = prefix ? 1 : 32;
  const int last = p.last_visible == nullptr
                       ? n_blocks - 1
                       : p.last_visible[(static_cast<int64_t>(b) * p.mask_heads + hm) * p.m_blocks + m];
  for (int base = n + 1; base < n_blocks; base += span) {
    const int n2 = base + lane;
    const bool vis = lane < span && n2 < n_blocks && block_visible<BM, BN>(p, b, hm, bm_row, m, n2);
    const unsigned bal = __ballot_sync(0xffffffffu, vis);
    if (bal != 0u) return base + (__ffs(bal) - 1);  // lowest lane = lowest block
    if (prefix || base + span > last) break;
  }
  return -1;
}

// Deterministic mode with a mask tensor, before the main kernel: the last key
// block that query block m sees, per (b, mask head, m) (-1: none), without the
// block mask (per query head): an upper bound is all the scan needs. One warp
// per query block, 32 key blocks per step from the last one down.
template <int BM, int BN, class P>
__global__ void __launch_bounds__(256) last_visible_kernel(const __grid_constant__ P p) {
  const int64_t w = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (w >= static_cast<int64_t>(p.batch) * p.mask_heads * p.m_blocks) return;  // whole warps
  const int m = static_cast<int>(w % p.m_blocks);
  const int hm = static_cast<int>((w / p.m_blocks) % p.mask_heads);
  const int b = static_cast<int>(w / (static_cast<int64_t>(p.m_blocks) * p.mask_heads));
  int last = -1;
  for (int top = (p.seqlen_k + BN - 1) / BN - 1; top >= 0; top -= 32) {
    const int n = top - lane;
    const bool vis = n >= 0 && block_visible<BM, BN>(p, b, hm, nullptr, m, n);
    const unsigned bal = __ballot_sync(0xffffffffu, vis);
    if (bal != 0u) {
      last = top - (__ffs(bal) - 1);  // lowest lane = highest block
      break;
    }
  }
  if (lane == 0) p.last_visible[w] = last;
}

// With a block_mask, before the main kernel: the block mask by key column,
// 32 block rows per word (bit i of word w: block row 32 w + i kept), so a
// walk reads one word per 32 block rows and jumps over dropped ones, instead
// of one dependent load per query block, each from another cache line (the
// entries of a column are a block-mask row apart). One thread per (b, block-
// mask head, word, key column), the columns consecutive: its 32 row loads
// are coalesced across the warp.
template <class P>
__global__ void __launch_bounds__(256) pack_block_mask_columns(const __grid_constant__ P p) {
  const BlockMaskView& bm = p.block_mask;
  const int cols = bm.cols, rows = (p.seqlen_q + kBlockMaskSize - 1) / kBlockMaskSize;
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= static_cast<int64_t>(p.batch) * bm.heads * p.block_words * cols) return;
  const int j = static_cast<int>(t % cols);
  const int word = static_cast<int>((t / cols) % p.block_words);
  const int64_t bh = t / (static_cast<int64_t>(cols) * p.block_words);  // b * heads + hb
  const int32_t* src = bm.blocks + (bh / bm.heads) * bm.batch_stride + (bh % bm.heads) * bm.head_stride;
  uint32_t bits = 0;
  for (int i = 0; i < 32 && word * 32 + i < rows; ++i)
    bits |= static_cast<uint32_t>(__ldg(src + static_cast<int64_t>(word * 32 + i) * cols + j) != 0) << i;
  const_cast<uint32_t*>(p.block_bits)[(bh * cols + j) * p.block_words + word] = bits;
}

// The packed column of key block n (kBlockN keys) for query head hq; nullptr
// without a block mask.
template <int BN, class P>
__device__ __forceinline__ const uint32_t* block_mask_column(const P& p, int b, int hq, int n) {
  if (p.block_bits == nullptr) return nullptr;
  const BlockMaskView& bm = p.block_mask;
  const int hb = mask_head_of(hq, bm.heads, p.num_heads, p.num_heads_k);
  const int j = n * BN / kBlockMaskSize;
  return p.block_bits + ((static_cast<int64_t>(b) * bm.heads + hb) * bm.cols + j) * p.block_words;
}

FM90_HD int lowest_set_bit(uint32_t x) {
#if defined(__CUDA_ARCH__)
  return __ffs(x) - 1;
#else
  return __builtin_ctz(x);
#endif
}

// The first query block after m whose kind may differ from block m's
// (block_kind_col of key block n under t). Each test of classify_tile is
// r0 >= X (turns true at block ceil(X / BM)) or r1 <= X (turns false at block
// floor(X / BM)), so the kind is constant between those blocks: the walk
// classifies once per run of blocks, not once per block. Extra breaks are
// harmless (the next run classifies again).
template <int BM, int BN>
FM90_HD int kind_run_end(const TileBounds& t, int m, int n, int seqlen_q, int seqlen_k, bool causal) {
  const int shift = seqlen_k - seqlen_q;
  const int c0 = n * BN, c1 = min(c0 + BN, seqlen_k);
  int end = 2147483647;
  // a candidate block past m ends the run (X / BM truncates: floor for X >= 0;
  // a negative X gives a block <= 0 <= m, never a candidate)
  auto at = [&](int blk) { end = blk > m && blk < end ? blk : end; };
  auto r0_ge = [&](int x) { at(x / BM + (x % BM > 0 ? 1 : 0)); };
  auto r1_le = [&](int x) { at(x / BM); };
  r0_ge(t.lts_max), r0_ge(t.lte_max), r0_ge(t.uts_max), r0_ge(t.ute_max);
  r1_le(t.lts_min), r1_le(t.lte_min), r1_le(t.uts_min), r1_le(t.ute_min);
  if (causal) {
    r0_ge(c1 - 1 - shift);  // causal_clear
    r1_le(c0 - shift);      // causal_covers
  }
  return end;
}

// The walk over one query head's blocks of key block n: on_block(m, kind)
// for each query block from m_begin that the block mask keeps (bits: the
// head's packed column, nullptr: no block mask; dropped block rows are jumped
// over a word at a time) and the column mask does not fully mask (t). Blocks
// are classified once per run of equal kind (kind_run_end): fully masked runs
// are jumped over whole (at 128K rows a key block has 2048 query blocks; a
// sliding window or a document leaves ~10 of them visible), and the blocks of
// a visible run cost one compare each.
template <int BM, int BN, class OnBlock>
FM90_HD void walk_head(const TileBounds& t, const uint32_t* bits, int m_begin, int m_blocks, int n, int seqlen_q,
                       int seqlen_k, bool causal, OnBlock&& on_block) {
  static_assert(kBlockMaskSize % BM == 0, "a query block lies in one block row");
  constexpr int kPerRow = kBlockMaskSize / BM;  // query blocks per block row
  int word_index = -1;
  uint32_t word = 0;
  for (int m = m_begin; m < m_blocks;) {
    const int kind = block_kind_col<BM, BN>(t, m, n, seqlen_q, seqlen_k, causal);
    const int end = min(m_blocks, kind_run_end<BM, BN>(t, m, n, seqlen_q, seqlen_k, causal));
    if (kind == static_cast<int>(TileKind::kFullyMasked)) {
      m = end;
      continue;
    }
    while (m < end) {
      if (bits != nullptr) {
        const int r = m / kPerRow;  // block row
        if (r / 32 != word_index) {
          word_index = r / 32;
          word = bits[word_index];
        }
        const uint32_t ahead = word >> (r % 32);
        if ((ahead & 1u) == 0u) {  // dropped: on to the next kept block row
          const int next_r = ahead == 0u ? (word_index + 1) * 32 : r + lowest_set_bit(ahead);
          m = next_r * kPerRow;
          continue;
        }
      }
      on_block(m, kind);
      ++m;
    }
  }
}

// Every role's walk over the visited (query head, query block) pairs of key
// block n: on_head(hq, hm) once per query head of the GQA group, then
// on_block(hq, hm, m, kind) for each block that is not fully masked (by the
// column mask or the block mask).
template <typename Traits, class P, class OnHead, class OnBlock>
__device__ __forceinline__ void walk_blocks(const P& p, int b, int hk, int n, OnHead&& on_head,
                                            OnBlock&& on_block) {
  constexpr int BM = Traits::kBlockM, BN = Traits::kBlockN;
  const int group = p.num_heads / p.num_heads_k;
  const int m_begin = m_block_begin<BM, BN>(n, p.seqlen_q, p.seqlen_k, p.causal);
  for (int gi = 0; gi < group; ++gi) {
    const int hq = hk * group + gi;
    const int hm = mask_head_of(hq, p.mask_heads, p.num_heads, p.num_heads_k);
    const TileBounds t = key_block_bounds<BN>(p, b, hm, n);
    on_head(hq, hm);
    walk_head<BM, BN>(t, block_mask_column<BN>(p, b, hq, n), m_begin, p.m_blocks, n, p.seqlen_q, p.seqlen_k,
                      p.causal, [&](int m, int kind) { on_block(hq, hm, m, kind); });
  }
}

}  // namespace bwd
}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
