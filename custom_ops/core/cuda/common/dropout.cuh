// Dropout on the GPU: the same Philox keep-pattern as the CPU kernels
// (philox.h), keyed on (seed, offset, b, h, i, j). The seed/offset come from
// the params, or from device memory (seed_offset_dev) so that CUDA-graph
// capture sees no host values.
#pragma once

#include "core/philox.h"
#include "core/flashmask_params.h"

namespace flashmask {
namespace cuda {

struct Dropout {
  uint64_t seed, offset;
  uint32_t threshold;
  float rescale;  // 1 / (1 - p)
};

__device__ __forceinline__ Dropout make_dropout(const FwdParams& p) {
  Dropout d;
  d.seed = p.seed;
  d.offset = p.offset;
  if (p.seed_offset_dev != nullptr) {
    d.seed = static_cast<uint64_t>(p.seed_offset_dev[0]);
    d.offset = static_cast<uint64_t>(p.seed_offset_dev[1]);
  }
  d.threshold = dropout_keep_threshold(p.dropout_p);
  d.rescale = 1.f / (1.f - p.dropout_p);
  return d;
}

// Philox row id of query row i of (batch b, head h): (b * H + h) * Sq + i
// with b counted in the door's whole call (p.batch_offset: the first batch of
// a launch the dispatcher split off), so the pattern does not depend on how
// the batch was split (dispatch/batch_chunks.h).
__device__ __forceinline__ uint64_t dropout_row(const FwdParams& p, int b, int h, int i) {
  return (static_cast<uint64_t>(b + p.batch_offset) * p.num_heads + h) * p.seqlen_q + i;
}

// Keep bits of keys j0, j0 + 1 (j0 even) in score row row_id.
__device__ __forceinline__ void keep_pair(const Dropout& d, uint64_t row_id, int j0, bool& k0,
                                          bool& k1) {
  const Uint4 w = dropout_bits(d.seed, d.offset, row_id, j0);
  const bool hi = (j0 & 2) != 0;
  k0 = (hi ? w.z : w.x) < d.threshold;
  k1 = (hi ? w.w : w.y) < d.threshold;
}

__device__ __forceinline__ bool keep_one(const Dropout& d, uint64_t row_id, int j) {
  const Uint4 w = dropout_bits(d.seed, d.offset, row_id, j);
  const int lane = j & 3;
  const uint32_t word = lane == 0 ? w.x : lane == 1 ? w.y : lane == 2 ? w.z : w.w;
  return word < d.threshold;
}

}  // namespace cuda
}  // namespace flashmask
