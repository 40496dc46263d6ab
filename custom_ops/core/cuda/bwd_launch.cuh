// launch_bwd<T, D>: the column kernel (dK, dV; atomic dQ into the fp32
// workspace unless deterministic) and, when deterministic, the row kernel
// that writes dQ directly.
#pragma once

#include "bwd_dkdv_kernel.cuh"
#include "bwd_dq_kernel.cuh"
#include "launch.h"

namespace flashmask {
namespace cuda {

template <typename T, int D>
void launch_bwd(const BwdParams& p, const TileBounds* bounds, const float* delta, float* dq_accum,
                cudaStream_t stream) {
  const int n_tiles_k = ceil_div(p.seqlen_k, kBlockN);
  const int m_tiles = ceil_div(p.seqlen_q, kBlockN);
  {
    constexpr int BN = D <= 128 ? 128 : 64;  // keys per CTA (BN / 16 warps)
    const size_t smem = DkdvSmem<D, BN>::bytes(m_tiles);
    auto kernel = p.dropout_p > 0.f ? dkdv_kernel<T, D, BN, true> : dkdv_kernel<T, D, BN, false>;
    check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(smem)),
               "dkdv smem attribute");
    const dim3 grid(ceil_div(p.seqlen_k, BN), p.num_heads_k, p.batch);
    kernel<<<grid, DkdvSmem<D, BN>::kThreads, smem, stream>>>(p, bounds, delta, dq_accum, n_tiles_k);
    check_cuda(cudaGetLastError(), "dkdv kernel launch");
  }
  if (p.deterministic) {
    const size_t smem = DqSmem<D>::bytes(n_tiles_k);
    auto kernel = dq_kernel<T, D>;
    check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(smem)),
               "dq smem attribute");
    const dim3 grid(m_tiles, p.num_heads, p.batch);
    kernel<<<grid, kThreads, smem, stream>>>(p, bounds, delta, n_tiles_k);
    check_cuda(cudaGetLastError(), "dq kernel launch");
  }
}

#define FLASHMASK_INSTANTIATE_BWD(T, D)                                                   \
  template void launch_bwd<T, D>(const BwdParams&, const TileBounds*, const float*, float*, \
                                 cudaStream_t);

}  // namespace cuda
}  // namespace flashmask
