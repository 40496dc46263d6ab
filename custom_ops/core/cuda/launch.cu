// Dispatcher: checks what the CUDA kernels support, lays out the workspace,
// runs the mask preprocessing, and picks the (dtype, head_dim) instantiation.
//
// Workspace layout (each part 256-byte aligned):
//   forward:  [tile bounds]                      (only with a mask tensor)
//   backward: [tile bounds][delta: B*H*Sq fp32][dQ accumulator: B*H*Sq16*D
//             fp32 (Sq16: Sq rounded up to 16, dq_accum.cuh), only when
//             !deterministic]
//   backward on the sm90 path: [tile bounds][delta][sm90 scratch:
//             sm90::bwd_extra_workspace_bytes(p)] (padded lse/delta, the fp32
//             dQ accumulator in both modes, deterministic-mode semaphores)
#include <cstdint>

#include "dq_accum.cuh"
#include "flashmask_cuda.h"
#include "launch.h"
#ifdef FLASHMASK_WITH_SM90
#include <cstdlib>

#include "sm90/bwd/bwd_sm90.h"
#include "sm90/fwd_sm90.h"
#endif

namespace flashmask {
namespace cuda {
namespace {

constexpr int kTile = 64;

size_t align256(size_t n) { return (n + 255) & ~static_cast<size_t>(255); }

size_t bounds_bytes(const FwdParams& p) {
  if (p.mask.ncols == 0) return 0;
  return align256(static_cast<size_t>(p.batch) * p.mask.heads * ceil_div(p.seqlen_k, kTile) *
                  sizeof(TileBounds));
}
size_t delta_bytes(const BwdParams& p) {
  return align256(static_cast<size_t>(p.batch) * p.num_heads * p.seqlen_q * sizeof(float));
}
size_t dq_accum_bytes(const BwdParams& p) {
  if (p.deterministic) return 0;
  return align256(static_cast<size_t>(p.batch) * p.num_heads * dq_accum_rows(p.seqlen_q) * p.head_dim *
                  sizeof(float));
}

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15) == 0; }

void check_supported(const FwdParams& p, size_t need) {
  if (p.dtype != DType::kFloat16 && p.dtype != DType::kBFloat16)
    throw std::runtime_error("CUDA kernels take float16 or bfloat16 (float32 is CPU only)");
  // Not in the CUDA kernels yet (the CPU kernel has them): refuse, never ignore.
  if (value_head_dim(p) != p.head_dim)
    throw std::runtime_error("CUDA kernels need the value head dim equal to the query/key one");
  if (p.learnable_sink != nullptr) throw std::runtime_error("CUDA kernels do not take learnable_sink yet");
  if (p.block_mask.heads != 0) throw std::runtime_error("CUDA kernels do not take block_mask yet");
  const int d = p.head_dim;
  if (d != 64 && d != 96 && d != 128 && d != 192 && d != 256)
    throw std::runtime_error("CUDA kernels support head_dim 64, 96, 128, 192, 256");
  const int64_t strides[] = {p.q_batch_stride, p.q_row_stride, p.q_head_stride,
                             p.k_batch_stride, p.k_row_stride, p.k_head_stride,
                             p.v_batch_stride, p.v_row_stride, p.v_head_stride,
                             p.o_batch_stride, p.o_row_stride, p.o_head_stride};
  for (int64_t s : strides)
    if (s % 8 != 0) throw std::runtime_error("CUDA kernels need strides that are multiples of 8 elements");
  if (!aligned16(p.q) || !aligned16(p.k) || !aligned16(p.v) || !aligned16(p.out))
    throw std::runtime_error("CUDA kernels need 16-byte aligned q, k, v, out");
  if (p.workspace_bytes < need || (need > 0 && p.workspace == nullptr))
    throw std::runtime_error("workspace too small: call flashmask_*_workspace_size()");
}

template <typename T>
void dispatch_fwd(const FwdParams& p, const TileBounds* bounds, cudaStream_t s) {
  switch (p.head_dim) {
    case 64: return launch_fwd<T, 64>(p, bounds, s);
    case 96: return launch_fwd<T, 96>(p, bounds, s);
    case 128: return launch_fwd<T, 128>(p, bounds, s);
    case 192: return launch_fwd<T, 192>(p, bounds, s);
    default: return launch_fwd<T, 256>(p, bounds, s);
  }
}

template <typename T>
void dispatch_bwd(const BwdParams& p, const TileBounds* bounds, const float* delta, float* dq,
                  cudaStream_t s) {
  switch (p.head_dim) {
    case 64: return launch_bwd<T, 64>(p, bounds, delta, dq, s);
    case 96: return launch_bwd<T, 96>(p, bounds, delta, dq, s);
    case 128: return launch_bwd<T, 128>(p, bounds, delta, dq, s);
    case 192: return launch_bwd<T, 192>(p, bounds, delta, dq, s);
    default: return launch_bwd<T, 256>(p, bounds, delta, dq, s);
  }
}

// The sm90a forward (sm90/) takes fp16/bf16, d 64/128/256, no dropout, on
// compute capability 9.x; FLASHMASK_DISABLE_SM90=1 forces the sm80 kernels.
bool use_sm90_fwd(const FwdParams& p) {
#ifdef FLASHMASK_WITH_SM90
  if (std::getenv("FLASHMASK_DISABLE_SM90") != nullptr) return false;
  int dev = 0, major = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return false;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) return false;
  return sm90::can_run_fwd(p, major);
#else
  (void)p;
  return false;
#endif
}

// The sm90a backward (sm90/bwd/) takes fp16/bf16, d 64/128/256, no dropout, on
// compute capability 9.x; FLASHMASK_DISABLE_SM90=1 forces the sm80 kernels.
bool use_sm90_bwd(const BwdParams& p) {
#ifdef FLASHMASK_WITH_SM90
  if (std::getenv("FLASHMASK_DISABLE_SM90") != nullptr) return false;
  int dev = 0, major = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return false;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) return false;
  return sm90::can_run_bwd(p, major);
#else
  (void)p;
  return false;
#endif
}

}  // namespace

size_t fwd_workspace_size(const FwdParams& p) {
#ifdef FLASHMASK_WITH_SM90
  // + the sm90 scheduler's scratch, which it takes from the workspace's end
  if (use_sm90_fwd(p)) return bounds_bytes(p) + sm90::fwd_extra_workspace_bytes(p);
#endif
  return bounds_bytes(p);
}

size_t bwd_workspace_size(const BwdParams& p) {
#ifdef FLASHMASK_WITH_SM90
  if (use_sm90_bwd(p)) return bounds_bytes(p) + delta_bytes(p) + sm90::bwd_extra_workspace_bytes(p);
#endif
  return bounds_bytes(p) + delta_bytes(p) + dq_accum_bytes(p);
}

void flashmask_fwd(const FwdParams& p, void* stream) {
  check_supported(p, fwd_workspace_size(p));
  if (p.batch == 0 || p.num_heads == 0 || p.seqlen_q == 0) return;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  TileBounds* bounds = static_cast<TileBounds*>(p.workspace);
  if (p.mask.ncols > 0) launch_mask_bounds(p, bounds, s);
#ifdef FLASHMASK_WITH_SM90
  if (use_sm90_fwd(p)) return sm90::run_fwd(p, bounds, s);
#endif
  if (p.dtype == DType::kFloat16)
    dispatch_fwd<__half>(p, bounds, s);
  else
    dispatch_fwd<__nv_bfloat16>(p, bounds, s);
}

void flashmask_bwd(const BwdParams& p, void* stream) {
  check_supported(p, bwd_workspace_size(p));
  if (!aligned16(p.dout) || !aligned16(p.dq) || !aligned16(p.dk) || !aligned16(p.dv))
    throw std::runtime_error("CUDA kernels need 16-byte aligned dout, dq, dk, dv");
  const int64_t grad_strides[] = {p.dq_batch_stride, p.dq_row_stride, p.dq_head_stride,
                                  p.dk_batch_stride, p.dk_row_stride, p.dk_head_stride,
                                  p.dv_batch_stride, p.dv_row_stride, p.dv_head_stride};
  for (int64_t st : grad_strides)
    if (st % 8 != 0) throw std::runtime_error("CUDA kernels need dq, dk, dv strides that are multiples of 8 elements");
  if (p.batch == 0 || p.num_heads == 0) return;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (p.seqlen_q == 0) return;
  if (p.seqlen_k == 0) {  // no keys: dq = 0
    for (int b = 0; b < p.batch; ++b)
      for (int h = 0; h < p.num_heads; ++h)
        check_cuda(cudaMemset2DAsync(static_cast<char*>(p.dq) + (b * p.dq_batch_stride + h * p.dq_head_stride) * 2,
                                     p.dq_row_stride * 2, 0, p.head_dim * 2, p.seqlen_q, s),
                   "dq memset");
    return;
  }
  char* ws = static_cast<char*>(p.workspace);
  TileBounds* bounds = reinterpret_cast<TileBounds*>(ws);
  float* delta = reinterpret_cast<float*>(ws + bounds_bytes(p));
  if (p.mask.ncols > 0) launch_mask_bounds(p, bounds, s);
#ifdef FLASHMASK_WITH_SM90
  if (use_sm90_bwd(p)) return sm90::run_bwd(p, bounds, delta, ws + bounds_bytes(p) + delta_bytes(p), s);
#endif
  float* dq_accum = p.deterministic ? nullptr : reinterpret_cast<float*>(ws + bounds_bytes(p) + delta_bytes(p));
  launch_bwd_delta(p, delta, s);
  if (dq_accum != nullptr)
    check_cuda(cudaMemsetAsync(dq_accum, 0, dq_accum_bytes(p), s), "dq accumulator memset");
  if (p.dtype == DType::kFloat16)
    dispatch_bwd<__half>(p, bounds, delta, dq_accum, s);
  else
    dispatch_bwd<__nv_bfloat16>(p, bounds, delta, dq_accum, s);
  if (dq_accum != nullptr) launch_dq_convert(p, dq_accum, s);
}

}  // namespace cuda
}  // namespace flashmask
