// Small O(S) kernels around the attention kernels: the mask preprocessing
// (per key tile min/max of each decoded bound), the backward's
// delta = rowsum(dO * O), and the fp32 dQ workspace -> dq conversion.
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

template <typename T>
__global__ void delta_kernel(const BwdParams p, float* delta, int64_t rows) {
  const int64_t r = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (r >= rows) return;
  const int i = static_cast<int>(r % p.seqlen_q);
  const int h = static_cast<int>((r / p.seqlen_q) % p.num_heads);
  const int b = static_cast<int>(r / (static_cast<int64_t>(p.seqlen_q) * p.num_heads));
  const int64_t off = b * p.o_batch_stride + i * p.o_row_stride + h * p.o_head_stride;
  const T* o = static_cast<const T*>(p.out) + off;
  const T* d = static_cast<const T*>(p.dout) + off;
  float sum = 0.f;
  for (int c = lane * 2; c < p.head_dim; c += 64)
    sum += Mma<T>::to_float(o[c]) * Mma<T>::to_float(d[c]) +
           Mma<T>::to_float(o[c + 1]) * Mma<T>::to_float(d[c + 1]);
#pragma unroll
  for (int s = 16; s > 0; s >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, s);
  if (lane == 0) delta[r] = sum;
}

template <typename T>
__global__ void dq_convert_kernel(const BwdParams p, const float* acc, int64_t pairs) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= pairs) return;
  const int half_d = p.head_dim / 2;
  const int c = static_cast<int>(idx % half_d) * 2;
  const int64_t r = idx / half_d;
  const int i = static_cast<int>(r % p.seqlen_q);
  const int h = static_cast<int>((r / p.seqlen_q) % p.num_heads);
  const int b = static_cast<int>(r / (static_cast<int64_t>(p.seqlen_q) * p.num_heads));
  const float2 a = *reinterpret_cast<const float2*>(acc + r * p.head_dim + c);
  T* dq = static_cast<T*>(p.dq) + b * p.dq_batch_stride + i * p.dq_row_stride + h * p.dq_head_stride + c;
  *reinterpret_cast<uint32_t*>(dq) = Mma<T>::pack(a.x * p.softmax_scale, a.y * p.softmax_scale);
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
    delta_kernel<__half><<<blocks_for(rows * 32), 256, 0, stream>>>(p, delta, rows);
  else
    delta_kernel<__nv_bfloat16><<<blocks_for(rows * 32), 256, 0, stream>>>(p, delta, rows);
  check_cuda(cudaGetLastError(), "delta kernel");
}

void launch_dq_convert(const BwdParams& p, const float* dq_accum, cudaStream_t stream) {
  const int64_t pairs = static_cast<int64_t>(p.batch) * p.num_heads * p.seqlen_q * (p.head_dim / 2);
  if (p.dtype == DType::kFloat16)
    dq_convert_kernel<__half><<<blocks_for(pairs), 256, 0, stream>>>(p, dq_accum, pairs);
  else
    dq_convert_kernel<__nv_bfloat16><<<blocks_for(pairs), 256, 0, stream>>>(p, dq_accum, pairs);
  check_cuda(cudaGetLastError(), "dq convert kernel");
}

}  // namespace cuda
}  // namespace flashmask
