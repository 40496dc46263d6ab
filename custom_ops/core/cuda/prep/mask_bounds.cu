// The mask preprocessing every CUDA kernel reads: per kBoundsTile-key tile,
// the min and max of each decoded bound (TileBounds, core/mask_bounds.h).
#include "core/cuda/prep/mask_bounds.h"

#include "core/cuda/common/mask_device.cuh"

namespace flashmask {
namespace cuda {
namespace {

// One warp per (batch, mask head, key tile): lanes decode 2 columns each.
__global__ void mask_bounds_kernel(const FwdParams p, TileBounds* bounds, int n_tiles, int64_t total) {
  const int64_t w = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (w >= total) return;
  const int n = static_cast<int>(w % n_tiles);
  const int hm = static_cast<int>((w / n_tiles) % p.mask.heads);
  const int b = static_cast<int>(w / (static_cast<int64_t>(n_tiles) * p.mask.heads));
  const MaskCols mc = mask_cols(p, b, hm);
  TileBounds t = empty_tile_bounds();
  for (int c = lane; c < kBoundsTile; c += 32) {
    const int j = n * kBoundsTile + c;
    if (j < p.seqlen_k) extend_tile_bounds(t, mc.column(j));
  }
  int32_t* v = reinterpret_cast<int32_t*>(&t);
#pragma unroll
  for (int f = 0; f < 8; ++f) {
    int32_t x = v[f];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const int32_t y = __shfl_xor_sync(0xffffffffu, x, o);
      x = (f & 1) ? max(x, y) : min(x, y);  // fields alternate min, max
    }
    v[f] = x;
  }
  if (lane == 0) bounds[w] = t;
}

int blocks_for(int64_t threads) { return static_cast<int>((threads + 255) / 256); }

}  // namespace

void launch_mask_bounds(const FwdParams& p, TileBounds* bounds, cudaStream_t stream) {
  const int n_tiles = ceil_div(p.seqlen_k, kBoundsTile);
  const int64_t total = static_cast<int64_t>(p.batch) * p.mask.heads * n_tiles;
  if (total == 0) return;
  mask_bounds_kernel<<<blocks_for(total * 32), 256, 0, stream>>>(p, bounds, n_tiles, total);
  check_cuda(cudaGetLastError(), "mask bounds kernel");
}

}  // namespace cuda
}  // namespace flashmask
