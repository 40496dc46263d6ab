// FlashMask backward, row direction (deterministic mode only): one CTA per
// (query tile of 64 rows, head, batch) walks the key tiles the mask leaves and
// accumulates dQ = scale * sum dS K in registers, in a fixed order, with no
// atomics. The column kernel then computes dK/dV only.
#pragma once

#include <math_constants.h>

#include "core/cuda/common/dropout.cuh"
#include "core/cuda/common/mask_device.cuh"
#include "core/cuda/sm80/common/smem_budget.h"
#include "core/cuda/sm80/common/warp_gemm.cuh"

namespace flashmask {
namespace cuda {

template <int D>
struct DqSmem {
  static constexpr int kLd = D + 8;
  static constexpr int kTile = kBlockN * kLd;
  static constexpr int kTileBytes = 4 * kTile * 2;  // Q, dO, K, V
  // + the tile list (fixed capacity: the same at any seqlen_k)
  static constexpr size_t kBytes = kTileBytes + sm80::tile_list_bytes(kThreads);
  static_assert(kBytes <= sm80::kA100MaxSmem, "the dQ kernel must fit an A100's shared memory");
};

template <typename T, int D>
__global__ void __launch_bounds__(kThreads) dq_kernel(const BwdParams p,
                                                      const TileBounds* __restrict__ bounds,
                                                      const float* __restrict__ delta,
                                                      int n_tiles_k) {
  using S = DqSmem<D>;
  constexpr int LD = S::kLd, NT_D = D / 8;
  extern __shared__ __align__(16) unsigned char smem[];
  T* sQ = reinterpret_cast<T*>(smem);
  T* sdO = sQ + S::kTile;
  T* sK = sdO + S::kTile;
  T* sV = sK + S::kTile;
  int* list = reinterpret_cast<int*>(smem + S::kTileBytes);
  int* scratch = list + sm80::kTileListCap + 1;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t4 = lane & 3;
  const int m_tiles = (p.seqlen_q + kBlockN - 1) / kBlockN;
  const int m_tile = m_tiles - 1 - blockIdx.x;
  const int h = blockIdx.y, b = blockIdx.z;
  const int hk = h / (p.num_heads / p.num_heads_k);
  const int hm = mask_head_of(p, h);
  const int shift = p.seqlen_k - p.seqlen_q;
  const int r0 = m_tile * kBlockN, r1 = min(r0 + kBlockN, p.seqlen_q);

  const T* q = static_cast<const T*>(p.q) + b * p.q_batch_stride + h * p.q_head_stride;
  const T* dout = static_cast<const T*>(p.dout) + b * p.o_batch_stride + h * p.o_head_stride;
  const T* k = static_cast<const T*>(p.k) + b * p.k_batch_stride + hk * p.k_head_stride;
  const T* v = static_cast<const T*>(p.v) + b * p.v_batch_stride + hk * p.v_head_stride;
  load_tile<T, kBlockN, D>(sQ, q + r0 * p.q_row_stride, p.q_row_stride, r1 - r0, tid);
  load_tile<T, kBlockN, D>(sdO, dout + r0 * p.o_row_stride, p.o_row_stride, r1 - r0, tid);
  cp_async_commit();

  const int col_end = p.causal ? min(p.seqlen_k, max(0, r1 + shift)) : p.seqlen_k;
  const int n_end = (col_end + kBlockN - 1) / kBlockN;
  const TileBounds* tb =
      p.mask.ncols > 0 ? bounds + (static_cast<int64_t>(b) * p.mask.heads + hm) * n_tiles_k : nullptr;
  // Key tiles [0, n_end) less the fully masked ones and those in a dropped
  // block_mask block, in chunks of sm80::kTileListCap candidates.
  auto kind_of = [&](int n) {
    if (!block_kept(p, b, h, r0, n * kBlockN)) return static_cast<int>(TileKind::kFullyMasked);
    return tile_kind(tb ? tb[n] : no_mask_bounds(p.seqlen_q), r0, r1, n * kBlockN, p);
  };

  const MaskCols mc = mask_cols(p, b, hm);
  const bool dropout = p.dropout_p > 0.f;
  Dropout drop{};
  if (dropout) drop = make_dropout(p);
  const float scale_log2 = p.softmax_scale * 1.4426950408889634f;
  const int64_t row_base = (static_cast<int64_t>(b) * p.num_heads + h) * p.seqlen_q;

  float lse2[2], dl[2];
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    const int i = r0 + warp * 16 + g + hr * 8;
    const float l = i < p.seqlen_q ? p.softmax_lse[row_base + i] : -CUDART_INF_F;
    lse2[hr] = l == -CUDART_INF_F ? CUDART_INF_F : l * 1.4426950408889634f;
    dl[hr] = i < p.seqlen_q ? delta[row_base + i] : 0.f;
  }

  const uint32_t aQ = smem_addr(sQ), adO = smem_addr(sdO), aK = smem_addr(sK), aV = smem_addr(sV);
  float acc[1][NT_D][4];
  zero(acc);
  // In a fixed order (ascending key tiles): bit-identical across runs. Each
  // step ends with a barrier, which also orders it before the next chunk's
  // compaction.
  for_each_tile_chunk<kThreads>(0, n_end, kind_of, list, scratch, [&](int count) {
    for (int it = 0; it < count; ++it) {
      const int c0 = (list[it] >> 2) * kBlockN;
      const bool partial = (list[it] & 3) == static_cast<int>(TileKind::kPartial);
      load_tile<T, kBlockN, D>(sK, k + c0 * p.k_row_stride, p.k_row_stride, p.seqlen_k - c0, tid);
      load_tile<T, kBlockN, D>(sV, v + c0 * p.v_row_stride, p.v_row_stride, p.seqlen_k - c0, tid);
      cp_async_commit();
      cp_async_wait<0>();
      __syncthreads();

      float s[1][8][4], dp[1][8][4];
      zero(s);
      zero(dp);
      gemm_ss<T, 1, 8, D / 16, false, false>(s, aQ, LD, warp * 16, 0, aK, LD, 0, 0, lane);
      gemm_ss<T, 1, 8, D / 16, false, false>(dp, adO, LD, warp * 16, 0, aV, LD, 0, 0, lane);
#pragma unroll
      for (int nt = 0; nt < 8; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int j = c0 + nt * 8 + 2 * t4 + e;
          const ColumnBounds cb = (partial && j < p.seqlen_k) ? mc.column(j) : ColumnBounds{0, 0, 0, 0};
#pragma unroll
          for (int hr = 0; hr < 2; ++hr) {
            const int i = r0 + warp * 16 + g + hr * 8;
            float pv = exp2f(s[0][nt][hr * 2 + e] * scale_log2 - lse2[hr]);
            if (partial && mc.masked(cb, i, j)) pv = 0.f;
            float dpv = dp[0][nt][hr * 2 + e];
            if (dropout) dpv = keep_one(drop, dropout_row(p, b, h, i), j) ? dpv * drop.rescale : 0.f;
            s[0][nt][hr * 2 + e] = pv * (dpv - dl[hr]);
          }
        }
      uint32_t dsa[1][4][4];
      acc_to_a<T, 1, 8>(s, dsa);
      gemm_rs<T, 1, NT_D, 4, true>(acc, dsa, aK, LD, 0, 0, lane);
      __syncthreads();  // K, V may be refilled
    }
    return list[count];  // the sentinel
  });

  cp_async_wait<0>();  // no copy may land after exit (count may be 0)
  T* dq = static_cast<T*>(p.dq) + b * p.dq_batch_stride + h * p.dq_head_stride;
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    const int i = r0 + warp * 16 + g + hr * 8;
    if (i < p.seqlen_q) {
#pragma unroll
      for (int dt = 0; dt < NT_D; ++dt)
        *reinterpret_cast<uint32_t*>(dq + i * p.dq_row_stride + dt * 8 + 2 * t4) = Mma<T>::pack(
            acc[0][dt][hr * 2] * p.softmax_scale, acc[0][dt][hr * 2 + 1] * p.softmax_scale);
    }
  }
}

}  // namespace cuda
}  // namespace flashmask
