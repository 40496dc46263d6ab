// Exact FlashMask attention on the CPU (fp32 math; fp32/fp16/bf16 tensors).
#pragma once

#include "core/flashmask_params.h"

namespace flashmask {
namespace cpu {

constexpr int kBlockM = 64;  // query rows per task
constexpr int kBlockN = 64;  // key columns per tile (the mask-bounds granularity)
// A tile never straddles two block_mask blocks, so one lookup decides it.
static_assert(kBlockMaskSize % kBlockM == 0 && kBlockMaskSize % kBlockN == 0,
              "CPU tiles must nest in block_mask blocks");

void flashmask_fwd(const FwdParams& p);
// Deterministic by construction: dq from a query-row pass, dk/dv from a
// key-column pass, no shared accumulators between threads.
void flashmask_bwd(const BwdParams& p);

}  // namespace cpu
}  // namespace flashmask
