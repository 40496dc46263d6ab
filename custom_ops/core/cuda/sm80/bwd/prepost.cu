// The sm80 backward's small O(S) kernels around the column kernel: delta =
// rowsum(dO * O) before it, and the fp32 dQ accumulator -> dq conversion after
// it (atomic mode; the accumulator's fragment layout is in dq_accum.cuh).
#include <algorithm>

#include "core/cuda/sm80/bwd/dq_accum.cuh"
#include "core/cuda/sm80/common/ptx.cuh"
#include "core/cuda/sm80/launch.h"

namespace flashmask {
namespace cuda {
namespace {

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

// dq = softmax_scale * accumulator (fragment order, dq_accum.cuh). A CTA
// (256 threads) converts kConvertRows rows of one (b, h) slab: coalesced
// float4 reads of whole fragments into a row-major shared tile, then 16-byte
// stores of 8 dq elements per thread (a fragment's lane holds only column
// pairs: 4-byte stores half-filled each 32-byte sector). grid (row blocks,
// H, B); 32-bit index math within a slab.
constexpr int kConvertRows = 32;

template <typename T>
__global__ void __launch_bounds__(256) dq_convert_kernel(const BwdParams p, const float* acc) {
  extern __shared__ float tile[];  // [kConvertRows][D + 4]
  const int D = p.head_dim, ld = D + 4;
  const int rows = dq_accum_rows(p.seqlen_q);
  const int row0 = blockIdx.x * kConvertRows;
  const int block_rows = min(kConvertRows, rows - row0);  // a multiple of 16
  const int h = blockIdx.y;
  for (int64_t b = blockIdx.z; b < p.batch; b += gridDim.z) {
    const float* src = acc + ((b * p.num_heads + h) * rows + row0) * D;
    for (int q = threadIdx.x; q < block_rows * D / 4; q += blockDim.x) {
      const float4 a = *reinterpret_cast<const float4*>(src + q * 4);
      const int2 rc = dq_fragment_coords(q, D);
      *reinterpret_cast<float2*>(tile + rc.x * ld + rc.y) = make_float2(a.x, a.y);
      *reinterpret_cast<float2*>(tile + (rc.x + 8) * ld + rc.y) = make_float2(a.z, a.w);
    }
    __syncthreads();
    T* dq = static_cast<T*>(p.dq) + b * p.dq_batch_stride + int64_t(h) * p.dq_head_stride;
    for (int q = threadIdx.x; q < block_rows * D / 8; q += blockDim.x) {
      const int r = q / (D / 8), c = (q % (D / 8)) * 8;
      if (row0 + r < p.seqlen_q) {
        const float* t = tile + r * ld + c;
        uint4 packed;
        packed.x = Mma<T>::pack(t[0] * p.softmax_scale, t[1] * p.softmax_scale);
        packed.y = Mma<T>::pack(t[2] * p.softmax_scale, t[3] * p.softmax_scale);
        packed.z = Mma<T>::pack(t[4] * p.softmax_scale, t[5] * p.softmax_scale);
        packed.w = Mma<T>::pack(t[6] * p.softmax_scale, t[7] * p.softmax_scale);
        *reinterpret_cast<uint4*>(dq + int64_t(row0 + r) * p.dq_row_stride + c) = packed;
      }
    }
    __syncthreads();  // the tile is rewritten for the next batch
  }
}

int blocks_for(int64_t threads) { return static_cast<int>((threads + 255) / 256); }

}  // namespace

void launch_bwd_delta(const BwdParams& p, float* delta, cudaStream_t stream) {
  const int64_t rows = static_cast<int64_t>(p.batch) * p.num_heads * p.seqlen_q;
  if (p.dtype == DType::kFloat16)
    delta_kernel<__half><<<blocks_for(rows * kDeltaLanes), 256, 0, stream>>>(p, delta, rows);
  else
    delta_kernel<__nv_bfloat16><<<blocks_for(rows * kDeltaLanes), 256, 0, stream>>>(p, delta, rows);
  check_cuda(cudaGetLastError(), "delta kernel");
}

void launch_dq_convert(const BwdParams& p, const float* dq_accum, cudaStream_t stream) {
  const dim3 grid(ceil_div(dq_accum_rows(p.seqlen_q), kConvertRows), p.num_heads,
                  std::min(p.batch, 65535));
  const size_t smem = kConvertRows * (p.head_dim + 4) * sizeof(float);  // <= 33 KB (D = 256)
  if (p.dtype == DType::kFloat16)
    dq_convert_kernel<__half><<<grid, 256, smem, stream>>>(p, dq_accum);
  else
    dq_convert_kernel<__nv_bfloat16><<<grid, 256, smem, stream>>>(p, dq_accum);
  check_cuda(cudaGetLastError(), "dq convert kernel");
}

}  // namespace cuda
}  // namespace flashmask
