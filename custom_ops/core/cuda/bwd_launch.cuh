// launch_bwd<T, D>: the column kernel (dK, dV; atomic dQ into the fp32
// workspace unless deterministic) and, when deterministic, the row kernel
// that writes dQ directly.
//
// Column kernel: v2 (bwd_dkdv2_kernel.cuh, FA2-style 2D warp tiles with P / dS
// through shared memory) wherever Dkdv2Cfg<D> is defined and its shared
// memory fits the device; v1 (bwd_dkdv_kernel.cuh) otherwise, or always with
// FLASHMASK_SM80_BWD=v1 in the environment (read at every call).
#pragma once

#include <cstdlib>
#include <cstring>

#include "bwd_dkdv2_kernel.cuh"
#include "bwd_dkdv_kernel.cuh"
#include "bwd_dq_kernel.cuh"
#include "launch.h"

namespace flashmask {
namespace cuda {

inline bool sm80_bwd_v1_forced() {
  const char* v = std::getenv("FLASHMASK_SM80_BWD");
  return v != nullptr && std::strcmp(v, "v1") == 0;
}

inline int max_smem_optin() {
  int dev = 0, bytes = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return 0;
  if (cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess) return 0;
  return bytes;
}

template <typename T, int D>
void launch_bwd(const BwdParams& p, const TileBounds* bounds, const float* delta, float* dq_accum,
                cudaStream_t stream) {
  const int n_tiles_k = ceil_div(p.seqlen_k, kBlockN);
  const int m_tiles = ceil_div(p.seqlen_q, kBlockN);
  bool done = false;
  if constexpr (Dkdv2Cfg<D>::kDefined) {
    using S2 = Dkdv2Smem<D>;
    const size_t smem = S2::bytes(ceil_div(p.seqlen_q, S2::BM));
    if (!sm80_bwd_v1_forced() && smem <= static_cast<size_t>(max_smem_optin())) {
      auto kernel = p.dropout_p > 0.f ? dkdv2_kernel<T, D, true> : dkdv2_kernel<T, D, false>;
      check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      static_cast<int>(smem)),
                 "dkdv2 smem attribute");
      const dim3 grid(ceil_div(p.seqlen_k, S2::BN), p.num_heads_k, p.batch);
      kernel<<<grid, S2::kThreads, smem, stream>>>(p, bounds, delta, dq_accum, n_tiles_k);
      check_cuda(cudaGetLastError(), "dkdv2 kernel launch");
      done = true;
    }
  }
  if (!done) {
    constexpr int BN = D <= 128 ? 128 : 64;  // keys per CTA (BN / 16 warps)
    const size_t smem = DkdvSmem<D, BN>::bytes(ceil_div(p.seqlen_q, kBlockMBwd));
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
