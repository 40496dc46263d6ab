// Epilogue of one work tile, per consumer thread: O / l in the element type,
// and lse from the lane that holds column 0 of a row, the sink's term
// included; rows that saw no key get O = 0 and lse = -inf (the sink's logit),
// rows past seqlen_q are not written.
//   stage_tile_o: O into shared memory (the tile's own Q buffer, free once its
//                 last Q K^T is done), for the warpgroup's TMA stores;
//   write_tile:   O straight from registers, 2 adjacent columns (4 bytes)
//                 per global store (d64, where staging measured slower; d192,
//                 not measured staged; d256, whose single Q buffer cannot
//                 wait for a store).
#pragma once

#include "core/cuda/sm90/fwd/traits.h"
#include "core/cuda/sm90/fwd/softmax.cuh"

namespace flashmask {
namespace cuda {
namespace sm90 {

template <typename Traits, int kRows, class CO>
__device__ __forceinline__ void write_lse(const KernelParams<Traits>& p, const RowNorm (&rn)[kRows], const CO& c_rc,
                                          int b, int h, int m) {
  float* lse_row = p.lse + (static_cast<int64_t>(b) * p.num_heads + h) * p.seqlen_q;
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int i = m * Traits::kBlockM + get<0>(c_rc(r, 0));
    if (i < p.seqlen_q && get<1>(c_rc(r, 0)) == 0) lse_row[i] = rn[r].lse;
  }
}

// O / l converted into sO_thr (this thread's partition of the staging tile,
// same order as the accumulator): 4-byte stores, 8 rows x 16 bytes per warp
// instruction, conflict-free under the 128-byte swizzle.
template <typename Traits, class TO, class TOs, class TC, int kRows>
__device__ __forceinline__ void stage_tile_o(const KernelParams<Traits>& p, TO& tOrO, TOs&& sO_thr, const TC& c_rc,
                                             OnlineSoftmax<kRows>& sm, int b, int h, int m) {
  using Element = typename Traits::Element;
  RowNorm rn[kRows];
  sm.finalize(p.softmax_scale, sink_logit(p.learnable_sink, h), rn);
  Tensor o_rc = make_tensor(tOrO.data(), rowcol_layout(tOrO.layout()));
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int c = 0; c < size<1>(o_rc); ++c) o_rc(r, c) = rn[r].seen ? o_rc(r, c) * rn[r].norm : 0.f;
  Tensor rO = make_tensor<Element>(tOrO.layout());
  convert_into(tOrO, rO);
#pragma unroll
  for (int i = 0; i < size(rO); i += 2) {
    cutlass::Array<Element, 2> pr;
    pr[0] = rO(i);
    pr[1] = rO(i + 1);
    *reinterpret_cast<cutlass::Array<Element, 2>*>(&sO_thr(i)) = pr;
  }
  write_lse<Traits>(p, rn, c_rc, b, h, m);
}

template <typename Traits, class TO, class TC, int kRows>
__device__ __forceinline__ void write_tile(const KernelParams<Traits>& p, TO& o_rc, const TC& c_rc,
                                           OnlineSoftmax<kRows>& sm, int b, int h, int m) {
  using Element = typename Traits::Element;
  RowNorm rn[kRows];
  sm.finalize(p.softmax_scale, sink_logit(p.learnable_sink, h), rn);
  Element* out = static_cast<Element*>(p.out) + b * p.o_batch_stride + h * p.o_head_stride;
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
      pair[0] = Element(rn[r].seen ? o_rc(r, c) * rn[r].norm : 0.f);
      pair[1] = Element(rn[r].seen ? o_rc(r, c + 1) * rn[r].norm : 0.f);
      *reinterpret_cast<cutlass::Array<Element, 2>*>(orow + col) = pair;
    }
  }
  write_lse<Traits>(p, rn, c_rc, b, h, m);
}

}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
