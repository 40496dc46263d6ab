// The mask on the sm90 path, in three places that must agree:
//   * block_kind(): fully masked / partial / causal-only / unmasked for a
//     (BM query rows, BN keys) block, from the prep.cu TileBounds (BN / 64 of
//     them merged).
//     The producer (what to load), the work counter of the scheduler and,
//     through the meta messages, the consumers all use this one function.
//   * encode_column(): the producer folds a key column's FlashMask bands,
//     causal masking and the seqlen_k tail into two row intervals.
//   * apply_mask(): consumers test each score of a partial block against the
//     two intervals of its column (read from the meta message in smem);
//     apply_causal_mask(): a causal-only block (the diagonal: no band reaches
//     its rows) needs one compare per score and no column data at all.
#pragma once

#include <cute/tensor.hpp>
#include <math_constants.h>

#include "../../flashmask_params.h"
#include "../../mask_bounds.h"

namespace flashmask {
namespace cuda {
namespace sm90 {

// Host and device: the host unit test (test/mask_host_test.cu) runs these.
#define FM90_HD __host__ __device__ __forceinline__

struct MaskGeom {
  const TileBounds* bounds;  // nullptr: no mask tensor
  int n_tiles64, seqlen_q, seqlen_k, shift;
  bool causal;
};

FM90_HD int mask_head_of(int h, int mask_heads, int num_heads, int num_heads_k) {
  if (mask_heads <= 1) return 0;
  if (mask_heads == num_heads) return h;
  return h / (num_heads / num_heads_k);
}

// block_kind() values: TileKind's three, plus mask_bounds.h's causal-only
// kind for the partial blocks masked by causality alone (here only blocks
// with no padding keys: the consumers' causal test does not mask those).
constexpr int kBlockFullyMasked = static_cast<int>(TileKind::kFullyMasked);
constexpr int kBlockPartial = static_cast<int>(TileKind::kPartial);
constexpr int kBlockUnmasked = static_cast<int>(TileKind::kUnmasked);
constexpr int kBlockCausalOnly = kTileCausalOnly;

// Key blocks [0, n_end) can hold unmasked keys for rows < r1.
template <int BN>
FM90_HD int n_block_end(const MaskGeom& g, int r1) {
  const int col_end = g.causal ? min(g.seqlen_k, max(0, r1 + g.shift)) : g.seqlen_k;
  return (col_end + BN - 1) / BN;
}

// `tb`: this (batch, mask head)'s row of prep tile bounds (unused without mask).
template <int BN>
FM90_HD int block_kind(const MaskGeom& g, const TileBounds* tb, int r0, int r1,
                                          int n) {
  constexpr int kSub = BN / 64;
  const int c0 = n * BN, c1 = min(c0 + BN, g.seqlen_k);
  TileBounds t;
  if (g.bounds != nullptr) {
    t = tb[n * kSub];
#pragma unroll
    for (int s = 1; s < kSub; ++s) {
      if (n * kSub + s < g.n_tiles64) {
        merge_tile_bounds(t, tb[n * kSub + s]);
      }
    }
  } else {
    t = TileBounds{g.seqlen_q, g.seqlen_q, g.seqlen_q, g.seqlen_q, 0, 0, 0, 0};
  }
  const TileKind k = classify_tile(t, r0, r1, c0, c1, g.causal, g.shift);
  // a block running past seqlen_k is neither unmasked nor causal-only: its
  // padding keys must go
  const bool whole = c0 + BN <= g.seqlen_k;
  if (!whole) return k == TileKind::kFullyMasked ? kBlockFullyMasked : kBlockPartial;
  return split_causal_only(k, t, r0, r1);
}

// The raw ncols ints of key column j (zeros past seqlen_k or without a mask
// tensor). Predicated loads with no data-dependent branch, so the loads of
// several columns can all be in flight at once.
FM90_HD void load_column(const int32_t* col0, int ncols, int j, const MaskGeom& g,
                                            int32_t (&raw)[4]) {
  const bool ok = col0 != nullptr && j < g.seqlen_k;
  const int32_t* c = ok ? col0 + static_cast<int64_t>(j) * ncols : col0;
#pragma unroll
  for (int t = 0; t < 4; ++t) {
#if defined(__CUDA_ARCH__)
    raw[t] = (ok && t < ncols) ? __ldg(c + t) : 0;
#else
    raw[t] = (ok && t < ncols) ? c[t] : 0;
#endif
  }
}

// Column j's masked rows as two half-open intervals {lo0, hi0, lo1, hi1}.
// The causal layouts have no upper band, so causal (rows i < j - shift are
// masked) takes the second interval; keys past seqlen_k mask every row.
FM90_HD int4 encode_column(const int32_t (&raw)[4], bool has_mask, int ncols, int j,
                                              const MaskGeom& g) {
  if (j >= g.seqlen_k) return make_int4(-2147483647 - 1, 2147483647, 0, 0);
  ColumnBounds c{g.seqlen_q, g.seqlen_q, 0, 0};
  if (has_mask) c = decode_column(raw, ncols, g.causal, g.seqlen_q);
  if (g.causal) {
    c.uts = 0;
    c.ute = j - g.shift;
  }
  return make_int4(c.lts, c.lte, c.uts, c.ute);
}

// Scores of a partial block (rowcol view `s`, coordinate view `c` of the same
// shape, coordinates relative to the block) -> -inf where masked.
template <class TS, class TC>
__device__ __forceinline__ void apply_mask(TS& s, const TC& c, const int4* cols, int row0) {
  using namespace cute;
#pragma unroll
  for (int ni = 0; ni < size<1>(s); ++ni) {
    const int4 cb = cols[get<1>(c(0, ni))];
#pragma unroll
    for (int mi = 0; mi < size<0>(s); ++mi) {
      const int i = row0 + get<0>(c(mi, ni));
      const bool masked = (i >= cb.x && i < cb.y) || (i >= cb.z && i < cb.w);
      if (masked) s(mi, ni) = -CUDART_INF_F;
    }
  }
}

// Scores of a causal-only block -> -inf where the key is past the row's last
// visible one: key c0 + c is masked for row row0 + r iff c > r + row0 + shift - c0.
template <class TS, class TC>
__device__ __forceinline__ void apply_causal_mask(TS& s, const TC& c, int row0_shift_minus_c0) {
  using namespace cute;
#pragma unroll
  for (int mi = 0; mi < size<0>(s); ++mi) {
    const int last = row0_shift_minus_c0 + get<0>(c(mi, 0));
#pragma unroll
    for (int ni = 0; ni < size<1>(s); ++ni)
      if (get<1>(c(mi, ni)) > last) s(mi, ni) = -CUDART_INF_F;
  }
}

}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
