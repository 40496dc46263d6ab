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

inline int ceil_div(int a, int b) { return (a + b - 1) / b; }

}  // namespace cuda
}  // namespace flashmask
