// launch_fwd<T, D>: tile shape by head dim (128 x 64 up to D = 128, 64 x 64
// above, as FlashAttention-2 on sm80), grid (query tiles, heads, batch).
#pragma once

#include "core/cuda/sm80/fwd/kernel.cuh"
#include "core/cuda/sm80/launch.h"

namespace flashmask {
namespace cuda {

template <typename T, int D>
void launch_fwd(const FwdParams& p, const TileBounds* bounds, cudaStream_t stream) {
  constexpr int BM = sm80::fwd_block_m(D);
  const int n_tiles_k = ceil_div(p.seqlen_k, kBlockN);
  constexpr size_t smem = FwdSmem<D, BM>::kBytes;  // any seqlen_k
  auto kernel = p.dropout_p > 0.f ? fwd_kernel<T, D, BM, true> : fwd_kernel<T, D, BM, false>;
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(smem)),
             "forward smem attribute");
  const dim3 grid(ceil_div(p.seqlen_q, BM), p.num_heads, p.batch);
  kernel<<<grid, kThreads, smem, stream>>>(p, bounds, n_tiles_k);
  check_cuda(cudaGetLastError(), "forward kernel launch");
}

#define FLASHMASK_INSTANTIATE_FWD(T, D) \
  template void launch_fwd<T, D>(const FwdParams&, const TileBounds*, cudaStream_t);

}  // namespace cuda
}  // namespace flashmask
