// Host side, shared by the sm90 forward and backward launchers: the fields
// both kernel-parameter structs carry (the column mask, the sizes, causal and
// the block mask, the softmax scale), filled from the framework-neutral
// params one way.
#pragma once

#include "core/flashmask_params.h"
#include "core/cuda/sm90/common/mask.cuh"
#include "core/mask_bounds.h"

namespace flashmask {
namespace cuda {
namespace sm90 {

// kPrepTile: prep/mask_bounds.cu's TileBounds width (keys per bounds entry).
template <int kPrepTile, class KernelParamsT>
inline void set_shared_params(KernelParamsT& kp, const FwdParams& p, const TileBounds* bounds) {
  const bool has_mask = p.mask.ncols > 0;
  kp.startend = has_mask ? p.mask.startend : nullptr;
  kp.ncols = p.mask.ncols;
  kp.mask_heads = has_mask ? p.mask.heads : 1;
  kp.mask_batch_stride = p.mask.batch_stride;
  kp.mask_head_stride = p.mask.head_stride;
  kp.bounds = has_mask ? bounds : nullptr;
  const bool has_blocks = p.block_mask.heads != 0;
  kp.block_mask = BlockMaskView{has_blocks ? p.block_mask.blocks : nullptr, has_blocks ? p.block_mask.heads : 1,
                                static_cast<int32_t>(block_mask_blocks(p.seqlen_k)), p.block_mask.batch_stride,
                                p.block_mask.head_stride};
  kp.n_tiles64 = (p.seqlen_k + kPrepTile - 1) / kPrepTile;
  kp.batch = p.batch;
  kp.num_heads = p.num_heads;
  kp.num_heads_k = p.num_heads_k;
  kp.seqlen_q = p.seqlen_q;
  kp.seqlen_k = p.seqlen_k;
  kp.causal = p.causal;
  kp.softmax_scale = p.softmax_scale;
  kp.scale_log2 = p.softmax_scale * 1.4426950408889634f;  // log2(e): the kernels use exp2
}

}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
