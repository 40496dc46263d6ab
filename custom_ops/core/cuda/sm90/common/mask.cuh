// The mask on the sm90 path, in three places that must agree:
//   * block_kind(): fully masked / partial / causal-only / unmasked for a
//     (BM query rows, BN keys) block, from the prep/mask_bounds.cu TileBounds (BN / 64 of
//     them merged).
//     The producer (what to load), the work counter of the scheduler and,
//     through the meta messages, the consumers all use this one function.
//   * encode_column(): a key column's FlashMask bands, causal masking and
//     the seqlen_k tail folded into two row intervals (by the forward's mask
//     warps and the backward's consumers); row_mask_word() turns them into
//     one bit per row of the forward's work tile.
//   * apply_mask(): consumers test each score of a partial block against the
//     row bits of its column (read from the meta message in smem; one shift
//     per column pair and one bit test per score);
//     apply_causal_mask(): a causal-only block (the diagonal: no band reaches
//     its rows) needs one compare per score and no column data at all.
#pragma once

#include <cute/tensor.hpp>
#include <math_constants.h>

#include "core/flashmask_params.h"
#include "core/mask_bounds.h"

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

// The geometry from a kernel's parameters (the forward's and the backward's
// have these fields under the same names).
template <class Params>
FM90_HD MaskGeom mask_geom(const Params& p) {
  return MaskGeom{p.bounds, p.n_tiles64, p.seqlen_q, p.seqlen_k, p.seqlen_k - p.seqlen_q, p.causal};
}

FM90_HD int mask_head_of(int h, int mask_heads, int num_heads, int num_heads_k) {
  if (mask_heads <= 1) return 0;
  if (mask_heads == num_heads) return h;
  return h / (num_heads / num_heads_k);
}

// Paddle's block_mask (flashmask_params.h) on the sm90 path: row(b, h) is
// the [ceil(Sq/128)][cols] block row of batch b, query head h, or nullptr
// without a block mask; kept() decides a (BM x BN) block, which nests in one
// 128 x 128 block (tile_size.h), by one load.
struct BlockMaskView {
  const int32_t* blocks;  // nullptr: no block mask
  int32_t heads, cols;    // cols = ceil(seqlen_k / 128)
  int64_t batch_stride, head_stride;

  FM90_HD const int32_t* row(int b, int h, int num_heads, int num_heads_k) const {
    if (blocks == nullptr) return nullptr;
    return blocks + b * batch_stride + mask_head_of(h, heads, num_heads, num_heads_k) * head_stride;
  }
  // int64: a block row times cols passes 2^31 from Sq = Sk = 5.93M tokens (an 8 GiB block_mask)
  FM90_HD int64_t offset(int r0, int c0) const {
    return static_cast<int64_t>(r0 / kBlockMaskSize) * cols + c0 / kBlockMaskSize;
  }
  FM90_HD bool kept(const int32_t* row, int r0, int c0) const {
#if defined(__CUDA_ARCH__)
    return row == nullptr || __ldg(row + offset(r0, c0)) != 0;
#else
    return row == nullptr || row[offset(r0, c0)] != 0;
#endif
  }
};

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
// several columns can all be in flight at once. kMaxCols >= ncols: the ints
// past it are constant zeros (no registers held for them while in flight).
template <int kMaxCols = 4>
FM90_HD void load_column(const int32_t* col0, int ncols, int j, const MaskGeom& g,
                                            int32_t (&raw)[4]) {
  const bool ok = col0 != nullptr && j < g.seqlen_k;
  const int32_t* c = ok ? col0 + static_cast<int64_t>(j) * ncols : col0;
#pragma unroll
  for (int t = 0; t < 4; ++t) {
#if defined(__CUDA_ARCH__)
    raw[t] = (t < kMaxCols && ok && t < ncols) ? __ldg(c + t) : 0;
#else
    raw[t] = (t < kMaxCols && ok && t < ncols) ? c[t] : 0;
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

// Bit i of the result: row row_base + i lies in [iv.x, iv.y) or [iv.z, iv.w)
// (iv: encode_column's intervals). Shifts by 32 or more give 0 (clamped
// funnel shifts on the device), so no interval needs a branch.
FM90_HD uint32_t shl_ones_clamped(int s) {  // 0xffffffff << s, 0 from s = 32 on; s >= 0
#if defined(__CUDA_ARCH__)
  return __funnelshift_lc(0u, 0xffffffffu, static_cast<unsigned>(s));
#else
  return s >= 32 ? 0u : 0xffffffffu << s;
#endif
}
FM90_HD uint32_t rows_in(int lo, int hi, int row_base) {  // bits of [lo, hi) from row_base
  // max() first: lo may be INT_MIN (the seqlen_k tail), lo - row_base would wrap
  return shl_ones_clamped(max(lo, row_base) - row_base) & ~shl_ones_clamped(max(hi, row_base) - row_base);
}
FM90_HD uint32_t row_mask_word(const int4& iv, int row_base) {
  return rows_in(iv.x, iv.y, row_base) | rows_in(iv.z, iv.w, row_base);
}

// Scores of a partial block (rowcol view `s`, coordinate view `c` of the same
// shape, coordinates relative to the block) -> -inf where masked.
// `row_bits[w][col]`: bit i masks row 16 w + i of the block for key column
// col (16-bit words, so each warp's 16 rows are one word per column). The
// wgmma accumulator gives a thread rows r and r + 8 and column pairs (col,
// col + 1), col even: one 32-bit load serves four scores.
template <int BN, class TS, class TC>
__device__ __forceinline__ void apply_mask(TS& s, const TC& c, const uint16_t (*row_bits)[BN]) {
  using namespace cute;
  static_assert(decltype(size<0>(s))::value == 2, "rows r and r + 8 per thread");
  const int r = get<0>(c(0, 0));
  const uint32_t* bits = reinterpret_cast<const uint32_t*>(row_bits[r / 16]);
  const int shift = r % 16;
#pragma unroll
  for (int ni = 0; ni < size<1>(s); ni += 2) {
    const uint32_t w = bits[get<1>(c(0, ni)) / 2] >> shift;  // col: low half, col + 1: high half
    if (w & 0x1u) s(0, ni) = -CUDART_INF_F;
    if (w & 0x100u) s(1, ni) = -CUDART_INF_F;
    if (w & 0x10000u) s(0, ni + 1) = -CUDART_INF_F;
    if (w & 0x1000000u) s(1, ni + 1) = -CUDART_INF_F;
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
