// Calls on more batches than a CUDA grid dimension holds: the kernels' grids
// are (tiles, heads, batch), and grid dims y and z stop at 65535. The
// dispatcher runs such a call as consecutive launches over batch slices of at
// most kMaxGridYZ batches, each a FwdParams / BwdParams whose per-batch pointers
// start at the slice's first batch. The slices share the call's workspace
// (one after the other on one stream; each slice's layout, planned for its
// own batch count, is no larger than the call's). batch_offset keeps
// dropout's Philox row ids those of the whole call (cuda/common/dropout.cuh).
#pragma once

#include <cstdint>
#include <type_traits>

#include "core/flashmask_params.h"

namespace flashmask {
namespace cuda {

constexpr int kMaxGridYZ = 65535;  // CUDA grid dims y and z

inline int64_t dtype_bytes(DType t) { return t == DType::kFloat32 ? 4 : 2; }

template <typename Ptr>
Ptr advance_bytes(Ptr p, int64_t bytes) {
  using Byte = typename std::conditional<std::is_const<typename std::remove_pointer<Ptr>::type>::value,
                                         const char, char>::type;
  return p == nullptr ? p : reinterpret_cast<Ptr>(reinterpret_cast<Byte*>(p) + bytes);
}

// p restricted to batches [b0, b0 + n).
inline void slice_batches(FwdParams* p, int b0, int n) {
  const int64_t e = dtype_bytes(p->dtype), b = b0;
  p->q = advance_bytes(p->q, b * p->q_batch_stride * e);
  p->k = advance_bytes(p->k, b * p->k_batch_stride * e);
  p->v = advance_bytes(p->v, b * p->v_batch_stride * e);
  p->out = advance_bytes(p->out, b * p->o_batch_stride * e);
  if (p->softmax_lse != nullptr) p->softmax_lse += b * p->num_heads * p->seqlen_q;  // [B, H, Sq]
  if (p->mask.startend != nullptr) p->mask.startend += b * p->mask.batch_stride;
  if (p->block_mask.blocks != nullptr) p->block_mask.blocks += b * p->block_mask.batch_stride;
  p->batch = n;
  p->batch_offset += b0;
}

inline void slice_batches(BwdParams* p, int b0, int n) {
  const int64_t e = dtype_bytes(p->dtype), b = b0;
  p->dout = advance_bytes(p->dout, b * p->o_batch_stride * e);  // out's strides
  p->dq = advance_bytes(p->dq, b * p->dq_batch_stride * e);
  p->dk = advance_bytes(p->dk, b * p->dk_batch_stride * e);
  p->dv = advance_bytes(p->dv, b * p->dv_batch_stride * e);
  slice_batches(static_cast<FwdParams*>(p), b0, n);
}

// fn(slice) for each slice of at most kMaxGridYZ batches, in order.
template <typename P, typename Fn>
void for_each_batch_slice(const P& p, Fn&& fn) {
  for (int64_t b0 = 0; b0 < p.batch; b0 += kMaxGridYZ) {
    P slice = p;
    const int64_t n = p.batch - b0 < kMaxGridYZ ? p.batch - b0 : kMaxGridYZ;
    slice_batches(&slice, static_cast<int>(b0), static_cast<int>(n));
    fn(static_cast<const P&>(slice));
  }
}

}  // namespace cuda
}  // namespace flashmask
