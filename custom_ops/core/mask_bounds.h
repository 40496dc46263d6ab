// The FlashMask column semantics, shared by every kernel (host and device).
//
// Key column j masks query row i iff
//     lts <= i < lte      (lower-triangle band)   or
//     uts <= i < ute      (upper-triangle band)   or
//     causal && j > i + (seqlen_k - seqlen_q).
// The stored column layouts decode to that normal form:
//     causal,   1 col  [LTS]            -> lte = Sq, no upper band
//     causal,   2 cols [LTS, LTE]       -> no upper band
//     non-causal 2 cols [LTS, UTE]      -> lte = Sq, uts = 0
//     non-causal 4 cols [LTS, LTE, UTS, UTE]
//     no mask (0 cols)                  -> both bands empty
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define FM_HD __host__ __device__ __forceinline__
#else
#define FM_HD inline
#endif

namespace flashmask {

struct ColumnBounds {
  int32_t lts, lte, uts, ute;
};

// `col` points at the ncols int32 values of one key column.
FM_HD ColumnBounds decode_column(const int32_t* col, int ncols, bool causal, int32_t seqlen_q) {
  ColumnBounds c{seqlen_q, seqlen_q, 0, 0};
  if (ncols == 0) return c;
  c.lts = col[0];
  if (causal) {
    if (ncols == 2) c.lte = col[1];
  } else if (ncols == 2) {
    c.ute = col[1];
  } else {  // 4 columns
    c.lte = col[1];
    c.uts = col[2];
    c.ute = col[3];
  }
  return c;
}

// Bitwise, not short-circuit: straight-line predicate logic in the kernels'
// element loops (the short-circuit form compiled to a branch per test).
FM_HD bool column_masks_row(const ColumnBounds& c, int32_t row) {
  return ((row >= c.lts) & (row < c.lte)) | ((row >= c.uts) & (row < c.ute));
}

// Per key tile: min and max of each bound over the tile's columns. Kernels
// classify a (query tile, key tile) pair from these eight numbers alone.
struct TileBounds {
  int32_t lts_min, lts_max, lte_min, lte_max;
  int32_t uts_min, uts_max, ute_min, ute_max;
};

FM_HD TileBounds empty_tile_bounds() {
  const int32_t lo = -2147483647 - 1, hi = 2147483647;
  return TileBounds{hi, lo, hi, lo, hi, lo, hi, lo};
}

// Bounds of the union of two column ranges (e.g. two 64-column tiles seen as one block).
FM_HD void merge_tile_bounds(TileBounds& t, const TileBounds& u) {
  t.lts_min = u.lts_min < t.lts_min ? u.lts_min : t.lts_min;
  t.lts_max = u.lts_max > t.lts_max ? u.lts_max : t.lts_max;
  t.lte_min = u.lte_min < t.lte_min ? u.lte_min : t.lte_min;
  t.lte_max = u.lte_max > t.lte_max ? u.lte_max : t.lte_max;
  t.uts_min = u.uts_min < t.uts_min ? u.uts_min : t.uts_min;
  t.uts_max = u.uts_max > t.uts_max ? u.uts_max : t.uts_max;
  t.ute_min = u.ute_min < t.ute_min ? u.ute_min : t.ute_min;
  t.ute_max = u.ute_max > t.ute_max ? u.ute_max : t.ute_max;
}

FM_HD void extend_tile_bounds(TileBounds& t, const ColumnBounds& c) {
  merge_tile_bounds(t, TileBounds{c.lts, c.lts, c.lte, c.lte, c.uts, c.uts, c.ute, c.ute});
}

enum class TileKind : int32_t { kFullyMasked = 0, kPartial = 1, kUnmasked = 2 };

// No column's band (lower or upper) reaches any of rows [r0, r1).
FM_HD bool bands_clear(const TileBounds& t, int32_t r0, int32_t r1) {
  const bool lower_clear = t.lts_min >= r1 || t.lte_max <= r0 || t.lts_min >= t.lte_max;
  const bool upper_clear = t.uts_min >= r1 || t.ute_max <= r0 || t.uts_min >= t.ute_max;
  return lower_clear && upper_clear;
}

// Rows [r0, r1) against key columns [c0, c1) (both non-empty). `causal_shift`
// is seqlen_k - seqlen_q. Conservative: kPartial is always a correct answer.
FM_HD TileKind classify_tile(const TileBounds& t, int32_t r0, int32_t r1, int32_t c0, int32_t c1,
                             bool causal, int32_t causal_shift) {
  // Every column's band covers every row of the tile.
  const bool lower_covers = t.lts_max <= r0 && t.lte_min >= r1;
  const bool upper_covers = t.uts_max <= r0 && t.ute_min >= r1;
  const bool causal_covers = causal && c0 > (r1 - 1) + causal_shift;
  if (lower_covers || upper_covers || causal_covers) return TileKind::kFullyMasked;
  const bool causal_clear = !causal || (c1 - 1) <= r0 + causal_shift;
  if (bands_clear(t, r0, r1) && causal_clear) return TileKind::kUnmasked;
  return TileKind::kPartial;
}

// A partial tile whose bands clear every row is masked only by the causal
// diagonal (and, past seqlen_k, by padding keys): kernels that split such
// tiles out give them this kind and a one-compare element test instead of
// decoding every column.
constexpr int32_t kTileCausalOnly = 3;

// `k` from classify_tile, or kTileCausalOnly for such a tile.
FM_HD int32_t split_causal_only(TileKind k, const TileBounds& t, int32_t r0, int32_t r1) {
  return k == TileKind::kPartial && bands_clear(t, r0, r1) ? kTileCausalOnly : static_cast<int32_t>(k);
}

FM_HD bool element_masked(const ColumnBounds& c, int32_t row, int32_t col, bool causal,
                          int32_t causal_shift) {
  return column_masks_row(c, row) | (causal & (col > row + causal_shift));
}

}  // namespace flashmask
