// sm90 forward entry: support check, workspace size, (dtype, head_dim)
// dispatch to the generated instantiations. Builds without CuTe.
#include "core/cuda/sm90/fwd/entry.h"

#include <cutlass/numeric_types.h>

#include <stdexcept>

#include "core/cuda/dispatch/kernel_table.h"
#include "core/cuda/sm90/fwd/workspace.h"

namespace flashmask {
namespace cuda {
namespace sm90 {

bool can_run_fwd(const FwdParams& p, int device_cc_major) {
  if (device_cc_major != 9) return false;  // sm_90a code runs on sm_90 only
  if (p.dtype != DType::kFloat16 && p.dtype != DType::kBFloat16) return false;
  if (!sm90_fwd_has_head_dim(p.head_dim)) return false;
  if (p.dropout_p > 0.f) return false;
  if (p.seqlen_k <= 0) return false;  // TMA descriptors need non-empty extents
  if (p.num_heads_k <= 0 || p.num_heads % p.num_heads_k != 0) return false;
  // work tiles are packed in int32
  const long long tiles = static_cast<long long>(p.batch) * p.num_heads * ((p.seqlen_q + 127) / 128);
  return tiles < (1LL << 31);
}

size_t fwd_extra_workspace_bytes(const FwdParams& p) { return ExtraWorkspace::bytes(p); }

template <typename E>
static void dispatch(const FwdParams& p, const TileBounds* b, cudaStream_t s) {
  sm90_fwd_head_dim_switch(p.head_dim, [&](auto d) { run_fwd_impl<E, decltype(d)::value>(p, b, s); });
}

void run_fwd(const FwdParams& p, const TileBounds* tile_bounds, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (p.dtype == DType::kBFloat16)
    dispatch<cutlass::bfloat16_t>(p, tile_bounds, s);
  else if (p.dtype == DType::kFloat16)
    dispatch<cutlass::half_t>(p, tile_bounds, s);
  else
    throw std::runtime_error("flashmask sm90: float16 or bfloat16 only");
}

}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
