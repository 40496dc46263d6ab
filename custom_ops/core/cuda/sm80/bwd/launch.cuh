// launch_bwd<T, D>: the column kernel (dK, dV; atomic dQ into the fp32
// workspace unless deterministic) and, when deterministic, the row kernel
// that writes dQ directly.
//
// Column kernel: dkdv_kernel.cuh (FA2-style 2D warp tiles with P / dS through
// shared memory) wherever DkdvCfg<D> is defined and its shared memory fits
// the device; the low-shared-memory kernel (dkdv_low_smem_kernel.cuh)
// otherwise (an A100's 163 KB from d128 on), or when the door's
// KernelOptions::force_low_smem_bwd asks for it (tests). Both kernels'
// shared memory is fixed per head dim (sm80/common/smem_budget.h), so the
// choice depends on the device and head dim only, never on the lengths.
#pragma once

#include <stdexcept>
#include <string>

#include "core/cuda/sm80/bwd/dkdv_kernel.cuh"
#include "core/cuda/sm80/bwd/dkdv_low_smem_kernel.cuh"
#include "core/cuda/sm80/bwd/dq_kernel.cuh"
#include "core/cuda/sm80/launch.h"

namespace flashmask {
namespace cuda {

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
  const size_t device_smem = static_cast<size_t>(max_smem_optin());
  bool done = false;
  if constexpr (DkdvCfg<D>::kDefined) {
    using S2 = DkdvSmem<D>;
    constexpr size_t smem = S2::kBytes;
    if (!p.kernels.force_low_smem_bwd && smem <= device_smem) {
      auto kernel = p.dropout_p > 0.f ? dkdv_kernel<T, D, true> : dkdv_kernel<T, D, false>;
      check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      static_cast<int>(smem)),
                 "dkdv smem attribute");
      const dim3 grid(ceil_div(p.seqlen_k, S2::BN), p.num_heads_k, p.batch);
      kernel<<<grid, S2::kThreads, smem, stream>>>(p, bounds, delta, dq_accum, n_tiles_k);
      check_cuda(cudaGetLastError(), "dkdv kernel launch");
      done = true;
    }
  }
  if (!done) {
    constexpr int BN = sm80::low_smem_block_n(D);  // keys per CTA (BN / 16 warps)
    constexpr size_t smem = LowSmemDkdvSmem<D, BN>::kBytes;
    if (smem > device_smem)  // e.g. d256 on an A100: say so, not "invalid argument"
      throw std::runtime_error("flashmask CUDA: the sm80 backward at head_dim " + std::to_string(D) +
                               " needs " + std::to_string(smem) +
                               " bytes of shared memory per block; this GPU allows " +
                               std::to_string(device_smem));
    auto kernel = p.dropout_p > 0.f ? dkdv_low_smem_kernel<T, D, BN, true> : dkdv_low_smem_kernel<T, D, BN, false>;
    check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(smem)),
               "dkdv smem attribute");
    const dim3 grid(ceil_div(p.seqlen_k, BN), p.num_heads_k, p.batch);
    kernel<<<grid, LowSmemDkdvSmem<D, BN>::kThreads, smem, stream>>>(p, bounds, delta, dq_accum, n_tiles_k);
    check_cuda(cudaGetLastError(), "dkdv kernel launch");
  }
  if (p.deterministic) {
    constexpr size_t smem = DqSmem<D>::kBytes;
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
