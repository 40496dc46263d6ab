// Framework-neutral description of one FlashMask attention call.
//
// Every door (Paddle op, torch binding, tests) fills these plain structs and
// hands them to the launcher in flashmask_api.h; kernels never see a framework
// tensor. All strides are in elements; the last (head_dim) axis is contiguous.
#pragma once

#include <cstdint>

namespace flashmask {

enum class DType : int32_t { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };

// Longest seqlen_q / seqlen_k, 2^31 - 2^16: the kernels index rows and keys in
// int32 and round a length up to whole tiles and blocks (at most 128) or shift
// it by seqlen_k - seqlen_q; 2^16 of headroom keeps every such sum in range.
// The C ABI refuses longer ones (paddle_flashmask/checks.py: MAX_SEQLEN).
constexpr int32_t kMaxSeqlen = 2147418112;

// Column-wise mask: startend_row_indices[b, h_mask, j, 0..ncols) (int32,
// contiguous). ncols == 0 means "no mask tensor" (plain or causal attention).
struct MaskArgs {
  const int32_t* startend = nullptr;
  int32_t ncols = 0;       // 0, 1, 2 or 4
  int32_t heads = 1;       // 1, num_heads_k or num_heads
  int64_t batch_stride = 0;
  int64_t head_stride = 0;
};

// Paddle 3.x's block_mask: block_mask[b, h_mask, i / 128, j / 128] (int32,
// contiguous [.., ceil(Sq/128), ceil(Sk/128)]); 0 masks the whole 128x128
// block on top of the column mask, 1 keeps it. heads == 0: no block mask.
constexpr int32_t kBlockMaskSize = 128;

struct BlockMaskArgs {
  const int32_t* blocks = nullptr;
  int32_t heads = 0;       // 0 (none), 1, num_heads_k or num_heads
  int64_t batch_stride = 0;
  int64_t head_stride = 0;
};

// Which GPU kernels may run. The doors fill these from the user's switches
// (README, "Switches"); the core reads no environment. The CPU ignores them.
struct KernelOptions {
  bool allow_sm90 = true;           // false: the sm80 kernels on Hopper too
  bool force_low_smem_bwd = false;  // sm80 backward: the low-shared-memory column
                                    // kernel even where the default one fits

  // One int for the doors' op attributes: bit 0 disables sm90, bit 1 forces
  // the low-shared-memory backward (paddle_flashmask/switches.py writes it).
  static KernelOptions from_bits(int bits) {
    KernelOptions o;
    o.allow_sm90 = (bits & 1) == 0;
    o.force_low_smem_bwd = (bits & 2) != 0;
    return o;
  }
};

struct FwdParams {
  DType dtype = DType::kFloat32;
  int32_t batch = 0, seqlen_q = 0, seqlen_k = 0;
  int32_t num_heads = 0, num_heads_k = 0, head_dim = 0;
  // Head dim of value and out (Dv); 0 means head_dim. q and k use head_dim.
  int32_t head_dim_v = 0;

  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  void* out = nullptr;
  float* softmax_lse = nullptr;  // [batch, num_heads, seqlen_q], contiguous

  int64_t q_batch_stride = 0, q_row_stride = 0, q_head_stride = 0;
  int64_t k_batch_stride = 0, k_row_stride = 0, k_head_stride = 0;
  int64_t v_batch_stride = 0, v_row_stride = 0, v_head_stride = 0;
  int64_t o_batch_stride = 0, o_row_stride = 0, o_head_stride = 0;

  MaskArgs mask;
  BlockMaskArgs block_mask;
  // Learnable attention sink: one fp32 logit per query head, [num_heads], or
  // null. It joins every row's softmax denominator unscaled (not multiplied by
  // softmax_scale) and carries no value; softmax_lse includes it.
  const float* learnable_sink = nullptr;
  bool causal = false;  // bottom-right aligned: key j masked for row i iff
                        // j > i + (seqlen_k - seqlen_q), as in FlashAttention-2
  float softmax_scale = 1.f;

  float dropout_p = 0.f;  // 0 disables dropout
  uint64_t seed = 0, offset = 0;
  // GPU: when set, (seed, offset) are read from this device int64[2] instead
  // (so the call can be captured in a CUDA graph).
  const int64_t* seed_offset_dev = nullptr;

  // GPU scratch the door allocates: flashmask_{fwd,bwd}_workspace_size()
  // bytes on the device (ignored on the CPU). Kernels never allocate.
  void* workspace = nullptr;
  uint64_t workspace_bytes = 0;

  int32_t num_threads = 0;  // CPU only; 0 = library default
  KernelOptions kernels;

  // Set by the CUDA dispatcher only (doors leave 0): the first batch of a
  // launch it split off the call (CUDA grids take at most 65535 batches), so
  // that dropout's row ids count batches of the whole call.
  int32_t batch_offset = 0;
};

struct BwdParams : FwdParams {
  const void* dout = nullptr;  // strides as out
  void* dq = nullptr;
  void* dk = nullptr;
  void* dv = nullptr;
  int64_t dq_batch_stride = 0, dq_row_stride = 0, dq_head_stride = 0;
  int64_t dk_batch_stride = 0, dk_row_stride = 0, dk_head_stride = 0;
  int64_t dv_batch_stride = 0, dv_row_stride = 0, dv_head_stride = 0;
  // With learnable_sink: its gradient, fp32 [num_heads], written (not added).
  float* dsink = nullptr;
  bool deterministic = false;  // GPU: ordered dq/dk/dv reductions
};

inline int32_t value_head_dim(const FwdParams& p) { return p.head_dim_v > 0 ? p.head_dim_v : p.head_dim; }

// Blocks of block_mask along a sequence of `seqlen` tokens: ceil(seqlen / 128).
inline int64_t block_mask_blocks(int64_t seqlen) {
  return (seqlen + kBlockMaskSize - 1) / kBlockMaskSize;
}

// Points p at a contiguous block_mask [batch, heads, blocks(Sq), blocks(Sk)]
// (seqlen_q and seqlen_k already set).
inline void set_block_mask(FwdParams* p, const int32_t* blocks, int32_t heads) {
  p->block_mask.blocks = blocks;
  p->block_mask.heads = heads;
  p->block_mask.head_stride = block_mask_blocks(p->seqlen_q) * block_mask_blocks(p->seqlen_k);
  p->block_mask.batch_stride = heads * p->block_mask.head_stride;
}

}  // namespace flashmask
