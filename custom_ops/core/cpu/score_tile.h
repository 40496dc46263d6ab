// Element-wise work on one [rows x cols] score tile, shared by the CPU
// forward and backward: the FlashMask element mask and dropout.
#pragma once

#include <cmath>
#include <limits>

#include "core/philox.h"
#include "core/cpu/mask_tiles.h"

namespace flashmask {
namespace cpu {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Sets masked scores of a partially masked tile to -inf. Padding columns
// (cols .. cols_pad) are always -inf so they never take probability.
inline void mask_score_tile(float* s, int lds, int rows, int cols, int cols_pad, int r0, int c0,
                            const MaskTiles& tiles, int b, int mask_head, bool partial,
                            bool causal, int causal_shift) {
  for (int r = 0; r < rows; ++r)
    for (int c = cols; c < cols_pad; ++c) s[r * lds + c] = kNegInf;
  if (!partial) return;
  for (int c = 0; c < cols; ++c) {
    const ColumnBounds cb = tiles.column(b, mask_head, c0 + c);
    for (int r = 0; r < rows; ++r)
      if (element_masked(cb, r0 + r, c0 + c, causal, causal_shift)) s[r * lds + c] = kNegInf;
  }
}

// p[r][c] *= keep(b, h, r0 + r, c0 + c) / (1 - p_drop), else 0.
inline void dropout_tile(float* p, int ldp, int rows, int cols, int r0, int c0, int b, int h,
                         const FwdParams& prm) {
  const uint32_t threshold = dropout_keep_threshold(prm.dropout_p);
  const float rescale = 1.f / (1.f - prm.dropout_p);
  for (int r = 0; r < rows; ++r) {
    const uint64_t row_id =
        (static_cast<uint64_t>(b) * prm.num_heads + h) * prm.seqlen_q + (r0 + r);
    float* row = p + r * ldp;
    for (int c = 0; c < cols;) {
      const int j = c0 + c;
      const Uint4 bits = dropout_bits(prm.seed, prm.offset, row_id, j);
      const uint32_t words[4] = {bits.x, bits.y, bits.z, bits.w};
      for (int lane = j & 3; lane < 4 && c < cols; ++lane, ++c)
        row[c] = words[lane] < threshold ? row[c] * rescale : 0.f;
    }
  }
}

}  // namespace cpu
}  // namespace flashmask
