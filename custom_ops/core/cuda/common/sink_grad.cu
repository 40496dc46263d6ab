// The sink's logit joins every row's softmax denominator and carries no
// value, so its probability in row i is p_i = exp(sink - lse_i) (lse includes
// the sink) and dL/dsink = sum_i p_i (0 - delta_i), delta_i = dO_i . O_i: the
// same delta the key gradients use (dP of the sink is 0). The kernels' P
// = exp(s - lse) already carries the sink's share of the denominator, so
// nothing else in the backward changes.
#include "core/cuda/common/cuda_check.h"
#include "core/cuda/common/sink_grad.h"

namespace flashmask {
namespace cuda {
namespace {

constexpr int kThreads = 512;

__global__ void __launch_bounds__(kThreads) sink_grad_kernel(const float* __restrict__ lse,
                                                             const float* __restrict__ delta,
                                                             const float* __restrict__ sink, float* dsink,
                                                             int batch, int num_heads, int seqlen_q,
                                                             bool accumulate) {
  const int h = blockIdx.x;
  const float s = sink[h];
  float acc = 0.f;
  for (int b = 0; b < batch; ++b) {
    const int64_t row0 = (static_cast<int64_t>(b) * num_heads + h) * seqlen_q;
    for (int i = threadIdx.x; i < seqlen_q; i += kThreads) acc += expf(s - lse[row0 + i]) * delta[row0 + i];
  }
  __shared__ float part[kThreads / 32];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = acc;
  __syncthreads();
  if (threadIdx.x < 32) {
    acc = threadIdx.x < kThreads / 32 ? part[threadIdx.x] : 0.f;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (threadIdx.x == 0) dsink[h] = (accumulate ? dsink[h] : 0.f) - acc;
  }
}

}  // namespace

void launch_sink_grad(const BwdParams& p, const float* delta, bool accumulate, cudaStream_t stream) {
  sink_grad_kernel<<<p.num_heads, kThreads, 0, stream>>>(p.softmax_lse, delta, p.learnable_sink, p.dsink, p.batch,
                                                         p.num_heads, p.seqlen_q, accumulate);
  check_cuda(cudaGetLastError(), "sink gradient launch");
}

}  // namespace cuda
}  // namespace flashmask
