// sm90 backward entry: support check, scratch size, (dtype, head_dim)
// dispatch to the generated instantiations. Builds without CuTe.
#include "core/cuda/sm90/bwd/entry.h"

#include <cutlass/numeric_types.h>

#include <stdexcept>

#include "core/cuda/dispatch/kernel_table.h"
#include "core/cuda/sm90/bwd/workspace.h"

namespace flashmask {
namespace cuda {
namespace sm90 {

bool can_run_bwd(const BwdParams& p, int device_cc_major) {
  if (device_cc_major != 9) return false;  // sm_90a code runs on sm_90 only
  if (p.dtype != DType::kFloat16 && p.dtype != DType::kBFloat16) return false;
  if (!sm90_bwd_has_head_dim(p.head_dim)) return false;
  if (p.dropout_p > 0.f) return false;  // dropout stays on the sm80 kernels
  if (p.seqlen_q <= 0 || p.seqlen_k <= 0) return false;  // TMA extents must be non-empty
  if (p.num_heads_k <= 0 || p.num_heads % p.num_heads_k != 0) return false;
  // grid.y; batches over 65535 come in slices (dispatch/batch_chunks.h)
  if (p.num_heads_k > 65535) return false;
  return true;
}

size_t bwd_extra_workspace_bytes(const BwdParams& p) { return bwd::Scratch::bytes(p); }

template <typename E>
static void dispatch(const BwdParams& p, const TileBounds* b, float* delta, void* scratch, cudaStream_t s) {
  sm90_bwd_head_dim_switch(p.head_dim,
                           [&](auto d) { bwd::run_bwd_impl<E, decltype(d)::value>(p, b, delta, scratch, s); });
}

void run_bwd(const BwdParams& p, const TileBounds* tile_bounds, float* delta, void* scratch, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (scratch == nullptr) throw std::runtime_error("flashmask sm90 backward: no scratch");
  if (p.dtype == DType::kBFloat16)
    dispatch<cutlass::bfloat16_t>(p, tile_bounds, delta, scratch, s);
  else if (p.dtype == DType::kFloat16)
    dispatch<cutlass::half_t>(p, tile_bounds, delta, scratch, s);
  else
    throw std::runtime_error("flashmask sm90 backward: float16 or bfloat16 only");
}

}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
