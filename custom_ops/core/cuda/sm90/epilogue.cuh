// Epilogue of one work tile, per consumer thread, straight from registers:
// O / l converted to the element type, 2 adjacent columns (4 bytes) per
// store, and lse from the lane that holds column 0 of a row. Rows past
// seqlen_q are not written; rows that saw no key get O = 0, lse = -inf.
// (A later step: stmatrix into smem + one TMA store per tile, see NOTES.md.)
#pragma once

#include "kernel_traits.h"
#include "softmax.cuh"

namespace flashmask {
namespace cuda {
namespace sm90 {

template <typename Traits, class TO, class TC, int kRows>
__device__ __forceinline__ void write_tile(const KernelParams<Traits>& p, TO& o_rc, const TC& c_rc,
                                           OnlineSoftmax<kRows>& sm, int b, int h, int m) {
  using Element = typename Traits::Element;
  float inv[kRows], lse[kRows];
  sm.finalize(p.softmax_scale, inv, lse);
  Element* out = static_cast<Element*>(p.out) + b * p.o_batch_stride + h * p.o_head_stride;
  float* lse_row = p.lse + (static_cast<int64_t>(b) * p.num_heads + h) * p.seqlen_q;
  const int row0 = m * Traits::kBlockM;
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int i = row0 + get<0>(c_rc(r, 0));
    if (i >= p.seqlen_q) continue;
    Element* orow = out + static_cast<int64_t>(i) * p.o_row_stride;
#pragma unroll
    for (int c = 0; c < size<1>(o_rc); c += 2) {  // (c, c + 1) are adjacent columns
      const int col = get<1>(c_rc(r, c));
      cutlass::Array<Element, 2> pair;
      pair[0] = Element(o_rc(r, c) * inv[r]);
      pair[1] = Element(o_rc(r, c + 1) * inv[r]);
      *reinterpret_cast<cutlass::Array<Element, 2>*>(orow + col) = pair;
    }
    if (get<1>(c_rc(r, 0)) == 0) lse_row[i] = lse[r];
  }
}

}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
