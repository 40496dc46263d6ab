// FlashMask backward, column direction, for devices whose shared memory the
// default kernel (dkdv_kernel.cuh) does not fit at long Sq: one CTA (BN / 16 warps) per (key tile
// of BN = 128 keys for D <= 128, else 64; key head; batch) walks the 64-row
// query tiles of every query head of its GQA group that the mask leaves,
// keeping dK and dV for its keys in registers (each warp owns 16 keys). Scores are computed transposed, S^T = K Q^T, so P^T
// and dS^T are already the A operands of dV += P^T dO and dK += dS^T Q.
// Non-deterministic mode also forms dQ += dS K here (dS^T through shared
// memory) and adds it into an fp32 workspace with atomics.
#pragma once

#include <math_constants.h>

#include <type_traits>

#include "core/cuda/sm80/bwd/dq_accum.cuh"
#include "core/cuda/common/dropout.cuh"
#include "core/cuda/common/mask_device.cuh"
#include "core/cuda/sm80/common/smem_budget.h"
#include "core/cuda/sm80/common/warp_gemm.cuh"

namespace flashmask {
namespace cuda {

using sm80::kBlockMBwd;

template <int D, int BN>
struct LowSmemDkdvSmem {
  static constexpr int kThreads = BN * 2;  // BN / 16 warps
  static constexpr int kLd = D + 8;
  static constexpr int kLdS = kBlockMBwd + 8;
  static constexpr int kKTile = BN * kLd;          // elements of K or V
  static constexpr int kQTile = kBlockMBwd * kLd;  // elements of Q or dO
  // K, V, 2 x (Q, dO), dS^T [BN][64 + 8], then 2 x (lse, delta) floats
  static constexpr int kTileBytes = (2 * kKTile + 4 * kQTile + BN * kLdS) * 2 + 4 * kBlockMBwd * 4;
  // + the tile list (fixed capacity: the same at any seqlen_q)
  static constexpr size_t kBytes = kTileBytes + sm80::tile_list_bytes(kThreads);
  // The A100 fallback up to d192 (d192: 165,908 of 166,912 bytes); d256 needs
  // 215,060 B, and no column kernel fits an A100 there yet.
  static_assert(kBytes <= sm80::kH100MaxSmem, "the low-smem column kernel must fit an H100");
  static_assert(D > 192 || kBytes <= sm80::kA100MaxSmem, "up to d192 it must fit an A100");
};

template <typename T, int D, int BN, bool kDropout>
__global__ void __launch_bounds__(BN * 2) dkdv_low_smem_kernel(const BwdParams p,
                                                      const TileBounds* __restrict__ bounds,
                                                      const float* __restrict__ delta,
                                                      float* __restrict__ dq_accum,
                                                      int n_tiles_k) {
  using S = LowSmemDkdvSmem<D, BN>;
  constexpr int NTH = S::kThreads, NW = NTH / 32, BM = kBlockMBwd;
  constexpr int LD = S::kLd, LDS = S::kLdS, NT_D = D / 8;
  extern __shared__ __align__(16) unsigned char smem[];
  T* sK = reinterpret_cast<T*>(smem);
  T* sV = sK + S::kKTile;
  T* sQ = sV + S::kKTile;       // 2 buffers
  T* sdO = sQ + 2 * S::kQTile;  // 2 buffers
  T* sdS = sdO + 2 * S::kQTile;  // [BN keys][64 + 8 queries]
  float* sLse = reinterpret_cast<float*>(sdS + BN * LDS);  // 2 x 64
  float* sDelta = sLse + 2 * BM;                           // 2 x 64
  int* list = reinterpret_cast<int*>(smem + S::kTileBytes);
  const int m_tiles = (p.seqlen_q + BM - 1) / BM;
  int* scratch = list + sm80::kTileListCap + 1;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t4 = lane & 3;
  const int n_tile = blockIdx.x, hk = blockIdx.y, b = blockIdx.z;
  const int group = p.num_heads / p.num_heads_k;
  const int shift = p.seqlen_k - p.seqlen_q;
  const int c0 = n_tile * BN;
  const int keys = min(BN, p.seqlen_k - c0);

  const T* kp = static_cast<const T*>(p.k) + b * p.k_batch_stride + hk * p.k_head_stride;
  const T* vp = static_cast<const T*>(p.v) + b * p.v_batch_stride + hk * p.v_head_stride;
  load_tile<T, BN, D, NTH>(sK, kp + c0 * p.k_row_stride, p.k_row_stride, keys, tid);
  load_tile<T, BN, D, NTH>(sV, vp + c0 * p.v_row_stride, p.v_row_stride, keys, tid);
  cp_async_commit();

  constexpr bool dropout = kDropout;  // separate instantiation: no registers for it otherwise
  Dropout drop{};
  if (dropout) drop = make_dropout(p);
  const float scale_log2 = p.softmax_scale * 1.4426950408889634f;
  const bool atomic_dq = !p.deterministic;
  const uint32_t aK = smem_addr(sK), aV = smem_addr(sV), aS = smem_addr(sdS);

  float acc_dk[1][NT_D][4], acc_dv[1][NT_D][4];
  zero(acc_dk);
  zero(acc_dv);
  const int kr0 = warp * 16 + g;  // this lane's keys: kr0, kr0 + 8 (tile-local)

  // One iteration per (query head hq of the GQA group, chunk of
  // sm80::kTileListCap query tiles from m_lo), as in dkdv_kernel.cuh.
  const int m_first = (p.causal ? max(0, c0 - shift) : 0) / BM;
  constexpr int kNextHead = 1 << 29;  // in a sentinel: the next chunk is the next head's first
  for (int hq = hk * group, m_lo = m_first; m_first < m_tiles && hq < (hk + 1) * group;) {
    const int hm = mask_head_of(p, hq);
    const MaskCols mc = mask_cols(p, b, hm);
    ColumnBounds cb[2];
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      const int j = c0 + kr0 + hr * 8;
      cb[hr] = j < p.seqlen_k ? mc.column(j) : ColumnBounds{0, 0, 0, 0};
    }
    // Query tiles of head hq: the fully masked ones and those in a dropped
    // block_mask block (looked up for this query head) are never listed.
    const TileBounds tb =
        p.mask.ncols > 0
            ? merged_bounds(bounds + (static_cast<int64_t>(b) * p.mask.heads + hm) * n_tiles_k,
                            n_tile * (BN / kBlockN), BN / kBlockN, n_tiles_k)
            : no_mask_bounds(p.seqlen_q);
    auto kind_of = [&](int m) {
      if (!block_kept(p, b, hq, m * BM, c0)) return static_cast<int>(TileKind::kFullyMasked);
      return tile_kind(tb, m * BM, min(m * BM + BM, p.seqlen_q), c0, p, BN);
    };

    const T* qp = static_cast<const T*>(p.q) + b * p.q_batch_stride + hq * p.q_head_stride;
    const T* dop = static_cast<const T*>(p.dout) + b * p.o_batch_stride + hq * p.o_head_stride;
    const int64_t row_base = (static_cast<int64_t>(b) * p.num_heads + hq) * p.seqlen_q;
    auto issue = [&](int it, int buf) {
      const int r0 = (list[it] >> 2) * BM;
      const int rows = min(BM, p.seqlen_q - r0);
      load_tile<T, BM, D, NTH>(sQ + buf * S::kQTile, qp + r0 * p.q_row_stride, p.q_row_stride, rows, tid);
      load_tile<T, BM, D, NTH>(sdO + buf * S::kQTile, dop + r0 * p.o_row_stride, p.o_row_stride, rows, tid);
      const int r = tid & (BM - 1);
      const bool ok = r < rows;
      if (tid < BM)
        cp_async4(smem_addr(sLse + buf * BM + r), p.softmax_lse + row_base + (ok ? r0 + r : 0), ok);
      else if (tid < 2 * BM)
        cp_async4(smem_addr(sDelta + buf * BM + r), delta + row_base + (ok ? r0 + r : 0), ok);
    };
    // One query-tile step (entry `it` of a chunk's list of `count`); kMask: a
    // separate copy for partial tiles, so the unmasked path carries no mask tests.
    auto step = [&](int it, int count, auto mask_tag) {
      constexpr bool partial = decltype(mask_tag)::value;
      const int buf = it & 1;
      const int r0 = (list[it] >> 2) * BM;
      if (it + 1 < count) {
        issue(it + 1, buf ^ 1);
        cp_async_commit();
        cp_async_wait<1>();
      } else {
        cp_async_wait<0>();
      }
      __syncthreads();
      const uint32_t aQ = smem_addr(sQ + buf * S::kQTile), adO = smem_addr(sdO + buf * S::kQTile);

      float s[1][8][4], dp[1][8][4];
      zero(s);
      zero(dp);
      gemm_ss<T, 1, 8, D / 16, false, false>(s, aK, LD, warp * 16, 0, aQ, LD, 0, 0, lane);
      gemm_ss<T, 1, 8, D / 16, false, false>(dp, aV, LD, warp * 16, 0, adO, LD, 0, 0, lane);

      // P^T = exp(scale S^T - lse), dS^T = P^T (dP^T - delta), dropout on both.
#pragma unroll
      for (int nt = 0; nt < 8; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int qc = nt * 8 + 2 * t4 + e;
          const int i = r0 + qc;
          float lse = sLse[buf * BM + qc];
          lse = (i < p.seqlen_q && lse != -CUDART_INF_F) ? lse * 1.4426950408889634f : CUDART_INF_F;
          const float dl = sDelta[buf * BM + qc];
#pragma unroll
          for (int hr = 0; hr < 2; ++hr) {
            const int j = c0 + kr0 + hr * 8;
            float pv = exp2f(s[0][nt][hr * 2 + e] * scale_log2 - lse);
            if constexpr (partial) {
              if (mc.masked(cb[hr], i, j)) pv = 0.f;
            }
            float dpv = dp[0][nt][hr * 2 + e];
            float pd = pv;
            if constexpr (dropout) {
              const uint64_t row_id = dropout_row(p, b, hq, i);
              if (keep_one(drop, row_id, j)) {
                pd = pv * drop.rescale;
                dpv *= drop.rescale;
              } else {
                pd = 0.f;
                dpv = 0.f;
              }
            }
            s[0][nt][hr * 2 + e] = pd;
            dp[0][nt][hr * 2 + e] = pv * (dpv - dl);
          }
        }
      uint32_t pa[1][4][4], dsa[1][4][4];
      acc_to_a<T, 1, 8>(s, pa);
      acc_to_a<T, 1, 8>(dp, dsa);
      gemm_rs<T, 1, NT_D, 4, true>(acc_dv, pa, adO, LD, 0, 0, lane);
      gemm_rs<T, 1, NT_D, 4, true>(acc_dk, dsa, aQ, LD, 0, 0, lane);

      if (atomic_dq) {
        // dS^T -> shared, then dQ(rows of this warp) += dS K, 32 columns at a time.
#pragma unroll
        for (int nt = 0; nt < 8; ++nt)
#pragma unroll
          for (int hr = 0; hr < 2; ++hr)
            *reinterpret_cast<uint32_t*>(sdS + (kr0 + hr * 8) * LDS + nt * 8 + 2 * t4) =
                dsa[0][nt / 2][(nt & 1) * 2 + hr];
        __syncthreads();
        // warp w: query rows 16 (w % 4) .., columns (w / 4) * D / (NW / 4) ..
        constexpr int kColSplit = NW / 4;  // 1 (4 warps) or 2 (8 warps)
        constexpr int kCols = D / kColSplit;
        constexpr int kChunk = kCols % 32 == 0 ? 32 : 16;
        const int qw = (warp & 3) * 16, col0 = (warp >> 2) * kCols;
        float* dq_slab =
            dq_accum + (static_cast<int64_t>(b) * p.num_heads + hq) * dq_accum_rows(p.seqlen_q) * D;
#pragma unroll 1
        for (int ch = 0; ch < kCols / kChunk; ++ch) {
          float acc[1][kChunk / 8][4];
          zero(acc);
          gemm_ss<T, 1, kChunk / 8, BN / 16, true, true>(acc, aS, LDS, qw, 0, aK, LD,
                                                         col0 + ch * kChunk, 0, lane);
          if (r0 + qw < p.seqlen_q) {
#pragma unroll
            for (int nt = 0; nt < kChunk / 8; ++nt)
              dq_add_fragment(dq_slab + dq_fragment_offset(r0 + qw, col0 + ch * kChunk + nt * 8, D),
                              lane, acc[0][nt]);
          }
        }
      }
      // Buffers of this step are refilled by the next step's prefetch. With
      // atomic dQ the barrier after the dS^T store already follows every read
      // of them (and sdS is rewritten only after the next top barrier).
      if (!atomic_dq) __syncthreads();
    };
    // compact_tiles' barriers follow the previous chunk's reads of the list
    // and of both Q / dO buffers. Where to go on is in the list's sentinel
    // (as in dkdv_kernel.cuh).
    const int m_hi = min(m_lo + sm80::kTileListCap, m_tiles);
    const int count = compact_tiles<NTH, true>(m_lo, m_hi, kind_of, list, scratch,
                                               ~(m_hi < m_tiles ? m_hi : m_first | kNextHead));
    if (count > 0) issue(0, 0);
    cp_async_commit();
    for (int it = 0; it < count; ++it) {
      if ((list[it] & 3) == static_cast<int>(TileKind::kPartial))
        step(it, count, std::true_type{});
      else
        step(it, count, std::false_type{});
    }
    const int next = ~list[count];  // the sentinel
    hq += (next & kNextHead) != 0;
    m_lo = next & (kNextHead - 1);
  }

  cp_async_wait<0>();  // no copy may land after exit (count may be 0)
  // dK = scale * sum dS^T Q, dV = sum P^T dO (summed over the GQA group).
  T* dk = static_cast<T*>(p.dk) + b * p.dk_batch_stride + hk * p.dk_head_stride;
  T* dv = static_cast<T*>(p.dv) + b * p.dv_batch_stride + hk * p.dv_head_stride;
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    const int j = c0 + kr0 + hr * 8;
    if (j < p.seqlen_k) {
#pragma unroll
      for (int dt = 0; dt < NT_D; ++dt) {
        *reinterpret_cast<uint32_t*>(dk + j * p.dk_row_stride + dt * 8 + 2 * t4) = Mma<T>::pack(
            acc_dk[0][dt][hr * 2] * p.softmax_scale, acc_dk[0][dt][hr * 2 + 1] * p.softmax_scale);
        *reinterpret_cast<uint32_t*>(dv + j * p.dv_row_stride + dt * 8 + 2 * t4) =
            Mma<T>::pack(acc_dv[0][dt][hr * 2], acc_dv[0][dt][hr * 2 + 1]);
      }
    }
  }
}

}  // namespace cuda
}  // namespace flashmask
