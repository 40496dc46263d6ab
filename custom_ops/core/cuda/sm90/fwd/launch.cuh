// Host side of one (element type, head_dim) instantiation: TMA descriptors,
// the scheduler pre-pass, the persistent launch (one CTA per SM).
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "core/cuda/sm90/fwd/kernel.cuh"
#include "core/cuda/sm90/fwd/entry.h"
#include "core/cuda/sm90/common/params_common.h"
#include "core/cuda/sm90/fwd/tile_scheduler.cuh"
#include "core/cuda/sm90/fwd/workspace.h"

namespace flashmask {
namespace cuda {
namespace sm90 {

inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("flashmask sm90: ") + what + ": " + cudaGetErrorString(e));
}

inline int device_attr(cudaDeviceAttr a) {
  int dev = 0, n = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  check(cudaDeviceGetAttribute(&n, a, dev), "device attribute");
  return n;
}

// (b, h) pairs whose K/V fit in about half the L2, in whole GQA groups.
inline int heads_per_section(const FwdParams& p) {
  const double kv_bytes = 2.0 * p.seqlen_k * p.head_dim * 2;  // K and V of one KV head
  const double budget = 0.5 * device_attr(cudaDevAttrL2CacheSize);
  const int groups = static_cast<int>(std::max(1.0, budget / kv_bytes));
  const int64_t hps = int64_t(groups) * (p.num_heads / p.num_heads_k);
  return static_cast<int>(std::min<int64_t>(hps, int64_t(p.batch) * p.num_heads));
}

template <typename Element, int D>
void run_fwd_impl(const FwdParams& p, const TileBounds* bounds, cudaStream_t stream) {
  using Traits = FwdTraits<Element, D>;
  using Params = KernelParams<Traits>;
  constexpr int BM = Traits::kBlockM, BN = Traits::kBlockN;
  static_assert(BM == ExtraWorkspace::kBlockM, "workspace layout assumes kBlockM = 128");

  Params kp{};
  const Element* q = static_cast<const Element*>(p.q);
  const Element* k = static_cast<const Element*>(p.k);
  const Element* v = static_cast<const Element*>(p.v);
  kp.shape_q = make_shape(p.seqlen_q, p.head_dim, p.num_heads, p.batch);
  kp.shape_k = make_shape(p.seqlen_k, p.head_dim, p.num_heads_k, p.batch);
  auto tq = make_tensor(make_gmem_ptr(q), kp.shape_q,
                        make_stride(p.q_row_stride, _1{}, p.q_head_stride, p.q_batch_stride));
  auto tk = make_tensor(make_gmem_ptr(k), kp.shape_k,
                        make_stride(p.k_row_stride, _1{}, p.k_head_stride, p.k_batch_stride));
  auto tv = make_tensor(make_gmem_ptr(v), kp.shape_k,
                        make_stride(p.v_row_stride, _1{}, p.v_head_stride, p.v_batch_stride));
  kp.tma_q = make_tma_copy(SM90_TMA_LOAD{}, tq, take<0, 2>(typename Traits::SmemLayoutQ{}),
                           select<0, 2>(typename Traits::TileShape{}), _1{});
  kp.tma_k = make_tma_copy(SM90_TMA_LOAD{}, tk, take<0, 2>(typename Traits::SmemLayoutK{}),
                           select<1, 2>(typename Traits::TileShape{}), _1{});
  kp.tma_v = make_tma_copy(SM90_TMA_LOAD{}, tv, take<0, 2>(typename Traits::SmemLayoutV{}),
                           select<1, 2>(typename Traits::TileShape{}), _1{});

  auto to = make_tensor(make_gmem_ptr(static_cast<Element*>(p.out)), kp.shape_q,
                        make_stride(p.o_row_stride, _1{}, p.o_head_stride, p.o_batch_stride));
  kp.tma_o = make_tma_copy(SM90_TMA_STORE{}, to, typename Traits::SmemLayoutOBox{},
                           typename Traits::OBoxShape{}, _1{});
  kp.out = p.out;
  kp.o_batch_stride = p.o_batch_stride;
  kp.o_row_stride = p.o_row_stride;
  kp.o_head_stride = p.o_head_stride;
  kp.lse = p.softmax_lse;
  kp.learnable_sink = p.learnable_sink;
  set_shared_params<kPrepTileN>(kp, p, bounds);
  const bool has_mask = p.mask.ncols > 0;
  kp.m_blocks = (p.seqlen_q + BM - 1) / BM;
  const int64_t total = int64_t(p.batch) * p.num_heads * kp.m_blocks;
  if (total >= (int64_t(1) << 31)) throw std::runtime_error("flashmask sm90: too many work tiles");
  kp.total_tiles = static_cast<int>(total);
  if (total == 0) return;
  kp.heads_per_section = heads_per_section(p);

  // scheduler workspace, from the tail of p.workspace when the door gave it
  kp.order = nullptr;
  kp.counter = nullptr;
  const size_t extra = ExtraWorkspace::bytes(p);
  if (p.workspace != nullptr && p.workspace_bytes >= extra) {
    uintptr_t base = reinterpret_cast<uintptr_t>(p.workspace) + p.workspace_bytes - extra + 256;
    base &= ~uintptr_t(255);
    int32_t* counter = reinterpret_cast<int32_t*>(base);
    int32_t* work = reinterpret_cast<int32_t*>(base + 256);
    int32_t* order = reinterpret_cast<int32_t*>(base + 256 + ExtraWorkspace::work_bytes(p));
    check(cudaMemsetAsync(counter, 0, sizeof(int32_t), stream), "scheduler counter");
    kp.counter = counter;
    if (has_mask) {
      MaskGeom g{bounds, kp.n_tiles64, p.seqlen_q, p.seqlen_k, p.seqlen_k - p.seqlen_q, p.causal};
      const int count_total = p.batch * p.mask.heads * kp.m_blocks;
      work_count_kernel<BM, BN><<<(count_total * 32 + 255) / 256, 256, 0, stream>>>(
          g, p.mask.heads, kp.m_blocks, count_total, work);
      check(cudaGetLastError(), "work count kernel");
      const int max_work = (p.seqlen_k + BN - 1) / BN;
      const int sections = (p.batch * p.num_heads + kp.heads_per_section - 1) / kp.heads_per_section;
      work_sort_kernel<kSortBins><<<sections, kSortThreads, 0, stream>>>(
          work, p.batch, p.num_heads, p.num_heads_k, p.mask.heads, kp.m_blocks, kp.heads_per_section, max_work,
          order);
      check(cudaGetLastError(), "work sort kernel");
      kp.order = order;
    }
  }

  auto kernel = fwd_kernel_sm90<Traits>;
  constexpr int smem = Traits::kSmemBytes;
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem),
        "sm90 forward smem attribute");
  const int grid = static_cast<int>(std::min<int64_t>(device_attr(cudaDevAttrMultiProcessorCount), total));
  kernel<<<grid, Traits::kNumThreads, smem, stream>>>(kp);
  check(cudaGetLastError(), "sm90 forward kernel launch");
}

#define FLASHMASK_SM90_INSTANTIATE(E, D) \
  template void run_fwd_impl<E, D>(const FwdParams&, const TileBounds*, cudaStream_t);

}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
