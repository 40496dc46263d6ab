// The learnable sink's gradient, after either family's backward.
#pragma once

#include <cuda_runtime.h>

#include "core/flashmask_params.h"

namespace flashmask {
namespace cuda {

// dsink[h] = -sum over (b, i) of exp(sink[h] - lse[b, h, i]) * delta[b, h, i]
// (lse and delta: contiguous [B, H, Sq] fp32), written, or with `accumulate`
// added to dsink (the later batch slices of one call). Deterministic: a fixed
// summation order, one CTA per head.
void launch_sink_grad(const BwdParams& p, const float* delta, bool accumulate, cudaStream_t stream);

}  // namespace cuda
}  // namespace flashmask
