// Kernel selection as data: which kernel family runs a call and where its
// parts of the device workspace lie. plan_fwd / plan_bwd decide it from the
// params (incl. the door's KernelOptions) and the current device, once per
// entry point; the workspace-size query and the launch use the same function,
// so they cannot disagree.
//
// Workspace layout (each part 256-byte aligned, in this order):
//   forward:  [tile bounds]                      (only with a mask tensor)
//             [sm90 scheduler scratch]           (sm90 path)
//   backward: [tile bounds][delta: B*H*Sq fp32]
//             [sm80: dQ accumulator B*H*Sq16*D fp32, atomic mode only
//              (Sq16: Sq rounded up to 16, sm80/bwd/dq_accum.cuh)]
//             [sm90: padded lse/delta, the fp32 dQ accumulator in both modes,
//              deterministic-mode semaphores (sm90/bwd/workspace.h)]
#pragma once

#include <cstddef>

#include "core/flashmask_params.h"

namespace flashmask {
namespace cuda {

enum class KernelFamily { kSm80, kSm90 };

struct FwdPlan {
  KernelFamily family = KernelFamily::kSm80;
  size_t bounds_bytes = 0;  // at offset 0
  size_t sm90_bytes = 0;    // after the bounds
  size_t total() const { return bounds_bytes + sm90_bytes; }
};

struct BwdPlan {
  KernelFamily family = KernelFamily::kSm80;
  size_t bounds_bytes = 0;   // at offset 0
  size_t delta_bytes = 0;    // after the bounds
  size_t scratch_bytes = 0;  // after delta: the family's dQ accumulator and scratch
  size_t delta_offset() const { return bounds_bytes; }
  size_t scratch_offset() const { return bounds_bytes + delta_bytes; }
  size_t total() const { return bounds_bytes + delta_bytes + scratch_bytes; }
};

FwdPlan plan_fwd(const FwdParams& p);
BwdPlan plan_bwd(const BwdParams& p);

}  // namespace cuda
}  // namespace flashmask
