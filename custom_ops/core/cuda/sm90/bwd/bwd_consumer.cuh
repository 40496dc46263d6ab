// Consumer warpgroups of the sm90a backward (64 keys each): per visited block
// S = Q K^T and dP = dO V^T, P and dS (mask only on partial blocks),
// dV += P^T dO and dK += dS^T Q in registers, dQ = dS K into the writer's
// shared-memory tile; dK, dV stored at the end.
#pragma once

#include "../softmax.cuh"
#include "../wgmma.cuh"
#include "bwd_mask.cuh"
#include "bwd_ptx.cuh"
#include "bwd_traits.h"

namespace flashmask {
namespace cuda {
namespace sm90 {
namespace bwd {

template <typename Traits>
__device__ __forceinline__ void consumer_warpgroups(const BwdKernelParams<Traits>& p,
                                                    typename Traits::SharedStorage& ss,
                                                    typename Traits::PipelineQ& pipe_q,
                                                    typename Traits::PipelineQ& pipe_do, int tidx, int b,
                                                    int hk, int n) {
  using Element = typename Traits::Element;
  constexpr int BM = Traits::kBlockM, BN = Traits::kBlockN, D = Traits::kHeadDim;
  constexpr int kBarThreads = Traits::kNumMmaThreads + 32;
  constexpr int kPartial = static_cast<int>(TileKind::kPartial);

  Tensor sQ = make_tensor(make_smem_ptr(ss.smem_q.data()), typename Traits::SmemLayoutQ{});
  Tensor sdO = make_tensor(make_smem_ptr(ss.smem_do.data()), typename Traits::SmemLayoutQ{});
  Tensor sQt = make_tensor(make_smem_ptr(ss.smem_q.data()), typename Traits::SmemLayoutQt{});
  Tensor sdOt = make_tensor(make_smem_ptr(ss.smem_do.data()), typename Traits::SmemLayoutQt{});
  Tensor sK = make_tensor(make_smem_ptr(ss.smem_k.data()), typename Traits::SmemLayoutK{});
  Tensor sV = make_tensor(make_smem_ptr(ss.smem_v.data()), typename Traits::SmemLayoutK{});
  Tensor sKt = make_tensor(make_smem_ptr(ss.smem_k.data()), typename Traits::SmemLayoutKt{});
  Tensor sdS = make_tensor(make_smem_ptr(ss.smem_ds.data()), typename Traits::SmemLayoutdS{});
  Tensor sdSt = make_tensor(make_smem_ptr(ss.smem_ds.data()), typename Traits::SmemLayoutdSt{});

  typename Traits::TiledMmaSdP mma_sdp;
  typename Traits::TiledMmadKV mma_dkv;
  typename Traits::TiledMmadQ mma_dq;
  // smem operand descriptors are per warpgroup: slice at the warpgroup's first thread
  const int wg_first = (tidx / 128) * 128;
  auto wg_sdp = mma_sdp.get_thread_slice(wg_first);
  auto wg_dkv = mma_dkv.get_thread_slice(wg_first);
  auto wg_dq = mma_dq.get_thread_slice(wg_first);
  Tensor tSrK = wg_sdp.partition_fragment_A(sK);     // (MMA, MMA_M, MMA_K)
  Tensor tSrV = wg_sdp.partition_fragment_A(sV);
  Tensor tSrQ = wg_sdp.partition_fragment_B(sQ);     // (MMA, MMA_N, MMA_K, stages)
  Tensor tSrdO = wg_sdp.partition_fragment_B(sdO);
  Tensor tdVrdO = wg_dkv.partition_fragment_B(sdOt);  // (MMA, MMA_N, MMA_K, stages)
  Tensor tdKrQ = wg_dkv.partition_fragment_B(sQt);
  Tensor tdQrdS = wg_dq.partition_fragment_A(sdS);    // (MMA, MMA_M, MMA_K, 2)
  Tensor tdQrK = wg_dq.partition_fragment_B(sKt);     // (MMA, MMA_N, MMA_K)

  auto thr_sdp = mma_sdp.get_thread_slice(tidx);
  Tensor tSrS = partition_fragment_C(mma_sdp, Shape<Int<BN>, Int<BM>>{});
  Tensor tSrdP = partition_fragment_C(mma_sdp, Shape<Int<BN>, Int<BM>>{});
  Tensor tdVrdV = partition_fragment_C(mma_dkv, Shape<Int<BN>, Int<D>>{});
  Tensor tdKrdK = partition_fragment_C(mma_dkv, Shape<Int<BN>, Int<D>>{});
  Tensor tdQrdQ = partition_fragment_C(mma_dq, Shape<Int<BM>, Int<D>>{});
  static_assert(decltype(size(tdQrdQ))::value * Traits::kNumMmaThreads == Traits::kDqFloats, "dQ tile");

  Tensor tScS = thr_sdp.partition_C(make_identity_tensor(Shape<Int<BN>, Int<BM>>{}));
  Tensor s_rc = make_tensor(tSrS.data(), rowcol_layout(tSrS.layout()));
  Tensor dp_rc = make_tensor(tSrdP.data(), rowcol_layout(tSrdP.layout()));
  Tensor cs_rc = make_tensor(tScS.data(), rowcol_layout(tScS.layout()));
  constexpr int kRows = decltype(size<0>(s_rc))::value;  // keys of this thread (2)
  constexpr int kCols = decltype(size<1>(s_rc))::value;  // queries of this thread

  // P^T and dS^T in the element type, as A operands of dV / dK
  Tensor rP = make_tensor<Element>(tSrS.layout());
  Tensor rdS = make_tensor<Element>(tSrdP.layout());
  Tensor tdVrP = make_tensor(rP.data(), acc_as_a_layout(tSrS.layout()));
  Tensor tdKrdS = make_tensor(rdS.data(), acc_as_a_layout(tSrdP.layout()));
  Tensor tdSsdS = thr_sdp.partition_C(sdSt);  // (MMA, MMA_M, MMA_N, 2), same order as rdS

  const int c0 = n * BN;
  MaskGeom g{p.bounds, p.n_tiles64, p.seqlen_q, p.seqlen_k, p.seqlen_k - p.seqlen_q, p.causal};
  int4* smem_iv = ss.smem_iv.data();  // masked query rows per key (kept out of registers)

  clear(tdVrdV);
  clear(tdKrdK);
  reinterpret_cast<cutlass::arch::ClusterTransactionBarrier*>(&ss.bar_kv)->wait(0);

  typename Traits::PipelineQ::PipelineState q_read, do_read;
  int ds_buf = 0;
  const float scale_log2 = p.scale_log2;

  walk_blocks<Traits>(
      p, b, hk, n,
      [&](int, int hm) {
        __syncwarp();  // the quad's other lanes are done reading the previous head's keys
        const int32_t* col0 = p.startend != nullptr
                                  ? p.startend + b * p.mask_batch_stride + hm * p.mask_head_stride
                                  : nullptr;
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          const int j = c0 + get<0>(cs_rc(r, 0));
          int32_t raw[4];
          load_column(col0, p.ncols, j, g, raw);
          smem_iv[get<0>(cs_rc(r, 0))] = encode_column(raw, col0 != nullptr, p.ncols, j, g);
        }
      },
      [&](int, int, int m, int kind) {
        // S^T = K Q^T, dP^T = V dO^T
        pipe_q.consumer_wait(q_read);
        wg_gemm(mma_sdp, tSrK, tSrQ(_, _, _, q_read.index()), tSrS, true);
        pipe_do.consumer_wait(do_read);
        wg_gemm(mma_sdp, tSrV, tSrdO(_, _, _, do_read.index()), tSrdP, true);
        warpgroup_wait<1>();
        warpgroup_fence_operand(tSrS);

        // P^T = exp2(S^T * scale_log2 - lse_log2), 0 where masked
        const float* lse = ss.smem_lse.data() + q_read.index() * BM;
        const int row0 = m * BM;
        if (kind == kPartial) {
          int4 iv[kRows];
#pragma unroll
          for (int r = 0; r < kRows; ++r) iv[r] = smem_iv[get<0>(cs_rc(r, 0))];
#pragma unroll
          for (int c = 0; c < kCols; ++c) {
            const int qc = get<1>(cs_rc(0, c));
            const float l = lse[qc];
            const int i = row0 + qc;
#pragma unroll
            for (int r = 0; r < kRows; ++r) {
              const bool masked = (i >= iv[r].x && i < iv[r].y) || (i >= iv[r].z && i < iv[r].w);
              const float e = exp2f(s_rc(r, c) * scale_log2 - l);
              s_rc(r, c) = masked ? 0.f : e;
            }
          }
        } else {
#pragma unroll
          for (int c = 0; c < kCols; ++c) {
            const float l = lse[get<1>(cs_rc(0, c))];
#pragma unroll
            for (int r = 0; r < kRows; ++r) s_rc(r, c) = exp2f(s_rc(r, c) * scale_log2 - l);
          }
        }
        warpgroup_wait<0>();
        warpgroup_fence_operand(tSrdP);
        // dS^T = P^T * (dP^T - delta)
        const float* dl = ss.smem_delta.data() + do_read.index() * BM;
#pragma unroll
        for (int c = 0; c < kCols; ++c) {
          const float d = dl[get<1>(cs_rc(0, c))];
#pragma unroll
          for (int r = 0; r < kRows; ++r) dp_rc(r, c) = s_rc(r, c) * (dp_rc(r, c) - d);
        }
        convert_into(tSrS, rP);
        convert_into(tSrdP, rdS);

        // dV += P^T dO (registers x smem)
        wg_gemm(mma_dkv, tdVrP, tdVrdO(_, _, _, do_read.index()), tdVrdV, false);
        // dS to smem for dQ (both warpgroups' halves), pairs of adjacent queries
        {
          Tensor dst = tdSsdS(_, _, _, ds_buf);
#pragma unroll
          for (int i = 0; i < size(rdS); i += 2) {
            cutlass::Array<Element, 2> pr;
            pr[0] = rdS(i);
            pr[1] = rdS(i + 1);
            *reinterpret_cast<cutlass::Array<Element, 2>*>(&dst(i)) = pr;
          }
        }
        // d128: dQ = dS K, then dK += dS^T Q (groups complete in order: dV,
        // dQ, dK), so the dQ smem write overlaps dK. d64 (BM = 128, bf16 dS^T
        // is 32 registers) issues dK first and waits for all: no spills.
        constexpr bool kDqFirst = !Traits::kDqSplitM;
        if constexpr (!kDqFirst) wg_gemm(mma_dkv, tdKrdS, tdKrQ(_, _, _, q_read.index()), tdKrdK, false);
        cutlass::arch::fence_view_async_shared();
        cutlass::arch::NamedBarrier::sync(Traits::kNumMmaThreads, Traits::kBarDs);
        wg_gemm(mma_dq, tdQrdS(_, _, _, ds_buf), tdQrK, tdQrdQ, true);
        if constexpr (kDqFirst) {
          wg_gemm(mma_dkv, tdKrdS, tdKrQ(_, _, _, q_read.index()), tdKrdK, false);
          warpgroup_wait<1>();  // dV and dQ done; dK may still run
        } else {
          warpgroup_wait<0>();
        }
        warpgroup_fence_operand(tdVrdV);
        warpgroup_fence_operand(tdQrdQ);
        pipe_do.consumer_release(do_read);  // dO: read by dP and dV only
        ++do_read;

        // dQ tile -> smem (float4 per thread, conflict-free) -> dQ writer warp
        cutlass::arch::NamedBarrier::sync(kBarThreads, Traits::kBarDqEmpty);
        float4* sdq = reinterpret_cast<float4*>(ss.smem_dq.data());
#pragma unroll
        for (int k = 0; k < size(tdQrdQ) / 4; ++k)
          sdq[k * Traits::kNumMmaThreads + tidx] =
              make_float4(tdQrdQ(4 * k), tdQrdQ(4 * k + 1), tdQrdQ(4 * k + 2), tdQrdQ(4 * k + 3));
        cutlass::arch::fence_view_async_shared();
        cutlass::arch::NamedBarrier::arrive(kBarThreads, Traits::kBarDqFull);

        warpgroup_wait<0>();  // dK done: Q and this dS buffer are free
        warpgroup_fence_operand(tdKrdK);
        pipe_q.consumer_release(q_read);
        ++q_read;
        ds_buf ^= 1;
      });
  // the writer arrives once more than there were blocks (its initial arrive)
  cutlass::arch::NamedBarrier::sync(kBarThreads, Traits::kBarDqEmpty);

  // epilogue: dK (x softmax_scale) and dV straight from registers, keys < seqlen_k
  auto thr_dkv = mma_dkv.get_thread_slice(tidx);
  Tensor cKV = thr_dkv.partition_C(make_identity_tensor(Shape<Int<BN>, Int<D>>{}));
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

}  // namespace bwd
}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
