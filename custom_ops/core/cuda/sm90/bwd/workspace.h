// Layout of the sm90 backward's scratch and the declaration of the per-
// (dtype, head_dim) launchers in instantiations/. Light: no CuTe.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "core/cuda/common/tile_size.h"

#include "core/flashmask_params.h"
#include "core/mask_bounds.h"

namespace flashmask {
namespace cuda {
namespace sm90 {
namespace bwd {

// Scratch (256-aligned parts), R = B * H * m_blocks * kBlockM padded rows:
//   [dq accumulator: R * D fp32][lse_log2: R fp32][delta: R fp32]
//   [semaphores: B * H * m_blocks int32][tile states: B * H * m_blocks int32]
//   [last visible key block per query block: B * H * m_blocks int32]
//   [block_mask column bits: B * block-mask heads * ceil(Sk / 128) *
//    ceil(ceil(Sq / 128) / 32) uint32, only with a block_mask]
// Only the first two int32 arrays are zeroed per call (`counters`): the
// accumulator tiles are zeroed in the kernel (dq_zeroer_warp in
// sm90/bwd/dq_writer.cuh).
// kBlockM must match BwdConfig<D>::kBlockM in sm90/bwd/traits.h (static_assert'ed
// in sm90/bwd/launch.cuh).
struct Scratch {
  static int block_m(int head_dim) { return bwd_block_m(head_dim); }
  static size_t a256(size_t n) { return (n + 255) & ~size_t(255); }
  static size_t m_blocks(const BwdParams& p) { return (p.seqlen_q + block_m(p.head_dim) - 1) / block_m(p.head_dim); }
  static size_t rows(const BwdParams& p) {
    return size_t(p.batch) * p.num_heads * m_blocks(p) * block_m(p.head_dim);
  }
  static size_t dq_bytes(const BwdParams& p) { return a256(rows(p) * p.head_dim * 4); }
  static size_t vec_bytes(const BwdParams& p) { return a256(rows(p) * 4); }
  static size_t sem_bytes(const BwdParams& p) { return a256(size_t(p.batch) * p.num_heads * m_blocks(p) * 4); }
  static size_t counters_bytes(const BwdParams& p) { return 2 * sem_bytes(p); }
  // block_mask column bits (pack_block_mask_columns in sm90/bwd/mask.cuh)
  static size_t bit_words(const BwdParams& p) { return (block_mask_blocks(p.seqlen_q) + 31) / 32; }
  static size_t bits_bytes(const BwdParams& p) {
    if (p.block_mask.heads == 0) return 0;
    return a256(size_t(p.batch) * p.block_mask.heads * block_mask_blocks(p.seqlen_k) * bit_words(p) * 4);
  }
  static size_t bytes(const BwdParams& p) {
    return 256 + dq_bytes(p) + 2 * vec_bytes(p) + counters_bytes(p) + sem_bytes(p) + bits_bytes(p);
  }

  float* dq;
  float* lse_log2;
  float* delta;
  int32_t* sem;       // deterministic mode: 1 + the last key block that added
  int32_t* dq_state;  // claims of the tile (low bits) | kDqZeroed
  int32_t* last_visible;  // deterministic mode with a mask (last_visible_kernel)
  uint32_t* block_bits;   // with a block_mask
  Scratch(const BwdParams& p, void* base) {
    uintptr_t a = (reinterpret_cast<uintptr_t>(base) + 255) & ~uintptr_t(255);
    dq = reinterpret_cast<float*>(a);
    a += dq_bytes(p);
    lse_log2 = reinterpret_cast<float*>(a);
    a += vec_bytes(p);
    delta = reinterpret_cast<float*>(a);
    a += vec_bytes(p);
    sem = reinterpret_cast<int32_t*>(a);
    a += sem_bytes(p);
    dq_state = reinterpret_cast<int32_t*>(a);
    a += sem_bytes(p);
    last_visible = reinterpret_cast<int32_t*>(a);
    a += sem_bytes(p);
    block_bits = reinterpret_cast<uint32_t*>(a);
  }
};

// instantiations/bwd_sm90_{bf16,fp16}_d{64,128,192,256}.cu; Element is cutlass::bfloat16_t or cutlass::half_t.
template <typename Element, int D>
void run_bwd_impl(const BwdParams& p, const TileBounds* bounds, float* delta_plain, void* scratch,
                  cudaStream_t stream);

}  // namespace bwd
}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
