#include "core/cpu/mask_tiles.h"

namespace flashmask {
namespace cpu {

MaskTiles::MaskTiles(const FwdParams& p, int block_n)
    : p_(p), block_n_(block_n), num_tiles_((p.seqlen_k + block_n - 1) / block_n) {
  const bool has_mask = p.mask.ncols > 0;
  const int batch = has_mask ? p.batch : 1;
  heads_ = has_mask ? p.mask.heads : 1;
  bounds_.resize(static_cast<std::size_t>(batch) * heads_ * num_tiles_);
  const int64_t total = static_cast<int64_t>(batch) * heads_ * num_tiles_;
#pragma omp parallel for schedule(static)
  for (int64_t idx = 0; idx < total; ++idx) {
    const int t = static_cast<int>(idx % num_tiles_);
    const int hm = static_cast<int>((idx / num_tiles_) % heads_);
    const int b = static_cast<int>(idx / (static_cast<int64_t>(num_tiles_) * heads_));
    TileBounds tb = empty_tile_bounds();
    const int c1 = (t + 1) * block_n < p.seqlen_k ? (t + 1) * block_n : p.seqlen_k;
    for (int c = t * block_n; c < c1; ++c) extend_tile_bounds(tb, column(b, hm, c));
    bounds_[idx] = tb;
  }
}

int MaskTiles::head_of(int heads, int h) const {
  if (heads == 1) return 0;
  if (heads == p_.num_heads) return h;
  return h / (p_.num_heads / p_.num_heads_k);
}

int MaskTiles::mask_head(int h) const { return head_of(heads_, h); }

const TileBounds& MaskTiles::tile(int b, int mask_head, int n_tile) const {
  const int bb = p_.mask.ncols > 0 ? b : 0;
  return bounds_[(static_cast<std::size_t>(bb) * heads_ + mask_head) * num_tiles_ + n_tile];
}

ColumnBounds MaskTiles::column(int b, int mask_head, int col) const {
  const int32_t* ptr = p_.mask.ncols > 0
                           ? p_.mask.startend + b * p_.mask.batch_stride +
                                 mask_head * p_.mask.head_stride +
                                 static_cast<int64_t>(col) * p_.mask.ncols
                           : nullptr;
  return decode_column(ptr, p_.mask.ncols, p_.causal, p_.seqlen_q);
}

bool MaskTiles::block_kept(int b, int h, int r0, int c0) const {
  const BlockMaskArgs& bm = p_.block_mask;
  if (bm.heads == 0) return true;
  const int64_t at = b * bm.batch_stride + head_of(bm.heads, h) * bm.head_stride +
                     (r0 / kBlockMaskSize) * block_mask_blocks(p_.seqlen_k) + c0 / kBlockMaskSize;
  return bm.blocks[at] != 0;
}

TileKind MaskTiles::classify(int b, int h, int n_tile, int r0, int r1) const {
  const int c0 = n_tile * block_n_;
  const int c1 = c0 + block_n_ < p_.seqlen_k ? c0 + block_n_ : p_.seqlen_k;
  if (!block_kept(b, h, r0, c0)) return TileKind::kFullyMasked;
  return classify_tile(tile(b, mask_head(h), n_tile), r0, r1, c0, c1, p_.causal,
                       p_.seqlen_k - p_.seqlen_q);
}

}  // namespace cpu
}  // namespace flashmask
