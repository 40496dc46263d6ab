// Host-side helpers every CUDA launcher uses.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace flashmask {
namespace cuda {

inline void check_cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("flashmask CUDA: ") + what + ": " + cudaGetErrorString(e));
}

// a + b - 1 stays in int: lengths are at most kMaxSeqlen (flashmask_params.h),
// 2^16 below 2^31, and b is a tile size.
inline int ceil_div(int a, int b) { return (a + b - 1) / b; }

}  // namespace cuda
}  // namespace flashmask
