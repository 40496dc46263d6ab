#include "core/flashmask_api.h"

#include <exception>
#include <stdexcept>
#include <string>

#include "core/cpu/flashmask_cpu.h"

#if defined(FLASHMASK_WITH_CUDA)
#include "core/cuda/dispatch/flashmask_cuda.h"
#endif

namespace {

thread_local std::string g_last_error;

const char* check_params(const flashmask::FwdParams& p) {
  if (p.batch < 0 || p.seqlen_q < 0 || p.seqlen_k < 0 || p.num_heads < 0 || p.head_dim <= 0)
    return "negative size or head_dim <= 0";
  if (p.head_dim_v < 0) return "head_dim_v must be >= 0 (0: same as head_dim)";
  if (p.seqlen_q > flashmask::kMaxSeqlen || p.seqlen_k > flashmask::kMaxSeqlen)
    return "seqlen_q and seqlen_k must be at most 2147418112 (2^31 - 2^16: int32 indices with room "
           "to round up to whole tiles)";
  if (p.batch_offset != 0) return "batch_offset is the CUDA dispatcher's; leave it 0";
  if (p.num_heads_k <= 0 || p.num_heads % p.num_heads_k != 0)
    return "num_heads must be a multiple of num_heads_k";
  const int mc = p.mask.ncols;
  if (mc != 0 && !(p.causal ? (mc == 1 || mc == 2) : (mc == 2 || mc == 4)))
    return "mask column count does not fit the causal flag";
  if (mc != 0 && p.mask.heads != 1 && p.mask.heads != p.num_heads_k && p.mask.heads != p.num_heads)
    return "mask heads must be 1, num_heads_k or num_heads";
  const int bh = p.block_mask.heads;
  if (bh != 0 && (p.block_mask.blocks == nullptr ||
                  (bh != 1 && bh != p.num_heads_k && bh != p.num_heads)))
    return "block_mask heads must be 1, num_heads_k or num_heads";
  if (p.dropout_p < 0.f || p.dropout_p >= 1.f) return "dropout must lie in [0, 1)";
  return nullptr;
}

template <typename Fn>
int guarded(const flashmask::FwdParams& p, Fn&& fn) {
  if (const char* why = check_params(p)) {
    g_last_error = why;
    return 1;
  }
  try {
    fn();
  } catch (const std::exception& e) {
    g_last_error = e.what();
    return 2;
  }
  return 0;
}

}  // namespace

extern "C" int flashmask_fwd(const flashmask::FwdParams* params, int device, void* stream) {
  (void)stream;
  return guarded(*params, [&] {
    if (device == kFlashMaskCPU) return flashmask::cpu::flashmask_fwd(*params);
#if defined(FLASHMASK_WITH_CUDA)
    return flashmask::cuda::flashmask_fwd(*params, stream);
#else
    throw std::runtime_error("this build of paddle-flashmask has no CUDA kernels");
#endif
  });
}

extern "C" int flashmask_bwd(const flashmask::BwdParams* params, int device, void* stream) {
  (void)stream;
  return guarded(*params, [&] {
    if (device == kFlashMaskCPU) return flashmask::cpu::flashmask_bwd(*params);
#if defined(FLASHMASK_WITH_CUDA)
    return flashmask::cuda::flashmask_bwd(*params, stream);
#else
    throw std::runtime_error("this build of paddle-flashmask has no CUDA kernels");
#endif
  });
}

extern "C" size_t flashmask_fwd_workspace_size(const flashmask::FwdParams* params, int device) {
#if defined(FLASHMASK_WITH_CUDA)
  if (device == kFlashMaskCUDA) return flashmask::cuda::fwd_workspace_size(*params);
#endif
  (void)params;
  (void)device;
  return 0;
}

extern "C" size_t flashmask_bwd_workspace_size(const flashmask::BwdParams* params, int device) {
#if defined(FLASHMASK_WITH_CUDA)
  if (device == kFlashMaskCUDA) return flashmask::cuda::bwd_workspace_size(*params);
#endif
  (void)params;
  (void)device;
  return 0;
}

extern "C" const char* flashmask_last_error(void) { return g_last_error.c_str(); }

extern "C" int flashmask_has_cuda(void) {
#if defined(FLASHMASK_WITH_CUDA)
  return 1;
#else
  return 0;
#endif
}
