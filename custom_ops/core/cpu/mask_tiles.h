// Mask preprocessing on the CPU: per (batch, mask head, key tile) the min/max
// of each decoded bound, O(Sk) work and memory, computed once per call and
// shared by the forward and both backward passes.
#pragma once

#include <cstddef>
#include <vector>

#include "core/flashmask_params.h"
#include "core/mask_bounds.h"

namespace flashmask {
namespace cpu {

class MaskTiles {
 public:
  MaskTiles(const FwdParams& p, int block_n);

  // Mask head that serves query head h (broadcast, per key head, or per head).
  int mask_head(int h) const;
  const TileBounds& tile(int b, int mask_head, int n_tile) const;
  ColumnBounds column(int b, int mask_head, int col) const;
  // Query rows [r0, r1) of head h against key tile n_tile: classify_tile, or
  // kFullyMasked where block_mask drops the 128x128 block holding the tile.
  TileKind classify(int b, int h, int n_tile, int r0, int r1) const;

  int num_tiles() const { return num_tiles_; }
  int block_n() const { return block_n_; }

 private:
  // The head of a mask with `heads` heads (1, num_heads_k or num_heads) that serves query head h.
  int head_of(int heads, int h) const;
  bool block_kept(int b, int h, int r0, int c0) const;

  const FwdParams& p_;
  int block_n_, num_tiles_, heads_;
  std::vector<TileBounds> bounds_;  // [batch or 1][heads][num_tiles]
};

}  // namespace cpu
}  // namespace flashmask
