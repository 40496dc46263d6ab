// The steps both consumer variants of the sm90a backward share (the
// key-split one of sm90/bwd/consumer.cuh and the head-dim-split one of
// sm90/bwd/consumer_split_d.cuh): per-head mask intervals, P^T and dS^T on the
// accumulator's (key, query) view, the dQ slice hand-off to the writer warp,
// and the dK / dV epilogue. Each works on whatever part of the block the
// calling thread's tiled-MMA partition holds.
#pragma once

#include "core/cuda/sm90/common/accum_layout.cuh"
#include "core/cuda/sm90/common/wgmma.cuh"
#include "core/cuda/sm90/bwd/mask.cuh"
#include "core/cuda/sm90/bwd/traits.h"

namespace flashmask {
namespace cuda {
namespace sm90 {
namespace bwd {

// The consumers' views of the shared-memory tiles: Q, dO, K, V, dS and their
// transposed (MN-major) views, one definition for both variants.
template <typename Traits>
__device__ __forceinline__ auto smem_views(typename Traits::SharedStorage& ss) {
  return cute::make_tuple(make_tensor(make_smem_ptr(ss.smem_q.data()), typename Traits::SmemLayoutQ{}),
                          make_tensor(make_smem_ptr(ss.smem_do.data()), typename Traits::SmemLayoutdO{}),
                          make_tensor(make_smem_ptr(ss.smem_q.data()), typename Traits::SmemLayoutQt{}),
                          make_tensor(make_smem_ptr(ss.smem_do.data()), typename Traits::SmemLayoutdOt{}),
                          make_tensor(make_smem_ptr(ss.smem_k.data()), typename Traits::SmemLayoutK{}),
                          make_tensor(make_smem_ptr(ss.smem_v.data()), typename Traits::SmemLayoutK{}),
                          make_tensor(make_smem_ptr(ss.smem_k.data()), typename Traits::SmemLayoutKt{}),
                          make_tensor(make_smem_ptr(ss.smem_ds.data()), typename Traits::SmemLayoutdS{}),
                          make_tensor(make_smem_ptr(ss.smem_ds.data()), typename Traits::SmemLayoutdSt{}));
}

// Masked query intervals of this thread's keys for mask head hm, into its
// warpgroup's table (the keys' columns, decoded once per head).
template <typename Traits, class CS>
__device__ __forceinline__ void load_head_intervals(const BwdKernelParams<Traits>& p, const MaskGeom& g, int b,
                                                    int hm, int c0, const CS& cs_rc, int4* iv_table) {
  __syncwarp();  // the quad's other lanes are done reading the previous head's keys
  const int32_t* col0 =
      p.startend != nullptr ? p.startend + b * p.mask_batch_stride + hm * p.mask_head_stride : nullptr;
#pragma unroll
  for (int r = 0; r < decltype(size<0>(cs_rc))::value; ++r) {
    const int j = c0 + get<0>(cs_rc(r, 0));
    int32_t raw[4];
    load_column(col0, p.ncols, j, g, raw);
    iv_table[get<0>(cs_rc(r, 0))] = encode_column(raw, col0 != nullptr, p.ncols, j, g);
  }
  // the four lanes of a quad write the same entries, and a lane's reads may
  // see another lane's store: order them (same values, but without it the
  // warp relies on lockstep; racecheck reported it as a hazard)
  __syncwarp();
}

// This thread's queries' entries of a per-query smem vector (lse or delta of
// a stage) into registers.
template <class Frag, class CS>
__device__ __forceinline__ void load_per_query(Frag& dst, const CS& cs_rc, const float* src) {
#pragma unroll
  for (int c = 0; c < decltype(size(dst))::value; ++c) dst(c) = src[get<1>(cs_rc(0, c))];
}

// P^T = exp2(S^T * scale_log2 - lse_log2[query]) in place (lse(c): the log2
// lse of this thread's c-th query); in partial blocks 0 where the query lies
// in one of its key's two masked intervals. Those go to bits once per key
// (row_mask_word: bit k of word w is query q0 + 32 w + k, q0 this thread's
// first query column), so an element costs one bit test, not four compares:
// a thread's query columns are q0 plus constants (the accumulator layout), so
// its word and bit are constants. Unmasked blocks have no mask code.
template <class SRC, class CS, class Lse>
__device__ __forceinline__ void probabilities(SRC& s_rc, const CS& cs_rc, const Lse& lse, int row0,
                                              bool partial, float scale_log2, const int4* iv_table) {
  constexpr int kRows = decltype(size<0>(s_rc))::value;  // keys of this thread
  constexpr int kCols = decltype(size<1>(s_rc))::value;  // queries of this thread
  if (partial) {
    const int q0 = get<1>(cs_rc(0, 0));
    constexpr int kWords = 4;  // up to 128 queries (BM = 128 at d64); the unread ones are dropped
    uint32_t bits[kRows][kWords];
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const int4 iv = iv_table[get<0>(cs_rc(r, 0))];
#pragma unroll
      for (int w = 0; w < kWords; ++w) bits[r][w] = row_mask_word(iv, row0 + q0 + 32 * w);
    }
#pragma unroll
    for (int c = 0; c < kCols; ++c) {
      const int off = get<1>(cs_rc(0, c)) - q0;
      const float l = lse(c);
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        const bool masked = (bits[r][off / 32] >> (off % 32)) & 1u;
        const float e = exp2f(s_rc(r, c) * scale_log2 - l);
        s_rc(r, c) = masked ? 0.f : e;
      }
    }
  } else {
#pragma unroll
    for (int c = 0; c < kCols; ++c) {
      const float l = lse(c);
#pragma unroll
      for (int r = 0; r < kRows; ++r) s_rc(r, c) = exp2f(s_rc(r, c) * scale_log2 - l);
    }
  }
}

// dS^T = P^T * (dP^T - delta[query]), into the dP^T accumulator (delta(c):
// this thread's c-th query's)
template <class SRC, class DPRC, class Delta>
__device__ __forceinline__ void grad_scores(const SRC& s_rc, DPRC& dp_rc, const Delta& delta) {
#pragma unroll
  for (int c = 0; c < decltype(size<1>(s_rc))::value; ++c) {
    const float d = delta(c);
#pragma unroll
    for (int r = 0; r < decltype(size<0>(s_rc))::value; ++r) dp_rc(r, c) = s_rc(r, c) * (dp_rc(r, c) - d);
  }
}

// The first half of every visited block, both variants: S^T = K Q^T and
// dP^T = V dO^T issued together, P^T (exp2, mask on partial blocks) while
// dP^T runs, then dS^T; P^T and dS^T converted to the element type (rP, rdS).
// The caller releases the Q and dO stages once its later GEMMs are done.
template <typename Traits, class Mma, class FragK, class FragQ, class FragDo, class Acc, class RC, class CS, class Rel>
__device__ __forceinline__ void scores_and_grads(
    Mma& mma_sdp, typename Traits::SharedStorage& ss, typename Traits::PipelineQ& pipe_q,
    typename Traits::PipelineQ::PipelineState q_read, typename Traits::PipelinedO& pipe_do,
    typename Traits::PipelinedO::PipelineState do_read, const FragK& tSrK, const FragK& tSrV, const FragQ& tSrQ,
    const FragDo& tSrdO, Acc& tSrS, Acc& tSrdP, RC& s_rc, RC& dp_rc, const CS& cs_rc, Rel& rP, Rel& rdS, int m,
    bool partial, float scale_log2, const int4* iv_table) {
  constexpr int BM = Traits::kBlockM;
  constexpr int kCols = decltype(size<1>(s_rc))::value;  // queries of this thread
  // lse into registers before this block's GEMMs are queued: a shared load
  // issued behind the S / dP wgmma's waits until they are dispatched, and
  // that was ~10 % of the block in the open at the S wait (ncu next to V3,
  // #29); delta likewise before the dP wait. d64 (BM = 128: 32 queries per
  // thread) has no registers for that: it reads both at their use.
  constexpr bool kStatsFirst = kCols <= 16;
  const float* lse_stage = ss.smem_lse.data() + q_read.index() * BM;
  const float* delta_stage = ss.smem_delta.data() + do_read.index() * BM;
  Tensor lse_r = make_tensor<float>(Int<kCols>{});
  Tensor delta_r = make_tensor<float>(Int<kCols>{});
  auto lse = [&](int c) {
    if constexpr (kStatsFirst) return lse_r(c);
    else return lse_stage[get<1>(cs_rc(0, c))];
  };
  auto delta = [&](int c) {
    if constexpr (kStatsFirst) return delta_r(c);
    else return delta_stage[get<1>(cs_rc(0, c))];
  };

  pipe_q.consumer_wait(q_read);
  if constexpr (kStatsFirst) load_per_query(lse_r, cs_rc, lse_stage);
  wg_gemm(mma_sdp, tSrK, tSrQ(_, _, _, q_read.index()), tSrS, true);
  pipe_do.consumer_wait(do_read);
  wg_gemm(mma_sdp, tSrV, tSrdO(_, _, _, do_read.index()), tSrdP, true);
  warpgroup_wait<1>();
  warpgroup_fence_operand(tSrS);

  probabilities(s_rc, cs_rc, lse, m * BM, partial, scale_log2, iv_table);
  if constexpr (kStatsFirst) load_per_query(delta_r, cs_rc, delta_stage);  // under dP's tail
  warpgroup_wait<0>();
  warpgroup_fence_operand(tSrdP);
  grad_scores(s_rc, dp_rc, delta);
  convert_into(tSrS, rP);
  convert_into(tSrdP, rdS);
}

// stmatrix stores of a converted S^T-shaped accumulator fragment (P^T, dS^T)
// into its smem view: four 8x8 tiles per instruction, 4 for a warpgroup's
// 64 x 64 tile where 4-byte stores of query pairs take 16. The view's runs of
// 8 queries are contiguous (the queries-contiguous dS / P layouts).
// stsm_copy: the tiled copy (cute::copy's first argument); its thread slice
// partitions the smem view (partition_D) and retiles the fragment (retile_S).
template <typename Element, class Mma>
__device__ __forceinline__ auto stsm_copy(const Mma& mma) {
  return make_tiled_copy_C(Copy_Atom<SM90_U32x4_STSM_N, Element>{}, mma);
}

// A converted accumulator fragment into its smem view (same partition order):
// pairs of adjacent queries, 4-byte stores, conflict-free under the swizzle.
template <typename Element, class Frag, class Dst>
__device__ __forceinline__ void store_pairs(const Frag& src, Dst&& dst) {
#pragma unroll
  for (int i = 0; i < size(src); i += 2) {
    cutlass::Array<Element, 2> pr;
    pr[0] = src(i);
    pr[1] = src(i + 1);
    *reinterpret_cast<cutlass::Array<Element, 2>*>(&dst(i)) = pr;
  }
}

// This warpgroup's part of a dQ slice from registers to the writer warp's
// smem tile (float4 per thread in register order, conflict-free), then hand
// it over. Each warpgroup has its own part and barrier pair (wg: the
// warp-uniform warpgroup index), so one warpgroup's hand-off never waits for
// the other's (they drift apart and their exp2's share the MUFU less).
template <typename Traits, class Frag>
__device__ __forceinline__ void dq_part_to_writer(const Frag& dq, typename Traits::SharedStorage& ss, int tidx,
                                                  int wg) {
  static_assert(decltype(size(dq))::value * 128 == Traits::kDqPartFloats, "dQ part");
  cutlass::arch::NamedBarrier::sync(Traits::kDqPartThreads, Traits::kBarDqEmpty + wg);
  float4* sdq = reinterpret_cast<float4*>(ss.smem_dq.data());
#pragma unroll
  for (int k = 0; k < size(dq) / 4; ++k)
    sdq[Traits::dq_float4_index(k, tidx)] = make_float4(dq(4 * k), dq(4 * k + 1), dq(4 * k + 2), dq(4 * k + 3));
  cutlass::arch::fence_view_async_shared();
  cutlass::arch::NamedBarrier::arrive(Traits::kDqPartThreads, Traits::kBarDqFull + wg);
}

// After the walk: the writer has read this warpgroup's last part (it arrives
// once more than there were parts: its initial arrive).
template <typename Traits>
__device__ __forceinline__ void wait_dq_parts_read(int wg) {
  cutlass::arch::NamedBarrier::sync(Traits::kDqPartThreads, Traits::kBarDqEmpty + wg);
}

// Epilogue: dK (x softmax_scale) and dV straight from registers, keys < seqlen_k.
template <typename Traits, class Mma, class Acc>
__device__ __forceinline__ void store_dk_dv(const BwdKernelParams<Traits>& p, Mma& mma_dkv, Acc& tdVrdV,
                                            Acc& tdKrdK, int tidx, int b, int hk, int c0) {
  using Element = typename Traits::Element;
  auto thr_dkv = mma_dkv.get_thread_slice(tidx);
  Tensor cKV = thr_dkv.partition_C(make_identity_tensor(Shape<Int<Traits::kBlockN>, Int<Traits::kHeadDim>>{}));
  Tensor dv_rc = make_tensor(tdVrdV.data(), rowcol_layout(tdVrdV.layout()));
  Tensor dk_rc = make_tensor(tdKrdK.data(), rowcol_layout(tdKrdK.layout()));
  Tensor ckv_rc = make_tensor(cKV.data(), rowcol_layout(cKV.layout()));
  Element* dk = static_cast<Element*>(p.dk) + b * p.dk_batch_stride + hk * p.dk_head_stride;
  Element* dv = static_cast<Element*>(p.dv) + b * p.dv_batch_stride + hk * p.dv_head_stride;
  const float scale = p.softmax_scale;
#pragma unroll
  for (int r = 0; r < size<0>(dv_rc); ++r) {
    const int j = c0 + get<0>(ckv_rc(r, 0));
    if (j >= p.seqlen_k) continue;
    Element* dk_row = dk + static_cast<int64_t>(j) * p.dk_row_stride;
    Element* dv_row = dv + static_cast<int64_t>(j) * p.dv_row_stride;
#pragma unroll
    for (int c = 0; c < size<1>(dv_rc); c += 2) {
      const int col = get<1>(ckv_rc(r, c));
      cutlass::Array<Element, 2> pk, pv;
      pk[0] = Element(dk_rc(r, c) * scale);
      pk[1] = Element(dk_rc(r, c + 1) * scale);
      pv[0] = Element(dv_rc(r, c));
      pv[1] = Element(dv_rc(r, c + 1));
      *reinterpret_cast<cutlass::Array<Element, 2>*>(dk_row + col) = pk;
      *reinterpret_cast<cutlass::Array<Element, 2>*>(dv_row + col) = pv;
    }
  }
}

// Epilogue with TMA stores (kTmaStoreDkv): dK (x softmax_scale) and dV
// converted into smem stages over the Q and dO buffers (both warpgroups are
// past the column's last GEMM: the caller synced them), each warpgroup
// TMA-stores its 64 keys (rows past seqlen_k clipped by TMA).
template <typename Traits, class Mma, class Acc>
__device__ __forceinline__ void stage_and_store_dk_dv(const BwdKernelParams<Traits>& p,
                                                      typename Traits::SharedStorage& ss, Mma& mma_dkv,
                                                      Acc& tdVrdV, Acc& tdKrdK, int tidx, int b, int hk, int n) {
  using Element = typename Traits::Element;
  using HD = Int<Traits::kHeadDim>;
  using Stage = typename Traits::SmemLayoutKVStage;  // (64 keys, D, warpgroup)
  static_assert(Traits::kBlockN == 128, "two warpgroups of 64 keys");
  // the block's (128 keys, D) as a view of the two warpgroups' stages
  auto block_view = composition(Stage{}, make_layout(Shape<Shape<_64, _2>, HD>{},
                                                     Stride<Stride<_1, Int<64 * Traits::kHeadDim>>, _64>{}));
  Tensor sdK = make_tensor(make_smem_ptr(ss.smem_q.data()), block_view);
  Tensor sdV = make_tensor(make_smem_ptr(ss.smem_do.data()), block_view);
  auto thr = mma_dkv.get_thread_slice(tidx);
#pragma unroll
  for (int i = 0; i < size(tdKrdK); ++i) tdKrdK(i) *= p.softmax_scale;
  Tensor rdK = make_tensor<Element>(tdKrdK.layout());
  Tensor rdV = make_tensor<Element>(tdVrdV.layout());
  convert_into(tdKrdK, rdK);
  convert_into(tdVrdV, rdV);
  store_pairs<Element>(rdK, thr.partition_C(as_position_independent_swizzle_tensor(sdK)));
  store_pairs<Element>(rdV, thr.partition_C(as_position_independent_swizzle_tensor(sdV)));
  tma_store_fence();
  const int wg = tidx / 128;
  cutlass::arch::NamedBarrier::sync(128, Traits::kBarDkvStaged + wg);
  if (tidx % 128 == 0) {
    Tensor sK3 = make_tensor(make_smem_ptr(ss.smem_q.data()), Stage{});
    Tensor sV3 = make_tensor(make_smem_ptr(ss.smem_do.data()), Stage{});
    Tensor gdK = local_tile(p.tma_dk.get_tma_tensor(p.shape_k)(_, _, hk, b), Shape<_64, HD>{},
                            make_coord(2 * n + wg, _0{}));
    Tensor gdV = local_tile(p.tma_dv.get_tma_tensor(p.shape_k)(_, _, hk, b), Shape<_64, HD>{},
                            make_coord(2 * n + wg, _0{}));
    auto [tKg, tKs] = tma_partition(p.tma_dk, _0{}, Layout<_1>{}, group_modes<0, 2>(sK3), group_modes<0, 2>(gdK));
    auto [tVg, tVs] = tma_partition(p.tma_dv, _0{}, Layout<_1>{}, group_modes<0, 2>(sV3), group_modes<0, 2>(gdV));
    copy(p.tma_dk, tKs(_, wg), tKg);
    copy(p.tma_dv, tVs(_, wg), tVg);
    tma_store_arrive();
    tma_store_wait<0>();  // smem stays valid until read
  }
}

}  // namespace bwd
}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
