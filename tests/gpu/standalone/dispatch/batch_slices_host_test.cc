// Host test (no GPU) of the dispatcher's batch slices (core/cuda/dispatch/
// batch_chunks.h): for batch counts around the grid limit, the slices cover
// every batch once, in order, at most 65535 each, and every per-batch pointer
// of a slice (q, k, v, out, lse [B, H, Sq], column mask, block_mask; dout,
// dq, dk, dv) is the call's pointer at the slice's first batch, with
// batch_offset = that batch. Plain C++:
//   g++ -std=c++17 -I custom_ops tests/gpu/standalone/dispatch/batch_slices_host_test.cc && ./a.out
#include <cstdint>
#include <cstdio>
#include <vector>

#include "core/cuda/dispatch/batch_chunks.h"

using flashmask::BwdParams;
using flashmask::DType;

namespace {

int failures = 0;

void expect(bool ok, const char* what, int64_t batch, int b0) {
  if (!ok) {
    std::printf("FAIL %s (batch %lld, slice at %d)\n", what, static_cast<long long>(batch), b0);
    ++failures;
  }
}

// Distinct fake addresses: pointer arithmetic only, nothing is dereferenced.
const char* at(uintptr_t base) { return reinterpret_cast<const char*>(base); }

BwdParams call(int batch, DType dtype) {
  BwdParams p;
  p.dtype = dtype;
  p.batch = batch;
  p.seqlen_q = 16;
  p.seqlen_k = 24;
  p.num_heads = 4;
  p.num_heads_k = 2;
  p.head_dim = 64;
  p.q = at(0x10000000);
  p.k = at(0x20000000);
  p.v = at(0x30000000);
  p.out = const_cast<char*>(at(0x40000000));
  p.softmax_lse = reinterpret_cast<float*>(0x50000000);
  p.q_batch_stride = 16 * 4 * 64 + 8;  // padded: not the product of the other dims
  p.k_batch_stride = 24 * 2 * 64;
  p.v_batch_stride = 24 * 2 * 64 + 16;
  p.o_batch_stride = 16 * 4 * 64;
  p.mask.startend = reinterpret_cast<const int32_t*>(0x60000000);
  p.mask.ncols = 2;
  p.mask.heads = 2;
  p.mask.batch_stride = 2 * 24 * 2;
  p.block_mask.blocks = reinterpret_cast<const int32_t*>(0x70000000);
  p.block_mask.heads = 4;
  p.block_mask.batch_stride = 4 * 1 * 1;
  p.dout = at(0x80000000);
  p.dq = const_cast<char*>(at(0x90000000));
  p.dk = const_cast<char*>(at(0xa0000000));
  p.dv = const_cast<char*>(at(0xb0000000));
  p.dq_batch_stride = p.q_batch_stride;
  p.dk_batch_stride = p.k_batch_stride + 64;
  p.dv_batch_stride = p.v_batch_stride;
  return p;
}

int64_t moved(const void* slice, const void* whole) {
  return reinterpret_cast<const char*>(slice) - reinterpret_cast<const char*>(whole);
}

void check(int batch, DType dtype) {
  const BwdParams p = call(batch, dtype);
  const int64_t e = dtype == DType::kFloat32 ? 4 : 2;
  int64_t next = 0;
  flashmask::cuda::for_each_batch_slice(p, [&](const BwdParams& s) {
    const int b0 = s.batch_offset;
    expect(b0 == next, "slices in order, no gap", batch, b0);
    expect(s.batch >= 1 && s.batch <= 65535, "1 to 65535 batches per slice", batch, b0);
    expect(moved(s.q, p.q) == b0 * p.q_batch_stride * e, "q", batch, b0);
    expect(moved(s.k, p.k) == b0 * p.k_batch_stride * e, "k", batch, b0);
    expect(moved(s.v, p.v) == b0 * p.v_batch_stride * e, "v", batch, b0);
    expect(moved(s.out, p.out) == b0 * p.o_batch_stride * e, "out", batch, b0);
    expect(moved(s.dout, p.dout) == b0 * p.o_batch_stride * e, "dout", batch, b0);
    expect(moved(s.dq, p.dq) == b0 * p.dq_batch_stride * e, "dq", batch, b0);
    expect(moved(s.dk, p.dk) == b0 * p.dk_batch_stride * e, "dk", batch, b0);
    expect(moved(s.dv, p.dv) == b0 * p.dv_batch_stride * e, "dv", batch, b0);
    expect(s.softmax_lse - p.softmax_lse == int64_t(b0) * p.num_heads * p.seqlen_q, "lse", batch, b0);
    expect(s.mask.startend - p.mask.startend == b0 * p.mask.batch_stride, "column mask", batch, b0);
    expect(s.block_mask.blocks - p.block_mask.blocks == b0 * p.block_mask.batch_stride, "block_mask", batch,
           b0);
    expect(s.num_heads == p.num_heads && s.seqlen_q == p.seqlen_q && s.q_batch_stride == p.q_batch_stride,
           "everything else as the call's", batch, b0);
    next += s.batch;
  });
  expect(next == batch, "slices cover the batch", batch, static_cast<int>(next));
}

}  // namespace

int main() {
  int calls = 0;
  for (int batch : {1, 2, 65534, 65535, 65536, 70000, 131070, 131071, 200001}) {
    check(batch, DType::kBFloat16);
    check(batch, DType::kFloat32);
    calls += 2;
  }
  // A call without a column mask or block_mask keeps their null pointers null.
  BwdParams p = call(70000, DType::kFloat16);
  p.mask = {};
  p.block_mask = {};
  flashmask::cuda::for_each_batch_slice(p, [&](const BwdParams& s) {
    expect(s.mask.startend == nullptr && s.block_mask.blocks == nullptr, "null masks stay null", 70000,
           s.batch_offset);
  });
  std::printf("batch slices: %d calls, %d failures\n", calls + 1, failures);
  return failures == 0 ? 0 : 1;
}
