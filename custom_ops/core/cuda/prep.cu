// Small O(S) kernels around the attention kernels: the mask preprocessing
// (per key tile min/max of each decoded bound), the backward's
// delta = rowsum(dO * O), and the fp32 dQ workspace -> dq conversion.
#include <algorithm>

#include "launch.h"
#include "mask_device.cuh"

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
  for (int c = lane; c < kBlockN; c += 32) {
    const int j = n * kBlockN + c;
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

// delta = rowsum(dO * O): 8 lanes per row, 16 bytes of O and of dO per lane
// and step (rows and strides are 16-byte aligned: check_supported), 4 rows
// per warp. Pure memory traffic, so every load is a full vector.
constexpr int kDeltaLanes = 8;

template <typename T>
__global__ void delta_kernel(const BwdParams p, float* delta, int64_t rows) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t r = t / kDeltaLanes;
  const int sub = static_cast<int>(t % kDeltaLanes);
  const bool valid = r < rows;  // no early exit: every lane takes part in the shuffles
  float sum = 0.f;
  if (valid) {
    const int i = static_cast<int>(r % p.seqlen_q);
    const int64_t bh = r / p.seqlen_q;
    const int h = static_cast<int>(bh % p.num_heads);
    const int64_t b = bh / p.num_heads;
    const int64_t off = b * p.o_batch_stride + int64_t(i) * p.o_row_stride + int64_t(h) * p.o_head_stride;
    const T* o = static_cast<const T*>(p.out) + off;
    const T* d = static_cast<const T*>(p.dout) + off;
    for (int c = sub * 8; c < p.head_dim; c += kDeltaLanes * 8) {
      const uint4 ov = *reinterpret_cast<const uint4*>(o + c);
      const uint4 dv = *reinterpret_cast<const uint4*>(d + c);
      const T* oe = reinterpret_cast<const T*>(&ov);
      const T* de = reinterpret_cast<const T*>(&dv);
#pragma unroll
      for (int e = 0; e < 8; ++e) sum += Mma<T>::to_float(oe[e]) * Mma<T>::to_float(de[e]);
    }
  }
#pragma unroll
  for (int s = kDeltaLanes / 2; s > 0; s >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, s);
  if (valid && sub == 0) delta[r] = sum;
}

// dq = softmax_scale * accumulator ([b][h][row][d] fp32): grid (row-quads of
// one (b, h), H, B), one float4 load and one 8-byte store of 4 elements per
// thread, 32-bit index math only.
template <typename T>
__global__ void dq_convert_kernel(const BwdParams p, const float* acc) {
  const int quads_per_row = p.head_dim / 4;
  const int q = blockIdx.x * blockDim.x + threadIdx.x;
  if (q >= int64_t(p.seqlen_q) * quads_per_row) return;
  const int h = blockIdx.y;
  const int i = q / quads_per_row, c = (q % quads_per_row) * 4;
  for (int64_t b = blockIdx.z; b < p.batch; b += gridDim.z) {
    const int64_t r = (b * p.num_heads + h) * p.seqlen_q + i;
    const float4 a = *reinterpret_cast<const float4*>(acc + r * p.head_dim + c);
    T* dq = static_cast<T*>(p.dq) + b * p.dq_batch_stride + int64_t(i) * p.dq_row_stride +
            int64_t(h) * p.dq_head_stride + c;
    uint2 packed;
    packed.x = Mma<T>::pack(a.x * p.softmax_scale, a.y * p.softmax_scale);
    packed.y = Mma<T>::pack(a.z * p.softmax_scale, a.w * p.softmax_scale);
    *reinterpret_cast<uint2*>(dq) = packed;
  }
}

int blocks_for(int64_t threads) { return static_cast<int>((threads + 255) / 256); }

}  // namespace

void launch_mask_bounds(const FwdParams& p, TileBounds* bounds, cudaStream_t stream) {
  const int n_tiles = ceil_div(p.seqlen_k, kBlockN);
  const int64_t total = static_cast<int64_t>(p.batch) * p.mask.heads * n_tiles;
  if (total == 0) return;
  mask_bounds_kernel<<<blocks_for(total * 32), 256, 0, stream>>>(p, bounds, n_tiles, total);
  check_cuda(cudaGetLastError(), "mask bounds kernel");
}

void launch_bwd_delta(const BwdParams& p, float* delta, cudaStream_t stream) {
  const int64_t rows = static_cast<int64_t>(p.batch) * p.num_heads * p.seqlen_q;
  if (p.dtype == DType::kFloat16)
    delta_kernel<__half><<<blocks_for(rows * kDeltaLanes), 256, 0, stream>>>(p, delta, rows);
  else
    delta_kernel<__nv_bfloat16><<<blocks_for(rows * kDeltaLanes), 256, 0, stream>>>(p, delta, rows);
  check_cuda(cudaGetLastError(), "delta kernel");
}

void launch_dq_convert(const BwdParams& p, const float* dq_accum, cudaStream_t stream) {
  const int64_t quads = static_cast<int64_t>(p.seqlen_q) * (p.head_dim / 4);
  const dim3 grid(static_cast<unsigned>((quads + 255) / 256), p.num_heads, std::min(p.batch, 65535));
  if (p.dtype == DType::kFloat16)
    dq_convert_kernel<__half><<<grid, 256, 0, stream>>>(p, dq_accum);
  else
    dq_convert_kernel<__nv_bfloat16><<<grid, 256, 0, stream>>>(p, dq_accum);
  check_cuda(cudaGetLastError(), "dq convert kernel");
}

}  // namespace cuda
}  // namespace flashmask
