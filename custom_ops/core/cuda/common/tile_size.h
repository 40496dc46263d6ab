// Tile sizes of every CUDA kernel, in one place. Host and device code read
// them; the kernels' trait structs derive their layouts from these numbers.
#pragma once

namespace flashmask {
namespace cuda {

// Keys per TileBounds entry of the mask preprocessing (prep/mask_bounds.cu).
// Every kernel's key tile is a whole number of these.
constexpr int kBoundsTile = 64;

namespace sm80 {
constexpr int kThreads = 128;           // 4 warps per CTA: forward and dQ kernels
constexpr int kBlockN = kBoundsTile;    // keys per tile of the forward and dQ kernels
constexpr int kBlockMBwd = 64;          // query rows per step of the column (dK/dV) kernels
// Query rows per CTA of the forward.
constexpr int fwd_block_m(int head_dim) { return head_dim <= 128 ? 128 : 64; }
// Keys per CTA of the low-shared-memory column kernel (dkdv_low_smem_kernel.cuh).
constexpr int low_smem_block_n(int head_dim) { return head_dim <= 128 ? 128 : 64; }
// Entries of a CTA's compacted tile list (mask_device.cuh, for_each_tile_chunk):
// the kernels compact and visit their candidate tiles this many at a time, so
// shared memory does not grow with the sequence length (32K keys or rows per
// chunk at 64-row/key tiles). 512, not 1024: the low-smem column kernel at d192
// then still fits an A100 (sm80/common/smem_budget.h).
constexpr int kTileListCap = 512;
}  // namespace sm80

namespace sm90 {
// Forward: 64 query rows per consumer warpgroup, two warpgroups per CTA.
constexpr int kFwdWarpGroups = 2;
constexpr int kFwdBlockM = 64 * kFwdWarpGroups;
constexpr int fwd_block_n(int head_dim) { return head_dim <= 128 ? 128 : 64; }
constexpr int fwd_kv_stages(int head_dim) { return head_dim <= 64 ? 3 : 2; }
// Backward: one CTA per key block of bwd_block_n keys, query blocks of bwd_block_m rows.
constexpr int bwd_block_m(int head_dim) { return head_dim <= 64 ? 128 : 64; }
constexpr int bwd_block_n(int head_dim) { return head_dim <= 128 ? 128 : 64; }
}  // namespace sm90

// block_mask decides per 128x128 block: every tile above must nest in one.
static_assert(128 % sm80::kBlockN == 0 && 128 % sm80::kBlockMBwd == 0 && 128 % sm80::fwd_block_m(256) == 0 &&
                  128 % sm80::fwd_block_m(64) == 0 && 128 % sm80::low_smem_block_n(64) == 0 &&
                  128 % sm90::kFwdBlockM == 0 && 128 % sm90::fwd_block_n(64) == 0 &&
                  128 % sm90::bwd_block_m(64) == 0 && 128 % sm90::bwd_block_n(64) == 0,
              "kernel tiles must nest in 128x128 block_mask blocks");

}  // namespace cuda
}  // namespace flashmask
