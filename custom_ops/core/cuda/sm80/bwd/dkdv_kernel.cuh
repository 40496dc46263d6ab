// FlashMask backward, column direction: the sm80 default wherever a DkdvCfg
// exists and its shared memory fits (else dkdv_low_smem_kernel.cuh, "the
// low-smem kernel" below).
//
// Same work split as the low-smem kernel: one CTA (8 warps) per (key tile of BN keys, key
// head, batch) walks the BM-row query tiles of every query head of its GQA
// group that the mask leaves, dK/dV in registers, dQ added into the fp32
// workspace with atomics (or, deterministic, by sm80/bwd/dq_kernel.cuh). The step
// is FlashAttention-2's (flash_bwd_kernel.h) instead of the low-smem kernel's 16-key warp
// strips, which re-read the whole Q/dO tile from shared memory in every warp:
//
//   S  = Q K^T, dP = dO V^T   BM x BN, warp grid WM_S (rows) x 8/WM_S (keys):
//                             32 x 32 warp tiles for BM = 64, BN = 128
//   P, dS (bf16/fp16)  -> sP, sdS [BM][BN + 8]           (one barrier)
//   dV += P^T dO, dK += dS^T Q  BN x D, warp grid WN_KV (keys) x 8/WN_KV (d),
//                             A operands via ldmatrix.trans from sP / sdS
//   dQ  = dS K                BM x D, warp grid WM_Q (rows) x 8/WM_Q (d)
//
// d128: 144 ldmatrix.x4 per warp per step for 320 mma (low-smem kernel: 192). Two
// barriers per step (top: the tile landed and the previous step's reads of
// sP / sdS / the other Q buffer are done; middle: P / dS visible). Q, dO,
// lse, delta are double-buffered (cp.async issued right after the top
// barrier, a full step ahead). Partial tiles read the decoded column bounds
// of the CTA's keys from shared memory (staged once per query head); tiles
// masked only by the causal diagonal compare with a per-row last key. dQ goes
// to the fp32 workspace one C fragment per red.v4 (dq_accum.cuh); dK, dV
// leave through shared memory as 16-byte rows.
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

// Tile shapes per head dim (FA2's sm80 Flash_bwd_kernel_traits choices).
// BM query rows per step, BN keys per CTA, 8 warps. kDefined = false: low-smem kernel only.
template <int D>
struct DkdvCfg {
  static constexpr bool kDefined = false;
  static constexpr int BM = 64, BN = 128, WM_S = 2, WN_KV = 4, WM_Q = 2;
};
template <>
struct DkdvCfg<64> {
  static constexpr bool kDefined = true;
  static constexpr int BM = 64, BN = 128, WM_S = 2, WN_KV = 4, WM_Q = 2;
};
template <>
struct DkdvCfg<96> {
  static constexpr bool kDefined = true;
  static constexpr int BM = 64, BN = 128, WM_S = 2, WN_KV = 4, WM_Q = 4;
};
template <>
struct DkdvCfg<128> {
  static constexpr bool kDefined = true;
  static constexpr int BM = 64, BN = 128, WM_S = 2, WN_KV = 4, WM_Q = 2;
};
template <>
struct DkdvCfg<192> {
  static constexpr bool kDefined = true;
  static constexpr int BM = 64, BN = 64, WM_S = 4, WN_KV = 2, WM_Q = 2;
};
template <>
struct DkdvCfg<256> {
  static constexpr bool kDefined = true;
  static constexpr int BM = 64, BN = 64, WM_S = 4, WN_KV = 2, WM_Q = 2;
};

template <int D>
struct DkdvSmem {
  using C = DkdvCfg<D>;
  static constexpr int BM = C::BM, BN = C::BN;
  static constexpr int kThreads = 256;
  static constexpr int kLd = D + 8;    // K, V, Q, dO row pitch (elements)
  static constexpr int kLdP = BN + 8;  // P, dS row pitch
  static constexpr int kKTile = BN * kLd;
  static constexpr int kQTile = BM * kLd;
  static constexpr int kPTile = BM * kLdP;
  // K, V, 2 x Q, 2 x dO, P, dS (16-bit), then BN column bounds, 2 x (lse, delta)
  static constexpr int kHalfBytes = (2 * kKTile + 4 * kQTile + 2 * kPTile) * 2;
  static constexpr int kTileBytes = kHalfBytes + BN * 16 + 4 * BM * 4;
  // + the tile list (fixed capacity: the same at any seqlen_q)
  static constexpr size_t kBytes = kTileBytes + sm80::tile_list_bytes(kThreads);
  static_assert(kHalfBytes % 16 == 0, "column bounds need 16-byte alignment");
  // block_mask decides per 128 x 128 block (tile_size.h): the tiles must nest
  static_assert(kBlockMaskSize % BM == 0 && kBlockMaskSize % BN == 0, "dK/dV tiles must nest in block_mask blocks");
  // An H100 fits every head dim; an A100 only d64 and d96 (double-buffered Q
  // and dO): there sm80/bwd/launch.cuh takes the low-smem kernel from d128 on.
  static_assert(kBytes <= sm80::kH100MaxSmem, "the default column kernel must fit an H100");
  static_assert(D > 96 || kBytes <= sm80::kA100MaxSmem, "d64 / d96 must fit an A100");
};

template <typename T, int D, bool kDropout>
__global__ void __launch_bounds__(256, 1) dkdv_kernel(const BwdParams p,
                                                       const TileBounds* __restrict__ bounds,
                                                       const float* __restrict__ delta,
                                                       float* __restrict__ dq_accum,
                                                       int n_tiles_k) {
  using C = DkdvCfg<D>;
  using S = DkdvSmem<D>;
  constexpr int NTH = S::kThreads, NW = NTH / 32, BM = C::BM, BN = C::BN;
  constexpr int LD = S::kLd, LDP = S::kLdP;
  // S / dP warp tiles: TSM rows x TSN keys
  constexpr int WM_S = C::WM_S, WN_S = NW / WM_S;
  constexpr int TSM = BM / WM_S, TSN = BN / WN_S, MT_S = TSM / 16, NT_S = TSN / 8;
  // dK / dV warp tiles: TKN keys x TKD dims
  constexpr int WN_KV = C::WN_KV, WD_KV = NW / WN_KV;
  constexpr int TKN = BN / WN_KV, TKD = D / WD_KV, MT_KV = TKN / 16, NT_KV = TKD / 8;
  // dQ warp tiles: TQM rows x TQD dims
  constexpr int WM_Q = C::WM_Q, WD_Q = NW / WM_Q;
  constexpr int TQM = BM / WM_Q, TQD = D / WD_Q, MT_Q = TQM / 16, NT_Q = TQD / 8;
  static_assert(C::kDefined, "no DkdvCfg for this head dim");
  static_assert(TSM % 16 == 0 && TSN % 16 == 0 && TKN % 16 == 0 && TKD % 16 == 0 &&
                    TQM % 16 == 0 && TQD % 16 == 0,
                "warp tiles must be multiples of 16");
  static_assert(2 * BM <= NTH && BN <= NTH, "lse / delta / column loads: one element per thread");

  extern __shared__ __align__(16) unsigned char smem[];
  T* sK = reinterpret_cast<T*>(smem);
  T* sV = sK + S::kKTile;
  T* sQ = sV + S::kKTile;        // 2 buffers
  T* sdO = sQ + 2 * S::kQTile;   // 2 buffers
  T* sP = sdO + 2 * S::kQTile;   // [BM][BN + 8]
  T* sdS = sP + S::kPTile;       // [BM][BN + 8]
  ColumnBounds* sCol = reinterpret_cast<ColumnBounds*>(smem + S::kHalfBytes);  // [BN]
  float* sLse = reinterpret_cast<float*>(sCol + BN);  // 2 x BM
  float* sDelta = sLse + 2 * BM;                      // 2 x BM
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

  constexpr bool dropout = kDropout;
  Dropout drop{};
  if (dropout) drop = make_dropout(p);
  const float scale_log2 = p.softmax_scale * 1.4426950408889634f;
  const bool atomic_dq = !p.deterministic;
  const uint32_t aK = smem_addr(sK), aV = smem_addr(sV), aP = smem_addr(sP), adS = smem_addr(sdS);

  // this warp's tiles
  const int s_m0 = (warp % WM_S) * TSM, s_n0 = (warp / WM_S) * TSN;
  const int kv_n0 = (warp % WN_KV) * TKN, kv_d0 = (warp / WN_KV) * TKD;
  const int q_m0 = (warp % WM_Q) * TQM, q_d0 = (warp / WM_Q) * TQD;

  float acc_dk[MT_KV][NT_KV][4], acc_dv[MT_KV][NT_KV][4];
  zero(acc_dk);
  zero(acc_dv);

  // One iteration per (query head hq of the GQA group, chunk of
  // sm80::kTileListCap query tiles from m_lo): one loop, not a chunk loop
  // inside the head loop (that nesting made ptxas spill inside the step).
  // Where to go on is in the chunk list's sentinel, ~(the next chunk's first
  // tile | kNextHead when it is the next head's), not in registers across the
  // steps (d128 on sm_90a: no spills at all; with a live m_first, 32 bytes).
  const int m_first = (p.causal ? max(0, c0 - shift) : 0) / BM;
  constexpr int kNextHead = 1 << 29;  // in a sentinel: the next chunk is the next head's first
  for (int hq = hk * group, m_lo = m_first; m_first < m_tiles && hq < (hk + 1) * group;) {
    const int hm = mask_head_of(p, hq);
    const MaskCols mc = mask_cols(p, b, hm);
    // Query tiles of head hq: the fully masked ones and those in a dropped
    // block_mask block (looked up for this query head) are never listed.
    const TileBounds tb =
        p.mask.ncols > 0
            ? merged_bounds(bounds + (static_cast<int64_t>(b) * p.mask.heads + hm) * n_tiles_k,
                            n_tile * (BN / kBlockN), BN / kBlockN, n_tiles_k)
            : no_mask_bounds(p.seqlen_q);
    auto kind_of = [&](int m) {
      if (!block_kept(p, b, hq, m * BM, c0)) return static_cast<int>(TileKind::kFullyMasked);
      return tile_kind<true>(tb, m * BM, min(m * BM + BM, p.seqlen_q), c0, p, BN);
    };

    const T* qp = static_cast<const T*>(p.q) + b * p.q_batch_stride + hq * p.q_head_stride;
    const T* dop = static_cast<const T*>(p.dout) + b * p.o_batch_stride + hq * p.o_head_stride;
    const int64_t row_base = (static_cast<int64_t>(b) * p.num_heads + hq) * p.seqlen_q;
    const int64_t dq_slab_offset =
        (static_cast<int64_t>(b) * p.num_heads + hq) * dq_accum_rows(p.seqlen_q) * D;
    auto issue = [&](int entry, int buf) {
      const int r0 = (entry >> 2) * BM;
      const int rows = min(BM, p.seqlen_q - r0);
      load_tile<T, BM, D, NTH>(sQ + buf * S::kQTile, qp + r0 * p.q_row_stride, p.q_row_stride, rows, tid);
      load_tile<T, BM, D, NTH>(sdO + buf * S::kQTile, dop + r0 * p.o_row_stride, p.o_row_stride, rows, tid);
      const int r = tid & (BM - 1);
      const bool ok = r < rows;
      if (tid < BM)
        cp_async4(smem_addr(sLse + buf * BM + r), p.softmax_lse + row_base + (ok ? r0 + r : 0), ok);
      else if (tid < 2 * BM)
        cp_async4(smem_addr(sDelta + buf * BM + r), delta + row_base + (ok ? r0 + r : 0), ok);
      cp_async_commit();
    };
    auto step = [&](int entry, int next, int it, auto mask_tag) {
      constexpr ElementMask kMask = decltype(mask_tag)::value;
      const int buf = it & 1;
      const int r0 = (entry >> 2) * BM;
      // Top barrier: tile `it` landed for every thread; every read of the
      // previous step (Q / dO buffer buf ^ 1, sP, sdS) is done.
      cp_async_wait<0>();
      __syncthreads();
      if (next >= 0) issue(next, buf ^ 1);
      const uint32_t aQ = smem_addr(sQ + buf * S::kQTile), adO = smem_addr(sdO + buf * S::kQTile);

      float s[MT_S][NT_S][4], dp[MT_S][NT_S][4];
      zero(s);
      zero(dp);
      gemm_ss<T, MT_S, NT_S, D / 16, false, false>(s, aQ, LD, s_m0, 0, aK, LD, s_n0, 0, lane);
      gemm_ss<T, MT_S, NT_S, D / 16, false, false>(dp, adO, LD, s_m0, 0, aV, LD, s_n0, 0, lane);

      // lse (log2 domain; +inf for rows past seqlen_q or fully masked rows:
      // P = 0 there) and delta of this lane's rows.
      float lse2[MT_S][2], dl[MT_S][2];
#pragma unroll
      for (int mt = 0; mt < MT_S; ++mt)
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
          const int row = s_m0 + mt * 16 + hr * 8 + g;
          const float l = sLse[buf * BM + row];
          lse2[mt][hr] = (r0 + row < p.seqlen_q && l != -CUDART_INF_F) ? l * 1.4426950408889634f
                                                                        : CUDART_INF_F;
          dl[mt][hr] = sDelta[buf * BM + row];
        }

      // P = exp(scale S - lse) (masked: 0), dS = P (dP - delta); dropout
      // drops P for dV and dP for dS (as the low-smem kernel and the row kernel).
#pragma unroll
      for (int nt = 0; nt < NT_S; ++nt) {
        const int col = s_n0 + nt * 8 + 2 * t4;  // tile-local key of e = 0; e = 1 is col + 1
        const int j = c0 + col;
        ColumnBounds cb0{0, 0, 0, 0}, cb1{0, 0, 0, 0};
        if constexpr (kMask == ElementMask::kColumns) {
          cb0 = sCol[col];
          cb1 = sCol[col + 1];
        }
#pragma unroll
        for (int mt = 0; mt < MT_S; ++mt)
#pragma unroll
          for (int hr = 0; hr < 2; ++hr) {
            const int row = s_m0 + mt * 16 + hr * 8 + g;
            const int i = r0 + row;
            float pv[2], pd[2], ds[2];
#pragma unroll
            for (int e = 0; e < 2; ++e)
              pv[e] = exp2f(s[mt][nt][hr * 2 + e] * scale_log2 - lse2[mt][hr]);
            if constexpr (kMask == ElementMask::kColumns) {
              if (mc.masked(cb0, i, j)) pv[0] = 0.f;
              if (mc.masked(cb1, i, j + 1)) pv[1] = 0.f;
            } else if constexpr (kMask == ElementMask::kCausal) {
              const int last = last_key(i, p);
              if (j > last) pv[0] = 0.f;
              if (j + 1 > last) pv[1] = 0.f;
            }
            float dpv[2] = {dp[mt][nt][hr * 2], dp[mt][nt][hr * 2 + 1]};
            pd[0] = pv[0];
            pd[1] = pv[1];
            if constexpr (dropout) {
              bool keep[2];
              keep_pair(drop, dropout_row(p, b, hq, i), j, keep[0], keep[1]);
#pragma unroll
              for (int e = 0; e < 2; ++e) {
                pd[e] = keep[e] ? pv[e] * drop.rescale : 0.f;
                dpv[e] = keep[e] ? dpv[e] * drop.rescale : 0.f;
              }
            }
#pragma unroll
            for (int e = 0; e < 2; ++e) ds[e] = pv[e] * (dpv[e] - dl[mt][hr]);
            *reinterpret_cast<uint32_t*>(sP + row * LDP + col) = Mma<T>::pack(pd[0], pd[1]);
            *reinterpret_cast<uint32_t*>(sdS + row * LDP + col) = Mma<T>::pack(ds[0], ds[1]);
          }
      }
      __syncthreads();  // P, dS visible

      // dV += P^T dO, dK += dS^T Q (A = P^T / dS^T: sP / sdS read transposed)
      gemm_ss<T, MT_KV, NT_KV, BM / 16, true, true>(acc_dv, aP, LDP, kv_n0, 0, adO, LD, kv_d0, 0,
                                                      lane);
      gemm_ss<T, MT_KV, NT_KV, BM / 16, true, true>(acc_dk, adS, LDP, kv_n0, 0, aQ, LD, kv_d0, 0,
                                                      lane);

      if (atomic_dq) {
        // dQ (rows of this step) += dS K into the fp32 workspace, a C fragment
        // per red.v4 (dq_accum.cuh)
        float acc[MT_Q][NT_Q][4];
        zero(acc);
        gemm_ss<T, MT_Q, NT_Q, BN / 16, false, true>(acc, adS, LDP, q_m0, 0, aK, LD, q_d0, 0, lane);
        float* dq_slab = dq_accum + dq_slab_offset;
#pragma unroll
        for (int mt = 0; mt < MT_Q; ++mt) {
          const int row0 = r0 + q_m0 + mt * 16;
          if (row0 < p.seqlen_q) {
#pragma unroll
            for (int nt = 0; nt < NT_Q; ++nt)
              dq_add_fragment(dq_slab + dq_fragment_offset(row0, q_d0 + nt * 8, D), lane,
                              acc[mt][nt]);
          }
        }
      }
      // No end-of-step barrier: the next step's top barrier orders these
      // reads (Q / dO buffer buf, sP, sdS) before any rewrite of them.
    };
    // The previous chunk, if visited, ended with a barrier: its steps are
    // done reading sCol; compact_tiles' barriers make the new values visible
    // and order those steps before the rewrite of the list, the Q / dO
    // buffers and sP / sdS.
    if (tid < BN) {
      const int j = c0 + tid;
      sCol[tid] = j < p.seqlen_k ? mc.column(j) : ColumnBounds{0, 0, 0, 0};
    }
    const int m_hi = min(m_lo + sm80::kTileListCap, m_tiles);
    const int count = compact_tiles<NTH, true>(m_lo, m_hi, kind_of, list, scratch,
                                               ~(m_hi < m_tiles ? m_hi : m_first | kNextHead));
    int sentinel = list[0];
    if (count > 0) {  // uniform across the CTA
      issue(list[0], 0);
      sentinel = visit_tiles(list, list[0], step);
      __syncthreads();  // the last step's reads are done before the next chunk's loads
    }
    const int next = ~sentinel;
    hq += (next & kNextHead) != 0;
    m_lo = next & (kNextHead - 1);
  }

  // dK = scale * sum dS^T Q, dV = sum P^T dO (summed over the GQA group),
  // through sK / sV so that each thread stores 16 contiguous bytes.
  cp_async_wait<0>();
  __syncthreads();  // every copy into sK / sV landed and every read of them is done
#pragma unroll
  for (int mt = 0; mt < MT_KV; ++mt)
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      const int r = kv_n0 + mt * 16 + hr * 8 + g;
#pragma unroll
      for (int nt = 0; nt < NT_KV; ++nt) {
        const int c = kv_d0 + nt * 8 + 2 * t4;
        *reinterpret_cast<uint32_t*>(sK + r * LD + c) =
            Mma<T>::pack(acc_dk[mt][nt][hr * 2] * p.softmax_scale,
                         acc_dk[mt][nt][hr * 2 + 1] * p.softmax_scale);
        *reinterpret_cast<uint32_t*>(sV + r * LD + c) =
            Mma<T>::pack(acc_dv[mt][nt][hr * 2], acc_dv[mt][nt][hr * 2 + 1]);
      }
    }
  __syncthreads();
  T* dk = static_cast<T*>(p.dk) + b * p.dk_batch_stride + hk * p.dk_head_stride;
  T* dv = static_cast<T*>(p.dv) + b * p.dv_batch_stride + hk * p.dv_head_stride;
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
#pragma unroll
  for (int ch = tid; ch < BN * kChunks; ch += NTH) {
    const int r = ch / kChunks, c = (ch % kChunks) * 8, j = c0 + r;
    if (j < p.seqlen_k) {
      *reinterpret_cast<uint4*>(dk + j * p.dk_row_stride + c) =
          *reinterpret_cast<const uint4*>(sK + r * LD + c);
      *reinterpret_cast<uint4*>(dv + j * p.dv_row_stride + c) =
          *reinterpret_cast<const uint4*>(sV + r * LD + c);
    }
  }
}

}  // namespace cuda
}  // namespace flashmask
