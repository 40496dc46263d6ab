// Host side of one (element type, head_dim) instantiation of the sm90
// backward: scratch layout, preprocess, TMA descriptors, main kernel (one CTA
// per (key block, kv head, batch)), dQ conversion.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "core/cuda/sm90/common/params_common.h"
#include "core/cuda/sm90/bwd/kernel.cuh"
#include "core/cuda/sm90/bwd/prepost.cuh"
#include "core/cuda/sm90/bwd/entry.h"
#include "core/cuda/sm90/bwd/workspace.h"

namespace flashmask {
namespace cuda {
namespace sm90 {
namespace bwd {

inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("flashmask sm90 backward: ") + what + ": " + cudaGetErrorString(e));
}

template <typename Element, int D>
void run_bwd_impl(const BwdParams& p, const TileBounds* bounds, float* delta_plain, void* scratch,
                  cudaStream_t stream) {
  using Traits = BwdTraits<Element, D>;
  using Params = BwdKernelParams<Traits>;
  constexpr int BM = Traits::kBlockM, BN = Traits::kBlockN;
  static_assert(BM == (D <= 64 ? 128 : 64), "Scratch::block_m must match the traits");
  if (p.batch == 0 || p.num_heads == 0 || p.seqlen_q == 0 || p.seqlen_k == 0) return;
  if (Scratch::block_m(p.head_dim) != BM) throw std::runtime_error("flashmask sm90 backward: block_m mismatch");

  Scratch sc(p, scratch);
  const int m_blocks = static_cast<int>(Scratch::m_blocks(p));
  const int n_blocks = (p.seqlen_k + BN - 1) / BN;

  // 1. zero the dQ tile states and semaphores (not the accumulator: see
  //    dq_zeroer_warp); delta and lse_log2 (padded)
  check(cudaMemsetAsync(sc.sem, 0, Scratch::counters_bytes(p), stream), "tile state memset");
  {
    PreArgs a{};
    a.out = p.out;
    a.dout = p.dout;
    a.lse = p.softmax_lse;
    a.o_batch_stride = p.o_batch_stride;
    a.o_row_stride = p.o_row_stride;
    a.o_head_stride = p.o_head_stride;
    a.num_heads = p.num_heads;
    a.seqlen_q = p.seqlen_q;
    a.head_dim = p.head_dim;
    a.padded_rows = m_blocks * BM;
    a.total_rows = int64_t(p.batch) * p.num_heads * a.padded_rows;
    a.lse_log2 = sc.lse_log2;
    a.delta = sc.delta;
    a.delta_plain = delta_plain;
    const int64_t threads = a.total_rows * pre_lanes<D>();
    bwd_pre_kernel<Element, D><<<static_cast<unsigned>((threads + 255) / 256), 256, 0, stream>>>(a);
    check(cudaGetLastError(), "preprocess kernel");
  }

  // 2. main kernel
  Params kp{};
  kp.shape_q = make_shape(p.seqlen_q, p.head_dim, p.num_heads, p.batch);
  kp.shape_k = make_shape(p.seqlen_k, p.head_dim, p.num_heads_k, p.batch);
  auto tq = make_tensor(make_gmem_ptr(static_cast<const Element*>(p.q)), kp.shape_q,
                        make_stride(p.q_row_stride, _1{}, p.q_head_stride, p.q_batch_stride));
  auto tdo = make_tensor(make_gmem_ptr(static_cast<const Element*>(p.dout)), kp.shape_q,
                         make_stride(p.o_row_stride, _1{}, p.o_head_stride, p.o_batch_stride));
  auto tk = make_tensor(make_gmem_ptr(static_cast<const Element*>(p.k)), kp.shape_k,
                        make_stride(p.k_row_stride, _1{}, p.k_head_stride, p.k_batch_stride));
  auto tv = make_tensor(make_gmem_ptr(static_cast<const Element*>(p.v)), kp.shape_k,
                        make_stride(p.v_row_stride, _1{}, p.v_head_stride, p.v_batch_stride));
  using BMi = Int<BM>;
  using BNi = Int<BN>;
  using HD = Int<D>;
  kp.tma_q = make_tma_copy(SM90_TMA_LOAD{}, tq, take<0, 2>(typename Traits::SmemLayoutQ{}), Shape<BMi, HD>{}, _1{});
  kp.tma_do = make_tma_copy(SM90_TMA_LOAD{}, tdo, take<0, 2>(typename Traits::SmemLayoutQ{}), Shape<BMi, HD>{}, _1{});
  kp.tma_k = make_tma_copy(SM90_TMA_LOAD{}, tk, typename Traits::SmemLayoutK{}, Shape<BNi, HD>{}, _1{});
  kp.tma_v = make_tma_copy(SM90_TMA_LOAD{}, tv, typename Traits::SmemLayoutK{}, Shape<BNi, HD>{}, _1{});
  if constexpr (Traits::kTmaStoreDkv) {
    using Stage2 = decltype(take<0, 2>(typename Traits::SmemLayoutKVStage{}));
    auto tdk = make_tensor(make_gmem_ptr(static_cast<Element*>(p.dk)), kp.shape_k,
                           make_stride(p.dk_row_stride, _1{}, p.dk_head_stride, p.dk_batch_stride));
    auto tdv = make_tensor(make_gmem_ptr(static_cast<Element*>(p.dv)), kp.shape_k,
                           make_stride(p.dv_row_stride, _1{}, p.dv_head_stride, p.dv_batch_stride));
    kp.tma_dk = make_tma_copy(SM90_TMA_STORE{}, tdk, Stage2{}, Shape<_64, HD>{}, _1{});
    kp.tma_dv = make_tma_copy(SM90_TMA_STORE{}, tdv, Stage2{}, Shape<_64, HD>{}, _1{});
  }
  kp.dk = p.dk;
  kp.dv = p.dv;
  kp.dk_batch_stride = p.dk_batch_stride;
  kp.dk_row_stride = p.dk_row_stride;
  kp.dk_head_stride = p.dk_head_stride;
  kp.dv_batch_stride = p.dv_batch_stride;
  kp.dv_row_stride = p.dv_row_stride;
  kp.dv_head_stride = p.dv_head_stride;
  kp.lse_log2 = sc.lse_log2;
  kp.delta = sc.delta;
  kp.dq_acc = sc.dq;
  kp.sem = sc.sem;
  kp.dq_state = sc.dq_state;
  set_shared_params<kPrepTileN>(kp, p, bounds);
  kp.m_blocks = m_blocks;
  kp.deterministic = p.deterministic;
  // deterministic mode with a mask: each query block's last visible key
  // block, which bounds the add order's scan (next_visible_block)
  kp.last_visible = nullptr;
  if (p.deterministic && kp.bounds != nullptr) {
    kp.last_visible = sc.last_visible;
    const int64_t threads = int64_t(p.batch) * kp.mask_heads * m_blocks * 32;
    last_visible_kernel<BM, BN><<<static_cast<unsigned>((threads + 255) / 256), 256, 0, stream>>>(kp);
    check(cudaGetLastError(), "last visible key block kernel");
  }

  // with a block_mask: its columns as bits, for the walks (walk_blocks)
  kp.block_bits = nullptr;
  kp.block_words = static_cast<int32_t>(Scratch::bit_words(p));
  if (kp.block_mask.blocks != nullptr) {
    kp.block_bits = sc.block_bits;
    const int64_t threads = int64_t(p.batch) * kp.block_mask.heads * kp.block_mask.cols * kp.block_words;
    pack_block_mask_columns<<<static_cast<unsigned>((threads + 255) / 256), 256, 0, stream>>>(kp);
    check(cudaGetLastError(), "block mask packing kernel");
  }

  auto kernel = bwd_kernel_sm90<Traits>;
  constexpr int smem = Traits::kSmemBytes;
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem), "smem attribute");
  // blockIdx.x = key block (reversed in deterministic mode, see sm90/bwd/kernel.cuh):
  // non-deterministic, the long causal columns launch first
  const dim3 grid(n_blocks, p.num_heads_k, p.batch);
  kernel<<<grid, Traits::kNumThreads, smem, stream>>>(kp);
  check(cudaGetLastError(), "main kernel launch");

  // 3. dq = scale * accumulator
  {
    PostArgs a{};
    a.dq_acc = sc.dq;
    a.dq_state = sc.dq_state;
    a.dq = p.dq;
    a.dq_batch_stride = p.dq_batch_stride;
    a.dq_row_stride = p.dq_row_stride;
    a.dq_head_stride = p.dq_head_stride;
    a.num_heads = p.num_heads;
    a.seqlen_q = p.seqlen_q;
    a.m_blocks = m_blocks;
    a.softmax_scale = p.softmax_scale;
    bwd_post_kernel<Traits><<<dim3(m_blocks, p.num_heads, p.batch), Traits::kNumMmaThreads, 0, stream>>>(a);
    check(cudaGetLastError(), "dq conversion kernel");
  }
}

#define FLASHMASK_SM90_BWD_INSTANTIATE(E, D)                                                       \
  template void run_bwd_impl<E, D>(const BwdParams&, const TileBounds*, float*, void*, cudaStream_t);

}  // namespace bwd
}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
