// Shared memory per block that the sm80 kernels may ask for, and the bytes of
// their compacted tile list. Every kernel's shared memory is a compile-time
// constant (tile buffers + a list of sm80::kTileListCap entries), independent
// of the sequence length, batch and heads; each kernel's smem struct asserts
// that it fits the GPUs it is meant for:
//   forward, dQ kernel (deterministic), low-smem column kernel up to d192: an A100;
//   default column kernel (dkdv_kernel.cuh): an A100 up to d96, an H100 at
//   every head dim (sm80/bwd/launch.cuh falls back to the low-smem kernel
//   where a device does not fit it; nothing fits an A100's backward at d256).
#pragma once

#include <cstddef>

#include "core/cuda/common/tile_size.h"

namespace flashmask {
namespace cuda {
namespace sm80 {

// cudaDevAttrMaxSharedMemoryPerBlockOptin: A100 (sm_80) 163 KB, H100 (sm_90) 227 KB.
constexpr size_t kA100MaxSmem = 166912;
constexpr size_t kH100MaxSmem = 232448;

// The list (kTileListCap entries and the sentinel) and compact_tiles'
// scratch (one int per warp).
constexpr size_t tile_list_bytes(int threads) {
  return (kTileListCap + 1 + threads / 32) * sizeof(int);
}

}  // namespace sm80
}  // namespace cuda
}  // namespace flashmask
