// CUDA entry points of the core (sm80+). Plain C++: included by the C ABI
// (flashmask_api.cc), which the host compiler builds.
#pragma once

#include <cstddef>

#include "core/flashmask_params.h"

namespace flashmask {
namespace cuda {

// Bytes of device workspace a call needs (params.workspace / workspace_bytes).
size_t fwd_workspace_size(const FwdParams& p);
size_t bwd_workspace_size(const BwdParams& p);

// Enqueue on `stream` (a cudaStream_t; nullptr = legacy default stream).
// Throw std::runtime_error on bad params or a failed launch.
void flashmask_fwd(const FwdParams& p, void* stream);
void flashmask_bwd(const BwdParams& p, void* stream);

}  // namespace cuda
}  // namespace flashmask
