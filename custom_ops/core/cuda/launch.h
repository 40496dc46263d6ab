// Internal launch interface between the dispatcher (launch.cu) and the
// per-(dtype, head_dim) instantiation units under inst/.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "../flashmask_params.h"
#include "../mask_bounds.h"

namespace flashmask {
namespace cuda {

inline void check_cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("flashmask CUDA: ") + what + ": " + cudaGetErrorString(e));
}

inline int ceil_div(int a, int b) { return (a + b - 1) / b; }

// Forward: fwd kernel. Backward: column kernel (dK, dV, and atomic dQ unless
// deterministic), plus the row kernel for dQ when deterministic.
template <typename T, int D>
void launch_fwd(const FwdParams& p, const TileBounds* bounds, cudaStream_t stream);
template <typename T, int D>
void launch_bwd(const BwdParams& p, const TileBounds* bounds, const float* delta, float* dq_accum,
                cudaStream_t stream);

// prep.cu
void launch_mask_bounds(const FwdParams& p, TileBounds* bounds, cudaStream_t stream);
void launch_bwd_delta(const BwdParams& p, float* delta, cudaStream_t stream);
void launch_dq_convert(const BwdParams& p, const float* dq_accum, cudaStream_t stream);

}  // namespace cuda
}  // namespace flashmask
