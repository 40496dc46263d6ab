// Layout of the sm90 forward's extra workspace (scheduler) and the
// declaration of the per-(dtype, head_dim) launchers in instantiations/. Light: no CuTe.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "core/flashmask_params.h"
#include "core/mask_bounds.h"

namespace flashmask {
namespace cuda {
namespace sm90 {

// Extra workspace (at the END of p.workspace): [counter: 256 B]
// [work: B * Hm * M int32, 256-aligned][order: B * H * M int32] (the last two
// only with a mask tensor). M = ceil(seqlen_q / 128) (kBlockM of every config).
struct ExtraWorkspace {
  static constexpr int kBlockM = 128;
  static size_t a256(size_t n) { return (n + 255) & ~size_t(255); }
  static size_t m_blocks(const FwdParams& p) { return (p.seqlen_q + kBlockM - 1) / kBlockM; }
  static size_t work_bytes(const FwdParams& p) {
    return p.mask.ncols > 0 ? a256(size_t(p.batch) * p.mask.heads * m_blocks(p) * 4) : 0;
  }
  static size_t order_bytes(const FwdParams& p) {
    return p.mask.ncols > 0 ? a256(size_t(p.batch) * p.num_heads * m_blocks(p) * 4) : 0;
  }
  // + 256 so that the region can be aligned down inside the workspace's tail
  static size_t bytes(const FwdParams& p) { return 256 + 256 + work_bytes(p) + order_bytes(p); }
};


// instantiations/fwd_sm90_{bf16,fp16}_d{64,128,192,256}.cu; Element is cutlass::bfloat16_t
// or cutlass::half_t.
template <typename Element, int D>
void run_fwd_impl(const FwdParams& p, const TileBounds* bounds, cudaStream_t stream);

}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
