// Online softmax over accumulator fragments (fp32), FlashAttention-2 style:
// per row the running max m (raw score units) and a per-thread partial sum l,
// rescaling the output accumulator when the max grows. Each row lives in the
// 4 lanes of a quad, so row reductions are two xor-shuffles.
#pragma once

#include <math_constants.h>

namespace flashmask {
namespace cuda {

__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// The end of one row's online softmax: from its max m (raw score units; -inf
// when no key reached it), its quad-summed l = sum exp((s - m) * scale) and
// the learnable sink's logit (natural-log units, not scaled; -inf: none),
//   lse = log(l * exp(m * scale) + exp(sink)),   O = acc * norm.
// A row no key reached (l == 0) gives O = 0 (`seen` false: the epilogue
// selects 0, so a masked-zero P times a NaN/Inf value cannot reach it) and
// lse = sink (-inf without one). A NaN l (a NaN score) gives NaN norm and
// lse: never hidden as a masked row (as the CPU kernel, fwd_cpu.cc).
struct RowNorm {
  float norm, lse;
  bool seen;
};
__device__ __forceinline__ RowNorm row_norm(float m, float l, float scale, float sink) {
  if (l == 0.f) return RowNorm{0.f, sink, false};
  const float m_nat = m * scale;
  if (sink == -CUDART_INF_F) return RowNorm{1.f / l, m_nat + logf(l), true};
  const float top = fmaxf(m_nat, sink);  // no overflow for either term
  const float e_m = expf(m_nat - top);
  const float denom = l * e_m + expf(sink - top);
  return RowNorm{e_m / denom, top + logf(denom), true};
}

// The sink logit of query head h (-inf without a sink).
__device__ __forceinline__ float sink_logit(const float* learnable_sink, int h) {
  return learnable_sink != nullptr ? learnable_sink[h] : -CUDART_INF_F;
}

template <int MT>
struct OnlineSoftmax {
  float row_max[MT][2], row_sum[MT][2];

  __device__ __forceinline__ void init() {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        row_max[mt][hr] = -CUDART_INF_F;
        row_sum[mt][hr] = 0.f;
      }
  }

  // s (raw scores, -inf where masked) -> unnormalised probabilities; acc *= alpha.
  template <int NT, int NT_O>
  __device__ __forceinline__ void update(float (&s)[MT][NT][4], float (&acc)[MT][NT_O][4],
                                         float scale_log2) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        float mx = row_max[mt][hr];
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
          mx = fmaxf(mx, fmaxf(s[mt][nt][hr * 2], s[mt][nt][hr * 2 + 1]));
        mx = quad_max(mx);
        const float m_scaled = mx == -CUDART_INF_F ? 0.f : mx * scale_log2;
        const float alpha = exp2f(row_max[mt][hr] * scale_log2 - m_scaled);
        row_max[mt][hr] = mx;
        float sum = 0.f;
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const float pe = exp2f(s[mt][nt][hr * 2 + e] * scale_log2 - m_scaled);
            s[mt][nt][hr * 2 + e] = pe;
            sum += pe;
          }
        row_sum[mt][hr] = row_sum[mt][hr] * alpha + sum;
#pragma unroll
        for (int dt = 0; dt < NT_O; ++dt) {
          acc[mt][dt][hr * 2] *= alpha;
          acc[mt][dt][hr * 2 + 1] *= alpha;
        }
      }
  }

  __device__ __forceinline__ void finalize() {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) row_sum[mt][hr] = quad_sum(row_sum[mt][hr]);
  }
};

}  // namespace cuda
}  // namespace flashmask
