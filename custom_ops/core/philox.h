// Counter-based dropout randomness (Philox4x32-10, Salmon et al. 2011).
//
// The keep/drop decision for score (b, h, i, j) is a pure function of
// (seed, offset, b, h, i, j): forward and backward, CPU and GPU, any tiling,
// all see the same dropout mask without storing it.
#pragma once

#include <cstdint>

#include "core/mask_bounds.h"  // FM_HD

namespace flashmask {

struct Uint4 {
  uint32_t x, y, z, w;
};

FM_HD uint32_t mulhilo32(uint32_t a, uint32_t b, uint32_t* hi) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(p >> 32);
  return static_cast<uint32_t>(p);
}

FM_HD Uint4 philox4x32_10(Uint4 ctr, uint32_t key0, uint32_t key1) {
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, hi1;
    const uint32_t lo0 = mulhilo32(0xD2511F53u, ctr.x, &hi0);
    const uint32_t lo1 = mulhilo32(0xCD9E8D57u, ctr.z, &hi1);
    ctr = Uint4{hi1 ^ ctr.y ^ key0, lo1, hi0 ^ ctr.w ^ key1, lo0};
    key0 += 0x9E3779B9u;
    key1 += 0xBB67AE85u;
  }
  return ctr;
}

// Four random words for key columns 4*(j/4) .. 4*(j/4)+3 of one score row.
// row_id = (b * num_heads + h) * seqlen_q + i.
FM_HD Uint4 dropout_bits(uint64_t seed, uint64_t offset, uint64_t row_id, int32_t j) {
  const uint64_t c = offset + static_cast<uint64_t>(j >> 2);
  const Uint4 ctr{static_cast<uint32_t>(c), static_cast<uint32_t>(c >> 32),
                  static_cast<uint32_t>(row_id), static_cast<uint32_t>(row_id >> 32)};
  return philox4x32_10(ctr, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// A score is kept iff its 32-bit word is below this threshold.
FM_HD uint32_t dropout_keep_threshold(float p_drop) {
  const double keep = 1.0 - static_cast<double>(p_drop);
  const double t = keep * 4294967296.0;
  return t >= 4294967295.0 ? 0xFFFFFFFFu : static_cast<uint32_t>(t);
}

}  // namespace flashmask
