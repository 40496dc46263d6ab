// sm90a (Hopper) FlashMask backward: public entry of the sm90/bwd unit.
// Plain C++ (no CUDA or CuTe types), so dispatch/dispatch.cu can include it.
//
// The dispatcher (dispatch/dispatch.cu) calls, after prep/mask_bounds.cu's
// mask preprocessing into `tile_bounds`:
//   if (sm90::can_run_bwd(p, cc_major))
//     sm90::run_bwd(p, tile_bounds, delta, scratch, stream);
// `tile_bounds`: TileBounds per 64-key tile, [batch][mask head][ceil(Sk / 64)]
//   (unused when p.mask.ncols == 0).
// `delta`: the sm80 workspace's [B, H, Sq] fp32 delta region; it receives
//   rowsum(dO * O) as on the sm80 path (may be null). The kernel itself reads
//   a padded copy in `scratch`.
// `scratch`: bwd_extra_workspace_bytes(p) bytes of device memory (any
//   alignment): padded lse/delta, the fp32 dQ accumulator (also in
//   deterministic mode) and the deterministic-mode semaphores. The sm80 dQ
//   accumulator region is not needed on this path.
// Everything (preprocess, main kernel, dQ conversion) is enqueued on `stream`.
#pragma once

#include <cstddef>

#include "core/flashmask_params.h"
#include "core/mask_bounds.h"

namespace flashmask {
namespace cuda {
namespace sm90 {

// True when the sm90a backward takes this call: an sm_90 device, fp16/bf16,
// head_dim 64, 128, 192 or 256, no dropout, seqlen_q > 0, seqlen_k > 0, whole
// GQA groups. Everything else (head_dim 96, dropout) -> the sm80 kernels.
bool can_run_bwd(const BwdParams& p, int device_cc_major);

// Scratch bytes this path needs on top of [tile bounds][delta].
size_t bwd_extra_workspace_bytes(const BwdParams& p);

// Enqueue the backward on `stream` (a cudaStream_t). Throws std::runtime_error.
void run_bwd(const BwdParams& p, const TileBounds* tile_bounds, float* delta, void* scratch, void* stream);

}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
