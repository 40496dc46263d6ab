// sm90a (Hopper) FlashMask forward: public entry of the sm90/ unit.
// Plain C++ (no CUDA or CuTe types), so dispatch/dispatch.cu can include it.
//
// The dispatcher (dispatch/dispatch.cu) calls, after the mask preprocessing of prep/mask_bounds.cu:
//   if (sm90::can_run_fwd(p, device_cc_major)) sm90::run_fwd(p, bounds, stream);
// `tile_bounds` is the prep/mask_bounds.cu workspace: TileBounds per 64-key tile, laid out
// [batch][mask head][ceil(seqlen_k / 64)] (unused when p.mask.ncols == 0).
//
// The sm90 path wants fwd_extra_workspace_bytes(p) more bytes of workspace
// (the longest-work-first schedule and its atomic tile counter); it takes
// them from the END of p.workspace, so the dispatcher only has to add them to
// fwd_workspace_size(). Without them it still runs, on a static schedule.
#pragma once

#include <cstddef>

#include "core/flashmask_params.h"
#include "core/mask_bounds.h"

namespace flashmask {
namespace cuda {
namespace sm90 {

// True when the sm90a kernel takes this call: an sm_90 device, fp16/bf16,
// head_dim 64/128/192/256, no dropout, seqlen_k > 0. Everything else -> sm80 path.
bool can_run_fwd(const FwdParams& p, int device_cc_major);

// Extra workspace bytes (on top of the prep/mask_bounds.cu tile bounds) this path uses.
size_t fwd_extra_workspace_bytes(const FwdParams& p);

// Enqueue the forward on `stream` (a cudaStream_t). Throws std::runtime_error.
void run_fwd(const FwdParams& p, const TileBounds* tile_bounds, void* stream);

}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
