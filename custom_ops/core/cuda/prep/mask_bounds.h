// The mask preprocessing (mask_bounds.cu), run by the dispatcher before any
// kernel that reads a column mask.
#pragma once

#include <cuda_runtime.h>

#include "core/flashmask_params.h"
#include "core/mask_bounds.h"

namespace flashmask {
namespace cuda {

// bounds[b][mask head][key tile]: TileBounds of each kBoundsTile-key tile.
void launch_mask_bounds(const FwdParams& p, TileBounds* bounds, cudaStream_t stream);

}  // namespace cuda
}  // namespace flashmask
