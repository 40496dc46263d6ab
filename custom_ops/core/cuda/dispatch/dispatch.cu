// The CUDA entry points: plan the call (plan.h), check what the kernels
// support, and per batch slice (batch_chunks.h: grids hold 65535 batches) run
// the mask preprocessing and hand the slice to the planned kernel family,
// which picks its (dtype, head_dim) instantiation.
#include <cstdint>

#include "core/cuda/common/cuda_check.h"
#include "core/cuda/common/sink_grad.h"
#include "core/cuda/common/tile_size.h"
#include "core/cuda/dispatch/batch_chunks.h"
#include "core/cuda/dispatch/flashmask_cuda.h"
#include "core/cuda/dispatch/kernel_table.h"
#include "core/cuda/dispatch/plan.h"
#include "core/cuda/prep/mask_bounds.h"
#include "core/cuda/sm80/bwd/dq_accum.cuh"
#include "core/cuda/sm80/launch.h"
#ifdef FLASHMASK_WITH_SM90
#include "core/cuda/sm90/bwd/entry.h"
#include "core/cuda/sm90/fwd/entry.h"
#endif

namespace flashmask {
namespace cuda {
namespace {

size_t align256(size_t n) { return (n + 255) & ~static_cast<size_t>(255); }

size_t bounds_bytes(const FwdParams& p) {
  if (p.mask.ncols == 0) return 0;
  return align256(static_cast<size_t>(p.batch) * p.mask.heads * ceil_div(p.seqlen_k, kBoundsTile) *
                  sizeof(TileBounds));
}
size_t delta_bytes(const BwdParams& p) {
  return align256(static_cast<size_t>(p.batch) * p.num_heads * p.seqlen_q * sizeof(float));
}
size_t sm80_dq_accum_bytes(const BwdParams& p) {
  if (p.deterministic) return 0;
  return align256(static_cast<size_t>(p.batch) * p.num_heads * dq_accum_rows(p.seqlen_q) * p.head_dim *
                  sizeof(float));
}

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15) == 0; }

// Compute capability major of the current device; 0 if it cannot be read.
int device_cc_major() {
  int dev = 0, major = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) return 0;
  return major;
}

void check_supported(const FwdParams& p, size_t need) {
  if (p.dtype != DType::kFloat16 && p.dtype != DType::kBFloat16)
    throw std::runtime_error("CUDA kernels take float16 or bfloat16 (float32 is CPU only)");
  // Not in the CUDA kernels yet (the CPU kernel has them): refuse, never ignore.
  if (value_head_dim(p) != p.head_dim)
    throw std::runtime_error("CUDA kernels need the value head dim equal to the query/key one");
  // Grid dim y; batches over 65535 run in slices (batch_chunks.h), heads do not.
  if (p.num_heads > kMaxGridYZ)
    throw std::runtime_error("CUDA kernels take num_heads up to 65535 (a grid dimension)");
  if (!sm80_fwd_has_head_dim(p.head_dim) || !sm80_bwd_has_head_dim(p.head_dim))
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
void run_sm80_fwd(const FwdParams& p, const TileBounds* bounds, cudaStream_t s) {
  sm80_fwd_head_dim_switch(p.head_dim, [&](auto d) { launch_fwd<T, decltype(d)::value>(p, bounds, s); });
}

template <typename T>
void run_sm80_bwd(const BwdParams& p, const TileBounds* bounds, const float* delta, float* dq,
                  cudaStream_t s) {
  sm80_bwd_head_dim_switch(p.head_dim,
                           [&](auto d) { launch_bwd<T, decltype(d)::value>(p, bounds, delta, dq, s); });
}

// The sm90a kernels take fp16/bf16, head_dim 64/128/192/256, no dropout, on
// compute capability 9.x, unless the door's options turn them off; every
// other call runs on the sm80 kernels (a call may run its forward and its
// backward on different families, they share lse). Decided
// once per call: every batch slice runs on the family the call's workspace
// was sized for.
KernelFamily fwd_family(const FwdParams& p) {
#ifdef FLASHMASK_WITH_SM90
  if (p.kernels.allow_sm90 && sm90::can_run_fwd(p, device_cc_major())) return KernelFamily::kSm90;
#endif
  (void)p;
  return KernelFamily::kSm80;
}

KernelFamily bwd_family(const BwdParams& p) {
#ifdef FLASHMASK_WITH_SM90
  if (p.kernels.allow_sm90 && sm90::can_run_bwd(p, device_cc_major())) return KernelFamily::kSm90;
#endif
  (void)p;
  return KernelFamily::kSm80;
}

FwdPlan fwd_layout(const FwdParams& p, KernelFamily family) {
  FwdPlan plan;
  plan.family = family;
  plan.bounds_bytes = bounds_bytes(p);
#ifdef FLASHMASK_WITH_SM90
  // the sm90 scheduler takes its scratch from the workspace's end
  if (family == KernelFamily::kSm90) plan.sm90_bytes = sm90::fwd_extra_workspace_bytes(p);
#endif
  return plan;
}

BwdPlan bwd_layout(const BwdParams& p, KernelFamily family) {
  BwdPlan plan;
  plan.family = family;
  plan.bounds_bytes = bounds_bytes(p);
  plan.delta_bytes = delta_bytes(p);
  plan.scratch_bytes = sm80_dq_accum_bytes(p);
#ifdef FLASHMASK_WITH_SM90
  if (family == KernelFamily::kSm90) plan.scratch_bytes = sm90::bwd_extra_workspace_bytes(p);
#endif
  return plan;
}

void run_fwd_slice(const FwdParams& p, KernelFamily family, cudaStream_t s) {
  TileBounds* bounds = static_cast<TileBounds*>(p.workspace);
  if (p.mask.ncols > 0) launch_mask_bounds(p, bounds, s);
#ifdef FLASHMASK_WITH_SM90
  if (family == KernelFamily::kSm90) return sm90::run_fwd(p, bounds, s);
#endif
  (void)family;
  if (p.dtype == DType::kFloat16)
    run_sm80_fwd<__half>(p, bounds, s);
  else
    run_sm80_fwd<__nv_bfloat16>(p, bounds, s);
}

void run_bwd_slice(const BwdParams& p, KernelFamily family, cudaStream_t s) {
  const BwdPlan plan = bwd_layout(p, family);  // this slice's offsets in the call's workspace
  char* ws = static_cast<char*>(p.workspace);
  TileBounds* bounds = reinterpret_cast<TileBounds*>(ws);
  float* delta = reinterpret_cast<float*>(ws + plan.delta_offset());
  void* scratch = ws + plan.scratch_offset();
  if (p.mask.ncols > 0) launch_mask_bounds(p, bounds, s);
  if (family == KernelFamily::kSm90) {
#ifdef FLASHMASK_WITH_SM90
    sm90::run_bwd(p, bounds, delta, scratch, s);  // writes delta too
#endif
  } else {
    float* dq_accum = p.deterministic ? nullptr : static_cast<float*>(scratch);
    launch_bwd_delta(p, delta, s);
    if (dq_accum != nullptr) check_cuda(cudaMemsetAsync(dq_accum, 0, plan.scratch_bytes, s), "dq accumulator memset");
    if (p.dtype == DType::kFloat16)
      run_sm80_bwd<__half>(p, bounds, delta, dq_accum, s);
    else
      run_sm80_bwd<__nv_bfloat16>(p, bounds, delta, dq_accum, s);
    if (dq_accum != nullptr) launch_dq_convert(p, dq_accum, s);
  }
  // the first slice writes dsink, later ones add theirs (in order, on one stream)
  if (p.learnable_sink != nullptr && p.dsink != nullptr) launch_sink_grad(p, delta, p.batch_offset > 0, s);
}

}  // namespace

FwdPlan plan_fwd(const FwdParams& p) { return fwd_layout(p, fwd_family(p)); }
BwdPlan plan_bwd(const BwdParams& p) { return bwd_layout(p, bwd_family(p)); }

size_t fwd_workspace_size(const FwdParams& p) { return plan_fwd(p).total(); }
size_t bwd_workspace_size(const BwdParams& p) { return plan_bwd(p).total(); }

void flashmask_fwd(const FwdParams& p, void* stream) {
  const FwdPlan plan = plan_fwd(p);
  check_supported(p, plan.total());
  if (p.batch == 0 || p.num_heads == 0 || p.seqlen_q == 0) return;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  for_each_batch_slice(p, [&](const FwdParams& slice) { run_fwd_slice(slice, plan.family, s); });
}

void flashmask_bwd(const BwdParams& p, void* stream) {
  const BwdPlan plan = plan_bwd(p);
  check_supported(p, plan.total());
  if (!aligned16(p.dout) || !aligned16(p.dq) || !aligned16(p.dk) || !aligned16(p.dv))
    throw std::runtime_error("CUDA kernels need 16-byte aligned dout, dq, dk, dv");
  const int64_t grad_strides[] = {p.dq_batch_stride, p.dq_row_stride, p.dq_head_stride,
                                  p.dk_batch_stride, p.dk_row_stride, p.dk_head_stride,
                                  p.dv_batch_stride, p.dv_row_stride, p.dv_head_stride};
  for (int64_t st : grad_strides)
    if (st % 8 != 0) throw std::runtime_error("CUDA kernels need dq, dk, dv strides that are multiples of 8 elements");
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const bool sink_grad = p.learnable_sink != nullptr && p.dsink != nullptr;
  // no batch, no rows, or O = 0 and delta = 0 everywhere: dsink is 0
  if (sink_grad && (p.batch == 0 || p.seqlen_q == 0 || p.seqlen_k == 0))
    check_cuda(cudaMemsetAsync(p.dsink, 0, p.num_heads * sizeof(float), s), "dsink memset");
  if (p.batch == 0 || p.num_heads == 0 || p.seqlen_q == 0) return;
  if (p.seqlen_k == 0) {  // no keys: dq = 0
    for (int64_t b = 0; b < p.batch; ++b)
      for (int64_t h = 0; h < p.num_heads; ++h)
        check_cuda(cudaMemset2DAsync(static_cast<char*>(p.dq) + (b * p.dq_batch_stride + h * p.dq_head_stride) * 2,
                                     p.dq_row_stride * 2, 0, p.head_dim * 2, p.seqlen_q, s),
                   "dq memset");
    return;
  }
  for_each_batch_slice(p, [&](const BwdParams& slice) { run_bwd_slice(slice, plan.family, s); });
}

}  // namespace cuda
}  // namespace flashmask
