// One way for every door to fill FwdParams / BwdParams from its tensors. A door
// describes each [batch, seqlen, heads, head_dim] tensor as a View (data, sizes,
// element strides) and keeps the checks that raise its own error type; what is
// filled here is the same for every door.
#pragma once

#include <cstdint>

#include "core/flashmask_params.h"

namespace flashmask {

// A [batch, seqlen, heads, head_dim] tensor whose last axis is contiguous.
struct View {
  const void* data = nullptr;
  int64_t size[4] = {0, 0, 0, 0};
  int64_t batch_stride = 0, row_stride = 0, head_stride = 0;  // elements
};

// The row-major strides of a contiguous tensor of `size`.
inline View contiguous_view(const void* data, const int64_t (&size)[4]) {
  View v;
  v.data = data;
  for (int i = 0; i < 4; ++i) v.size[i] = size[i];
  v.head_stride = size[3];
  v.row_stride = size[2] * size[3];
  v.batch_stride = size[1] * v.row_stride;
  return v;
}

inline void set_strides(const View& v, int64_t* batch, int64_t* row, int64_t* head) {
  *batch = v.batch_stride;
  *row = v.row_stride;
  *head = v.head_stride;
}

// q [B, Sq, H, D], k [B, Sk, Hk, D], v [B, Sk, Hk, Dv].
inline void fill_attention(FwdParams* p, DType dtype, const View& q, const View& k, const View& v,
                           bool causal, float softmax_scale) {
  p->dtype = dtype;
  p->batch = static_cast<int32_t>(q.size[0]);
  p->seqlen_q = static_cast<int32_t>(q.size[1]);
  p->num_heads = static_cast<int32_t>(q.size[2]);
  p->head_dim = static_cast<int32_t>(q.size[3]);
  p->seqlen_k = static_cast<int32_t>(k.size[1]);
  p->num_heads_k = static_cast<int32_t>(k.size[2]);
  p->head_dim_v = static_cast<int32_t>(v.size[3]);
  p->q = q.data;
  p->k = k.data;
  p->v = v.data;
  set_strides(q, &p->q_batch_stride, &p->q_row_stride, &p->q_head_stride);
  set_strides(k, &p->k_batch_stride, &p->k_row_stride, &p->k_head_stride);
  set_strides(v, &p->v_batch_stride, &p->v_row_stride, &p->v_head_stride);
  p->causal = causal;
  p->softmax_scale = softmax_scale;
}

// out [B, Sq, H, Dv] (also dout's strides in the backward) and lse [B, H, Sq].
inline void fill_out(FwdParams* p, const View& out, float* softmax_lse) {
  p->out = const_cast<void*>(out.data);
  set_strides(out, &p->o_batch_stride, &p->o_row_stride, &p->o_head_stride);
  p->softmax_lse = softmax_lse;
}

// startend_row_indices: contiguous int32 [B, heads, Sk, ncols].
inline void fill_mask(FwdParams* p, const int32_t* startend, int64_t heads, int64_t seqlen_k,
                      int64_t ncols) {
  p->mask.startend = startend;
  p->mask.heads = static_cast<int32_t>(heads);
  p->mask.ncols = static_cast<int32_t>(ncols);
  p->mask.head_stride = seqlen_k * ncols;
  p->mask.batch_stride = heads * p->mask.head_stride;
}

// Dropout with its (seed, offset): read here from host memory, or by the
// kernels from device memory (so the call can be captured in a CUDA graph).
inline void fill_dropout(FwdParams* p, float dropout, const int64_t* seed_offset, bool on_device) {
  p->dropout_p = dropout;
  if (dropout <= 0.f) return;
  if (on_device) {
    p->seed_offset_dev = seed_offset;
  } else {
    p->seed = static_cast<uint64_t>(seed_offset[0]);
    p->offset = static_cast<uint64_t>(seed_offset[1]);
  }
}

// dout (with out's strides, fill_out), dq like q, dk like k, dv like v.
inline void fill_grads(BwdParams* p, const void* dout, const View& dq, const View& dk, const View& dv) {
  p->dout = dout;
  p->dq = const_cast<void*>(dq.data);
  p->dk = const_cast<void*>(dk.data);
  p->dv = const_cast<void*>(dv.data);
  set_strides(dq, &p->dq_batch_stride, &p->dq_row_stride, &p->dq_head_stride);
  set_strides(dk, &p->dk_batch_stride, &p->dk_row_stride, &p->dk_head_stride);
  set_strides(dv, &p->dv_batch_stride, &p->dv_row_stride, &p->dv_head_stride);
}

}  // namespace flashmask
