// sm90 backward entry: support check, scratch size, (dtype, head_dim)
// dispatch to the instantiations in inst/. Builds without CuTe.
#include "bwd_sm90.h"

#include <cutlass/numeric_types.h>

#include <stdexcept>

#include "bwd_workspace.h"

namespace flashmask {
namespace cuda {
namespace sm90 {

bool can_run_bwd(const BwdParams& p, int device_cc_major) {
  if (device_cc_major != 9) return false;  // sm_90a code runs on sm_90 only
  if (p.dtype != DType::kFloat16 && p.dtype != DType::kBFloat16) return false;
  if (p.head_dim != 64 && p.head_dim != 128 && p.head_dim != 256) return false;
  if (p.dropout_p > 0.f) return false;  // dropout stays on the sm80 kernels
  if (p.seqlen_q <= 0 || p.seqlen_k <= 0) return false;  // TMA extents must be non-empty
  if (p.num_heads_k <= 0 || p.num_heads % p.num_heads_k != 0) return false;
  if (p.num_heads_k > 65535 || p.batch > 65535) return false;  // grid.y, grid.z
  return true;
}

size_t bwd_extra_workspace_bytes(const BwdParams& p) { return bwd::Scratch::bytes(p); }

template <typename E>
static void dispatch(const BwdParams& p, const TileBounds* b, float* delta, void* scratch, cudaStream_t s) {
  switch (p.head_dim) {
    case 64: return bwd::run_bwd_impl<E, 64>(p, b, delta, scratch, s);
    case 128: return bwd::run_bwd_impl<E, 128>(p, b, delta, scratch, s);
    case 256: return bwd::run_bwd_impl<E, 256>(p, b, delta, scratch, s);
    default: throw std::runtime_error("flashmask sm90 backward: head_dim must be 64, 128 or 256");
  }
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
