// The sm80 kernels' entry points, called by the dispatcher
// (dispatch/dispatch.cu); launch_fwd / launch_bwd are instantiated per
// (dtype, head_dim) in the generated units under instantiations/.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "core/cuda/common/cuda_check.h"
#include "core/flashmask_params.h"
#include "core/mask_bounds.h"

namespace flashmask {
namespace cuda {

// Forward: fwd kernel. Backward: column kernel (dK, dV, and atomic dQ unless
// deterministic), plus the row kernel for dQ when deterministic.
template <typename T, int D>
void launch_fwd(const FwdParams& p, const TileBounds* bounds, cudaStream_t stream);
template <typename T, int D>
void launch_bwd(const BwdParams& p, const TileBounds* bounds, const float* delta, float* dq_accum,
                cudaStream_t stream);

// bwd/prepost.cu: delta = rowsum(dO * O) before the column kernel, and the
// fp32 dQ accumulator -> dq after it (atomic mode).
void launch_bwd_delta(const BwdParams& p, float* delta, cudaStream_t stream);
void launch_dq_convert(const BwdParams& p, const float* dq_accum, cudaStream_t stream);

}  // namespace cuda
}  // namespace flashmask
