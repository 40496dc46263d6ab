// The sm90a FlashMask backward kernel: one CTA per (key block n, kv head,
// batch), warp-specialized, 384 threads.
//   warpgroup 0 (setmaxnreg.dec):
//     warp 0 = producer: TMA of K, V once; then for every visited (query
//              head of the group, query block m): TMA Q(m) + bulk copy of
//              its lse (Q pipeline) and TMA dO(m) + delta (dO pipeline).
//     warp 1 = dQ writer: per visited block, waits for the consumers' dQ
//              tile in smem, bulk reduce-adds it (cp.reduce.async.bulk
//              .add.f32) into the fp32 accumulator, releases the buffer;
//              deterministic mode: first waits on a per-(b, h, m) semaphore
//              for the previous visiting key block (fixed ascending order).
//     warps 2, 3 exit.
//   warpgroups 1, 2 (setmaxnreg.inc): consumers, 64 keys each (see
//     bwd_traits.h for the GEMMs). Fully masked blocks are never visited;
//     unmasked blocks run with no mask code.
// All roles walk the same (head, m) sequence (walk_blocks), so no messages
// are needed between them.
#pragma once

#include <cute/arch/copy_sm90_tma.hpp>

#include "../softmax.cuh"
#include "bwd_mask.cuh"
#include "bwd_traits.h"

namespace flashmask {
namespace cuda {
namespace sm90 {
namespace bwd {

// ---------------------------------------------------------------- helpers

// C (+)= A B on one warpgroup, asynchronously (committed as one group).
template <class TiledMma, class TA, class TB, class TC>
__device__ __forceinline__ void wg_gemm(TiledMma& mma, const TA& a, const TB& b, TC& c, bool zero_init) {
  constexpr bool kRegA = !is_base_of<GMMA::DescriptorIterator, typename TiledMma::FrgTypeA>::value;
  if constexpr (kRegA) warpgroup_fence_operand(const_cast<TA&>(a));
  warpgroup_fence_operand(c);
  warpgroup_arrive();
  mma.accumulate_ = zero_init ? GMMA::ScaleOut::Zero : GMMA::ScaleOut::One;
#pragma unroll
  for (int k = 0; k < size<2>(a); ++k) {
    cute::gemm(mma, a(_, _, k), b(_, _, k), c);
    mma.accumulate_ = GMMA::ScaleOut::One;
  }
  warpgroup_commit_batch();
  warpgroup_fence_operand(c);
  if constexpr (kRegA) warpgroup_fence_operand(const_cast<TA&>(a));
}

// (PTX of sm_90 only: the bodies are empty when this header is compiled for
// another architecture, where the kernel body is compiled out anyway.)
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define FM90_BWD_ASM 1
#endif
__device__ __forceinline__ void bulk_reduce_add_f32(float* gmem, const float* smem, int bytes) {
#ifdef FM90_BWD_ASM
  const uint32_t s = cute::cast_smem_ptr_to_uint(smem);
  asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], %2;\n" ::"l"(gmem),
               "r"(s), "r"(bytes)
               : "memory");
#endif
}
__device__ __forceinline__ void bulk_commit() {
#ifdef FM90_BWD_ASM
  asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void bulk_wait_read_all() {
#ifdef FM90_BWD_ASM
  asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void bulk_wait_all() {
#ifdef FM90_BWD_ASM
  asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void fence_proxy_async_global() {
#ifdef FM90_BWD_ASM
  asm volatile("fence.proxy.async.global;\n" ::: "memory");
#endif
}
__device__ __forceinline__ int ld_acquire_gpu(const int32_t* p) {
  int v = 0;
#ifdef FM90_BWD_ASM
  asm volatile("ld.acquire.gpu.global.b32 %0, [%1];\n" : "=r"(v) : "l"(p) : "memory");
#endif
  return v;
}
__device__ __forceinline__ void st_release_gpu(int32_t* p, int v) {
#ifdef FM90_BWD_ASM
  asm volatile("st.release.gpu.global.b32 [%0], %1;\n" ::"l"(p), "r"(v) : "memory");
#endif
}

// Every role's walk over the visited (query head, query block) pairs of key
// block n: on_head(hq, hm) once per query head of the GQA group, then
// on_block(hq, hm, m, kind) for each block that is not fully masked.
template <typename Traits, class P, class OnHead, class OnBlock>
__device__ __forceinline__ void walk_blocks(const P& p, int b, int hk, int n, OnHead&& on_head,
                                            OnBlock&& on_block) {
  constexpr int BM = Traits::kBlockM, BN = Traits::kBlockN;
  const int group = p.num_heads / p.num_heads_k;
  const int m_begin = m_block_begin<BM, BN>(n, p.seqlen_q, p.seqlen_k, p.causal);
  for (int gi = 0; gi < group; ++gi) {
    const int hq = hk * group + gi;
    const int hm = mask_head_of(hq, p.mask_heads, p.num_heads, p.num_heads_k);
    const TileBounds t = key_block_bounds<BN>(p, b, hm, n);
    on_head(hq, hm);
    for (int m = m_begin; m < p.m_blocks; ++m) {
      const int kind = block_kind_col<BM, BN>(t, m, n, p.seqlen_q, p.seqlen_k, p.causal);
      if (kind == static_cast<int>(TileKind::kFullyMasked)) continue;
      on_block(hq, hm, m, kind);
    }
  }
}

// ---------------------------------------------------------------- producer

template <typename Traits>
__device__ __forceinline__ void producer_warp(const BwdKernelParams<Traits>& p,
                                              typename Traits::SharedStorage& ss,
                                              typename Traits::PipelineQ& pipe_q,
                                              typename Traits::PipelineQ& pipe_do, int b, int hk, int n) {
  constexpr int BM = Traits::kBlockM, BN = Traits::kBlockN, D = Traits::kHeadDim;
  using HD = Int<D>;
  Tensor mQ = p.tma_q.get_tma_tensor(p.shape_q);  // (Sq, D, H, B)
  Tensor mdO = p.tma_do.get_tma_tensor(p.shape_q);
  Tensor mK = p.tma_k.get_tma_tensor(p.shape_k);  // (Sk, D, Hk, B)
  Tensor mV = p.tma_v.get_tma_tensor(p.shape_k);
  Tensor sQ = make_tensor(make_smem_ptr(ss.smem_q.data()), typename Traits::SmemLayoutQ{});
  Tensor sdO = make_tensor(make_smem_ptr(ss.smem_do.data()), typename Traits::SmemLayoutQ{});
  Tensor sK = make_tensor(make_smem_ptr(ss.smem_k.data()), typename Traits::SmemLayoutK{});
  Tensor sV = make_tensor(make_smem_ptr(ss.smem_v.data()), typename Traits::SmemLayoutK{});

  {
    auto& bar_kv = *reinterpret_cast<cutlass::arch::ClusterTransactionBarrier*>(&ss.bar_kv);
    bar_kv.arrive_and_expect_tx(Traits::kTmaBytesKV);
    Tensor gK = local_tile(mK(_, _, hk, b), Shape<Int<BN>, HD>{}, make_coord(n, _0{}));
    Tensor gV = local_tile(mV(_, _, hk, b), Shape<Int<BN>, HD>{}, make_coord(n, _0{}));
    auto [tKgK, tKsK] = tma_partition(p.tma_k, _0{}, Layout<_1>{}, group_modes<0, 2>(sK), group_modes<0, 2>(gK));
    auto [tVgV, tVsV] = tma_partition(p.tma_v, _0{}, Layout<_1>{}, group_modes<0, 2>(sV), group_modes<0, 2>(gV));
    copy(p.tma_k.with(reinterpret_cast<uint64_t&>(ss.bar_kv), 0), tKgK, tKsK);
    copy(p.tma_v.with(reinterpret_cast<uint64_t&>(ss.bar_kv), 0), tVgV, tVsV);
  }

  auto q_state = cutlass::make_producer_start_state<typename Traits::PipelineQ>();
  auto do_state = cutlass::make_producer_start_state<typename Traits::PipelineQ>();
  walk_blocks<Traits>(
      p, b, hk, n, [&](int, int) {},
      [&](int hq, int, int m, int) {
        const int64_t row0 = (static_cast<int64_t>(b) * p.num_heads + hq) * p.m_blocks * BM + int64_t(m) * BM;
        {
          Tensor gQ = local_tile(mQ(_, _, hq, b), Shape<Int<BM>, HD>{}, make_coord(_, _0{}));
          auto [tQgQ, tQsQ] =
              tma_partition(p.tma_q, _0{}, Layout<_1>{}, group_modes<0, 2>(sQ), group_modes<0, 2>(gQ));
          pipe_q.producer_acquire(q_state);
          uint64_t* bar = pipe_q.producer_get_barrier(q_state);
          copy(p.tma_q.with(*bar, 0), tQgQ(_, m), tQsQ(_, q_state.index()));
          SM90_BULK_COPY_G2S::copy(p.lse_log2 + row0, bar, ss.smem_lse.data() + q_state.index() * BM,
                                   BM * int(sizeof(float)));
          ++q_state;
        }
        {
          Tensor gdO = local_tile(mdO(_, _, hq, b), Shape<Int<BM>, HD>{}, make_coord(_, _0{}));
          auto [tdOgdO, tdOsdO] =
              tma_partition(p.tma_do, _0{}, Layout<_1>{}, group_modes<0, 2>(sdO), group_modes<0, 2>(gdO));
          pipe_do.producer_acquire(do_state);
          uint64_t* bar = pipe_do.producer_get_barrier(do_state);
          copy(p.tma_do.with(*bar, 0), tdOgdO(_, m), tdOsdO(_, do_state.index()));
          SM90_BULK_COPY_G2S::copy(p.delta + row0, bar, ss.smem_delta.data() + do_state.index() * BM,
                                   BM * int(sizeof(float)));
          ++do_state;
        }
      });
  // no TMA may still be in flight into a CTA whose consumers have left
  pipe_q.producer_tail(q_state);
  pipe_do.producer_tail(do_state);
}

// ---------------------------------------------------------------- dQ writer

template <typename Traits>
__device__ __forceinline__ void dq_writer_warp(const BwdKernelParams<Traits>& p,
                                               typename Traits::SharedStorage& ss, int b, int hk, int n) {
  constexpr int BM = Traits::kBlockM, BN = Traits::kBlockN;
  constexpr int kBarThreads = Traits::kNumMmaThreads + 32;
  const int lane = threadIdx.x % 32;
  cutlass::arch::NamedBarrier::arrive(kBarThreads, Traits::kBarDqEmpty);  // the buffer starts empty
  walk_blocks<Traits>(
      p, b, hk, n, [&](int, int) {},
      [&](int hq, int hm, int m, int) {
        int target = 0;
        if (p.deterministic) target = prev_visible_block<BM, BN>(p, b, hm, m, n) + 1;
        cutlass::arch::NamedBarrier::sync(kBarThreads, Traits::kBarDqFull);
        if (lane == 0) {
          const int64_t tile = (static_cast<int64_t>(b) * p.num_heads + hq) * p.m_blocks + m;
          float* dst = p.dq_acc + tile * Traits::kDqFloats;
          if (p.deterministic) {
            int32_t* sem = p.sem + tile;
            while (ld_acquire_gpu(sem) != target) __nanosleep(32);
            bulk_reduce_add_f32(dst, ss.smem_dq.data(), Traits::kDqFloats * int(sizeof(float)));
            bulk_commit();
            bulk_wait_all();  // the adds are done before the next key block may start its own
            fence_proxy_async_global();
            __threadfence();
            st_release_gpu(sem, n + 1);
          } else {
            bulk_reduce_add_f32(dst, ss.smem_dq.data(), Traits::kDqFloats * int(sizeof(float)));
            bulk_commit();
            bulk_wait_read_all();  // smem_dq may be overwritten
          }
        }
        __syncwarp();
        cutlass::arch::NamedBarrier::arrive(kBarThreads, Traits::kBarDqEmpty);
      });
  if (lane == 0) bulk_wait_all();
}

// ---------------------------------------------------------------- consumers

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

// ---------------------------------------------------------------- kernel

template <typename Traits>
__global__ void __launch_bounds__(Traits::kNumThreads, 1)
    bwd_kernel_sm90(const __grid_constant__ BwdKernelParams<Traits> p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using SS = typename Traits::SharedStorage;
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  SS& ss = *reinterpret_cast<SS*>(smem_raw);
  const int n = blockIdx.x, hk = blockIdx.y, b = blockIdx.z;

  const int warp_group = cutlass::canonical_warp_group_idx();
  const int warp = cutlass::canonical_warp_idx_sync();
  const int lane = threadIdx.x % 32;

  if (warp == 0 && lane == 0) {
    cute::prefetch_tma_descriptor(p.tma_q.get_tma_descriptor());
    cute::prefetch_tma_descriptor(p.tma_do.get_tma_descriptor());
    cute::prefetch_tma_descriptor(p.tma_k.get_tma_descriptor());
    cute::prefetch_tma_descriptor(p.tma_v.get_tma_descriptor());
    cutlass::arch::ClusterTransactionBarrier::init(&ss.bar_kv, 1);
  }

  typename Traits::PipelineQ::Params qp;
  qp.transaction_bytes = Traits::kTmaBytesQ;
  qp.role = warp_group == 0 ? Traits::PipelineQ::ThreadCategory::Producer
                            : Traits::PipelineQ::ThreadCategory::Consumer;
  qp.is_leader = threadIdx.x == 0;
  qp.num_consumers = Traits::kNumMmaThreads;
  typename Traits::PipelineQ pipe_q(ss.pipe_q, qp, Shape<_1, _1, _1>{});
  typename Traits::PipelineQ pipe_do(ss.pipe_do, qp, Shape<_1, _1, _1>{});

  cutlass::arch::fence_barrier_init();
  __syncthreads();

  if (warp_group == 0) {
    cutlass::arch::warpgroup_reg_dealloc<Traits::kProducerRegs>();
    if (warp == 0) {
      if (lane == 0) producer_warp<Traits>(p, ss, pipe_q, pipe_do, b, hk, n);
    } else if (warp == 1) {
      dq_writer_warp<Traits>(p, ss, b, hk, n);
    }
  } else {
    cutlass::arch::warpgroup_reg_alloc<Traits::kConsumerRegs>();
    consumer_warpgroups<Traits>(p, ss, pipe_q, pipe_do, threadIdx.x - 128, b, hk, n);
  }
#endif
}

}  // namespace bwd
}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
