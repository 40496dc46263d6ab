// FlashMask forward, FlashAttention-2 style: one CTA (4 warps) per
// (query tile of BM rows, head, batch); each warp owns BM / 4 rows. Q stays in
// shared memory; K and V tiles stream through with cp.async so that V(n) lands
// while S = Q K(n)^T is computed and K(n+1) lands during O += P V(n). Only the
// key tiles the mask leaves (partial or unmasked) are visited; partial tiles
// are masked element-wise, unmasked ones do no mask work.
#pragma once

#include <math_constants.h>

#include <type_traits>

#include "core/cuda/common/dropout.cuh"
#include "core/cuda/common/mask_device.cuh"
#include "core/cuda/sm80/common/smem_budget.h"
#include "core/cuda/sm80/common/warp_gemm.cuh"
#include "core/cuda/common/softmax.cuh"

namespace flashmask {
namespace cuda {

template <int D, int BM>
struct FwdSmem {
  static constexpr int kLd = D + 8;
  // K/V stages. 2 (double buffer, one barrier per tile) was measured on the
  // H100 at D = 128: 30.6 ms vs 29.8 ms for 1 stage (causal 8K, docs/design/sm80.md), so
  // 1; the 2-stage path stays for sm80 tuning.
  static constexpr int kStages = 1;
  static constexpr int kTileBytes = (BM + 2 * kBlockN * kStages) * kLd * 2;
  // + the tile list (fixed capacity: the same at any seqlen_k)
  static constexpr size_t kBytes = kTileBytes + sm80::tile_list_bytes(kThreads);
  static_assert(kBytes <= sm80::kA100MaxSmem, "the sm80 forward must fit an A100's shared memory");
};

template <typename T, int D, int BM, bool kDropout>
__global__ void __launch_bounds__(kThreads) fwd_kernel(const FwdParams p,
                                                       const TileBounds* __restrict__ bounds,
                                                       int n_tiles_k) {
  constexpr int MT = BM / 64;  // m16 tiles per warp
  constexpr int LD = D + 8;
  constexpr int NT_O = D / 8;
  extern __shared__ __align__(16) unsigned char smem[];
  T* sQ = reinterpret_cast<T*>(smem);
  constexpr int kStages = FwdSmem<D, BM>::kStages;
  T* sK = sQ + BM * LD;       // stage st: sK + st * 2 * kBlockN * LD
  T* sV = sK + kBlockN * LD;  // stage st: sV + st * 2 * kBlockN * LD
  int* list = reinterpret_cast<int*>(smem + FwdSmem<D, BM>::kTileBytes);
  int* scratch = list + sm80::kTileListCap + 1;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t4 = lane & 3;
  const int m_tiles = (p.seqlen_q + BM - 1) / BM;
  const int m_tile = m_tiles - 1 - blockIdx.x;  // heaviest (causal) tiles first
  const int h = blockIdx.y, b = blockIdx.z;
  const int hk = h / (p.num_heads / p.num_heads_k);
  const int hm = mask_head_of(p, h);
  const int shift = p.seqlen_k - p.seqlen_q;
  const int r0 = m_tile * BM, r1 = min(r0 + BM, p.seqlen_q);

  const T* q = static_cast<const T*>(p.q) + b * p.q_batch_stride + h * p.q_head_stride;
  const T* k = static_cast<const T*>(p.k) + b * p.k_batch_stride + hk * p.k_head_stride;
  const T* v = static_cast<const T*>(p.v) + b * p.v_batch_stride + hk * p.v_head_stride;
  load_tile<T, BM, D>(sQ, q + r0 * p.q_row_stride, p.q_row_stride, r1 - r0, tid);
  cp_async_commit();

  // Which key tiles this query tile must visit: [0, n_end) less the fully
  // masked ones and those in a dropped block_mask block, listed and visited
  // sm80::kTileListCap candidates at a time (for_each_tile_chunk).
  const int col_end = p.causal ? min(p.seqlen_k, max(0, r1 + shift)) : p.seqlen_k;
  const int n_end = (col_end + kBlockN - 1) / kBlockN;
  const TileBounds* tb =
      p.mask.ncols > 0 ? bounds + (static_cast<int64_t>(b) * p.mask.heads + hm) * n_tiles_k : nullptr;
  auto kind_of = [&](int n) {
    if (!block_kept(p, b, h, r0, n * kBlockN)) return static_cast<int>(TileKind::kFullyMasked);
    return tile_kind<true>(tb ? tb[n] : no_mask_bounds(p.seqlen_q), r0, r1, n * kBlockN, p);
  };

  constexpr bool dropout = kDropout;  // a separate instantiation: no registers for it otherwise
  Dropout drop{};
  if (dropout) drop = make_dropout(p);
  const float scale_log2 = p.softmax_scale * 1.4426950408889634f;

  const uint32_t aQ = smem_addr(sQ), aK = smem_addr(sK), aV = smem_addr(sV);
  const int wrow0 = warp * MT * 16;  // first CTA row of this warp

  float acc_o[MT][NT_O][4];
  zero(acc_o);
  OnlineSoftmax<MT> sm;
  sm.init();

  // One tile step (list entry `entry`, the next one `next`, -1 at the end),
  // a compile-time copy per element-mask variant, so the unmasked path is one
  // straight-line block (as FlashAttention-2 splits its masked and unmasked
  // loops) and the causal diagonal costs one comparison per element (the
  // column test made those steps ~3.7x an unmasked one). V(n) lands during
  // S = Q K(n)^T and the softmax, K(n+1) during O += P V(n) (issuing it after
  // the softmax keeps the 64 score registers dead while its addresses are live).
  auto step = [&](int entry, int next, int it, auto mask_tag) {
    constexpr ElementMask kMask = decltype(mask_tag)::value;
    const int c0 = (entry >> 2) * kBlockN;
    const int st = kStages == 2 ? (it & 1) : 0;
    const uint32_t aKs = aK + st * 2 * kBlockN * LD * 2, aVs = aV + st * 2 * kBlockN * LD * 2;
    cp_async_wait<0>();
    __syncthreads();  // K(n) (and Q) visible; every warp done with step n-1
    if constexpr (kStages == 2) {  // K(n+1) into the other stage (V(n+1) below)
      if (next >= 0) {
        const int c1 = (next >> 2) * kBlockN;
        load_tile<T, kBlockN, D>(sK + (st ^ 1) * 2 * kBlockN * LD, k + c1 * p.k_row_stride,
                                 p.k_row_stride, p.seqlen_k - c1, tid);
      }
    } else {
      load_tile<T, kBlockN, D>(sV, v + c0 * p.v_row_stride, p.v_row_stride, p.seqlen_k - c0, tid);
    }
    cp_async_commit();

    float s[MT][8][4];
    zero(s);
    gemm_ss<T, MT, 8, D / 16, false, false>(s, aQ, LD, wrow0, 0, aKs, LD, 0, 0, lane);

    if constexpr (kMask == ElementMask::kCausal) {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
          // tile-local column of the last visible key, as seen from this lane's e = 0 column
          const int last = last_key(r0 + wrow0 + mt * 16 + g + hr * 8, p) - c0 - 2 * t4;
#pragma unroll
          for (int nt = 0; nt < 8; ++nt)
#pragma unroll
            for (int e = 0; e < 2; ++e)
              if (nt * 8 + e > last) s[mt][nt][hr * 2 + e] = -CUDART_INF_F;
        }
    } else if constexpr (kMask == ElementMask::kColumns) {
      const MaskCols mc = mask_cols(p, b, hm);  // here, not live across the tile loop
#pragma unroll
      for (int nt = 0; nt < 8; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int j = c0 + nt * 8 + 2 * t4 + e;
          const ColumnBounds cb = j < p.seqlen_k ? mc.column(j) : ColumnBounds{0, 0, 0, 0};
#pragma unroll
          for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int hr = 0; hr < 2; ++hr) {
              const int i = r0 + wrow0 + mt * 16 + g + hr * 8;
              if (mc.masked(cb, i, j)) s[mt][nt][hr * 2 + e] = -CUDART_INF_F;
            }
        }
    }
    sm.template update<8, NT_O>(s, acc_o, scale_log2);

    if constexpr (dropout) {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
          const int i = r0 + wrow0 + mt * 16 + g + hr * 8;
          const uint64_t row_id = dropout_row(p, b, h, i);
#pragma unroll
          for (int nt = 0; nt < 8; ++nt) {
            bool k0, k1;
            keep_pair(drop, row_id, c0 + nt * 8 + 2 * t4, k0, k1);
            if (!k0) s[mt][nt][hr * 2] = 0.f;
            if (!k1) s[mt][nt][hr * 2 + 1] = 0.f;
          }
        }
    }
    uint32_t pa[MT][4][4];
    acc_to_a<T, MT, 8>(s, pa);

    if constexpr (kStages == 2) {  // V(n+1): issued here, where the scores are dead
      if (next >= 0) {
        const int c1 = (next >> 2) * kBlockN;
        load_tile<T, kBlockN, D>(sV + (st ^ 1) * 2 * kBlockN * LD, v + c1 * p.v_row_stride,
                                 p.v_row_stride, p.seqlen_k - c1, tid);
      }
      cp_async_commit();
    } else {
      cp_async_wait<0>();
      __syncthreads();  // V(n) visible; every warp done with K(n)
      if (next >= 0) {
        const int c1 = (next >> 2) * kBlockN;
        load_tile<T, kBlockN, D>(sK, k + c1 * p.k_row_stride, p.k_row_stride, p.seqlen_k - c1, tid);
      }
      cp_async_commit();
    }
    gemm_rs<T, MT, NT_O, 4, true>(acc_o, pa, aVs, LD, 0, 0, lane);
  };

  // Per chunk: the first K (and V) tile, then the steps. The previous chunk's
  // last step issued no load (its `next` was the sentinel) and ended with the
  // barrier after its last read of K.
  for_each_tile_chunk<kThreads>(0, n_end, kind_of, list, scratch, [&](int count) {
    if (count > 0) {
      const int c0 = (list[0] >> 2) * kBlockN;
      load_tile<T, kBlockN, D>(sK, k + c0 * p.k_row_stride, p.k_row_stride, p.seqlen_k - c0, tid);
      if constexpr (kStages == 2)
        load_tile<T, kBlockN, D>(sV, v + c0 * p.v_row_stride, p.v_row_stride, p.seqlen_k - c0, tid);
    }
    cp_async_commit();
    return visit_tiles(list, list[0], step);  // list[0]: the sentinel when count is 0
  });

  cp_async_wait<0>();  // no copy may land after exit (count may be 0)
  // Other warps issued the Q copies into this warp's rows; with no step (count
  // 0) no barrier followed them yet, and the epilogue rewrites those rows.
  // (Unconditional: the conditional form changed the loop's register allocation.)
  __syncthreads();
  // Epilogue: O / l (x 1/(1-p) under dropout) and lse, with the sink's term
  // (row_norm); rows that saw no key -> 0 and lse -inf (the sink's logit).
  // O goes through this warp's own rows of sQ (no other warp reads them) so
  // that each lane stores 16 contiguous bytes (fragment lanes hold 4).
  T* o = static_cast<T*>(p.out) + b * p.o_batch_stride + h * p.o_head_stride;
  float* lse = p.softmax_lse + (static_cast<int64_t>(b) * p.num_heads + h) * p.seqlen_q;
  sm.finalize();
  const float sink = sink_logit(p.learnable_sink, h);
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      const int row = wrow0 + mt * 16 + g + hr * 8, i = r0 + row;
      const RowNorm rn = row_norm(sm.row_max[mt][hr], sm.row_sum[mt][hr], p.softmax_scale, sink);
      const float norm = dropout ? rn.norm * drop.rescale : rn.norm;
#pragma unroll
      for (int dt = 0; dt < NT_O; ++dt)
        *reinterpret_cast<uint32_t*>(sQ + row * LD + dt * 8 + 2 * t4) =
            Mma<T>::pack(rn.seen ? acc_o[mt][dt][hr * 2] * norm : 0.f,
                         rn.seen ? acc_o[mt][dt][hr * 2 + 1] * norm : 0.f);
      if (t4 == 0 && i < p.seqlen_q) lse[i] = rn.lse;
    }
  __syncwarp();
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
#pragma unroll
  for (int c = lane; c < MT * 16 * kChunks; c += 32) {
    const int row = wrow0 + c / kChunks, i = r0 + row;
    if (i < p.seqlen_q)
      *reinterpret_cast<uint4*>(o + i * p.o_row_stride + (c % kChunks) * 8) =
          *reinterpret_cast<const uint4*>(sQ + row * LD + (c % kChunks) * 8);
  }
}

}  // namespace cuda
}  // namespace flashmask
