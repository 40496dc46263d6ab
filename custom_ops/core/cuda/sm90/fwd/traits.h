// Compile-time shape of the sm90a forward for one (element type, head_dim):
// tile sizes, pipeline depths, warp roles and register split, the CuTe
// shared-memory layouts (128-byte swizzle, what TMA writes and wgmma reads),
// the two tiled wgmma's (S = Q K^T from smem/smem, O += P V with P from
// registers) and the shared-storage struct.
#pragma once

#include <cute/tensor.hpp>
#include <cutlass/arch/barrier.h>
#include <cutlass/arch/reg_reconfig.h>
#include <cutlass/cutlass.h>
#include <cutlass/numeric_types.h>
#include <cutlass/pipeline/pipeline.hpp>

#include "core/cuda/common/tile_size.h"
#include "core/cuda/sm90/common/mask.cuh"
#include "core/mask_bounds.h"

namespace flashmask {
namespace cuda {
namespace sm90 {

using namespace cute;

constexpr int kPrepTileN = kBoundsTile;  // TileBounds granularity

// One message of the producer -> consumer "meta" pipeline. head.x is the type:
//   kMsgTile: a work tile starts, head = {type, batch, head, m_block}
//   kMsgKey:  a key tile is coming through K/V, head = {type, n_block, kind, 0};
//             for a partial tile, bit i of row_bits[w][c] masks row 16 w + i of
//             the work tile for key column c (both FlashMask bands, causal and
//             the seqlen_k tail folded in by a mask warp; see mask.cuh)
//   kMsgEnd:  the work tile has no more key tiles
//   kMsgExit: no more work tiles
enum MsgType : int { kMsgExit = 0, kMsgTile = 1, kMsgKey = 2, kMsgEnd = 3 };

template <int BM, int BN>
struct alignas(16) MetaMsg {
  int4 head;
  // a partial tile's job for the mask warps: the mask columns of the work
  // tile's (batch, mask head) and its first row
  const int32_t* col0;
  int32_t r0, unused;
  uint16_t row_bits[BM / 16][BN];  // one 16-row slice (a consumer warp's rows) per word
};

template <typename Element_, int kHeadDim_>
struct FwdTraits {
  using Element = Element_;  // cutlass::bfloat16_t or cutlass::half_t
  using ElementAccum = float;
  static constexpr int kHeadDim = kHeadDim_;
  static_assert(kHeadDim == 64 || kHeadDim == 128 || kHeadDim == 192 || kHeadDim == 256,
                "sm90 forward head dims: 64, 128, 192, 256");

  // 2 consumer warpgroups of 64 query rows each share every K/V tile.
  static constexpr int kNumMmaWarpGroups = kFwdWarpGroups;
  static constexpr int kBlockM = kFwdBlockM;
  static constexpr int kBlockN = fwd_block_n(kHeadDim);
  static_assert(kBlockN % kPrepTileN == 0, "key tile must be whole prep tiles");
  static constexpr int kStages = fwd_kv_stages(kHeadDim);  // K and V each
  // Q of the next work tile loads while this one runs (its latency was paid
  // at every tile start: short tiles - windows, documents - felt it most);
  // d192 fits it (2 x 48 KB of Q next to 2 x 2 x 24 KB of K and V), d256
  // has no smem left for it.
  static constexpr int kQStages = kHeadDim <= 192 ? 2 : 1;
  // d128: the epilogue stages O in the tile's own Q buffer and TMA-stores it,
  // each warpgroup its own rows; the buffer goes back to the producer once
  // both stores have read it, during the next tile (so it needs the second Q
  // buffer). Same-run A/B on the H100: 3-8 % faster on windows, documents and
  // share-question, neutral on causal and full; d64 was 3-4 % slower (a
  // 64-column tile's register stores are cheap; measured when one barrier
  // still joined both warpgroups), d256 has one Q buffer: both store O from
  // registers.
  static constexpr bool kTmaStoreO = kHeadDim == 128;
  static_assert(!kTmaStoreO || kQStages == 2, "the O store hands the Q buffer back one tile later");
  static_assert(!kTmaStoreO || kNumMmaWarpGroups == 2, "O boxes: 64 rows per warpgroup, 2 per tile");
  // Diagonal blocks masked by causality alone get a one-compare mask step;
  // d192 and d256 send them as partial blocks (d256's consumers are at the
  // register cap: the extra step made ptxas spill inside the key loop).
  static constexpr bool kCausalOnlyBlocks = kHeadDim <= 128;
  // Ping-pong (FA3's warp-scheduler barriers): the two consumer warpgroups
  // take turns issuing their wgmma's, so one's softmax runs under the other's
  // GEMMs on top of the intra-warpgroup overlap. d128 only. Two same-run A/Bs
  // on the H100 (2 and 3 rounds, 8K and 32K): document 4-9 % faster, 32K
  // sliding_window 1-4 % and share_question 2-4 %, causal and full within
  // noise (-1 .. +4 %), causal_document 0-3 % slower; d64 lost 5-8 % on
  // sliding windows, d256 was neutral.
  static constexpr bool kPingPong = kHeadDim == 128;
  static constexpr int kMetaStages = kStages + 3;
  // Warps 1-3 of the producer warpgroup turn partial tiles' mask columns into
  // row bits (mask_warps.cuh), so the producer warp only posts the job. Job j
  // goes to mask warp j % kMaskWarps through job slot j % kJobSlots: each
  // slot belongs to one mask warp, and a slot is reused only after its last
  // job's message was committed (at most kMetaStages messages are in flight).
  static constexpr int kMaskWarps = 3;
  static constexpr int kJobSlots = 6;
  static_assert(kJobSlots % kMaskWarps == 0 && kJobSlots >= kMetaStages, "mask job slots");
  // Job numbers run modulo kJobPeriod: a job's slot, its barrier's phase and its
  // mask warp repeat with it, and a CTA's count of partial blocks may pass 2^31.
  static constexpr int kJobPeriod = 2 * kJobSlots;
  static_assert(kJobPeriod % kMaskWarps == 0, "a job keeps its mask warp across the wrap");
  static constexpr int kNumMmaThreads = 128 * kNumMmaWarpGroups;
  static constexpr int kNumThreads = kNumMmaThreads + 128;  // + producer warpgroup
  // setmaxnreg split. setmaxnreg only moves registers within what the CTA
  // was launched with (__launch_bounds__(384, 1): 65536 / 384 rounded down to
  // the granule of 8 = 168 per thread, 64512), not the 64K register file:
  // asking for more leaves the consumers' setmaxnreg.inc waiting forever.
  static constexpr int kLaunchRegs = (65536 / kNumThreads) / 8 * 8;
  static constexpr int kProducerRegs = 56;
  static constexpr int kConsumerRegs = 224;
  static_assert(128 * kProducerRegs + kNumMmaThreads * kConsumerRegs <= kNumThreads * kLaunchRegs,
                "setmaxnreg split exceeds the CTA's registers");

  using TileShape = Shape<Int<kBlockM>, Int<kBlockN>, Int<kHeadDim>>;
  using AtomLayoutMNK = Layout<Shape<Int<kNumMmaWarpGroups>, _1, _1>>;

  using TiledMmaQK = decltype(make_tiled_mma(
      GMMA::ss_op_selector<Element, Element, ElementAccum, TileShape>(), AtomLayoutMNK{}));
  using TiledMmaPV = decltype(make_tiled_mma(
      GMMA::rs_op_selector<Element, Element, ElementAccum, decltype(select<0, 2, 1>(TileShape{})),
                           GMMA::Major::K, GMMA::Major::MN>(),
      AtomLayoutMNK{}));

  // Head dims are multiples of 64 elements = 128 bytes: the 128-byte swizzle
  // atom (8 rows x 64 elements) tiles every operand.
  using SmemAtom = GMMA::Layout_K_SW128_Atom<Element>;
  using SmemLayoutQ =
      decltype(tile_to_shape(SmemAtom{}, Shape<Int<kBlockM>, Int<kHeadDim>, Int<kQStages>>{}));
  using SmemLayoutK =
      decltype(tile_to_shape(SmemAtom{}, Shape<Int<kBlockN>, Int<kHeadDim>, Int<kStages>>{}));
  using SmemLayoutV = SmemLayoutK;
  // V^T as the (head_dim x keys) B operand of O += P V: the same bytes, an
  // MN-major view (wgmma transposes 16-bit B operands itself).
  using SmemLayoutVt = decltype(composition(
      SmemLayoutV{}, make_ordered_layout(Shape<Int<kHeadDim>, Int<kBlockN>, Int<kStages>>{},
                                         Step<_2, _1, _3>{})));

  using ShapeQKV = cute::Shape<int32_t, int32_t, int32_t, int32_t>;  // (seq, d, head, batch)
  using StrideQKV = cute::Stride<int64_t, _1, int64_t, int64_t>;

  using TmaQ = decltype(make_tma_copy(
      SM90_TMA_LOAD{},
      make_tensor(make_gmem_ptr(static_cast<Element const*>(nullptr)), ShapeQKV{}, StrideQKV{}),
      take<0, 2>(SmemLayoutQ{}), select<0, 2>(TileShape{}), _1{}));
  // O is stored per warpgroup (its 64 rows), one 64 x 64 box (one swizzle
  // column of the Q buffer, 8 KB contiguous) per store.
  using OBoxShape = Shape<_64, _64>;
  using SmemLayoutOBox = decltype(tile_to_shape(SmemAtom{}, OBoxShape{}));
  using TmaO = decltype(make_tma_copy(
      SM90_TMA_STORE{},
      make_tensor(make_gmem_ptr(static_cast<Element*>(nullptr)), ShapeQKV{}, StrideQKV{}),
      SmemLayoutOBox{}, OBoxShape{}, _1{}));
  using TmaKV = decltype(make_tma_copy(
      SM90_TMA_LOAD{},
      make_tensor(make_gmem_ptr(static_cast<Element const*>(nullptr)), ShapeQKV{}, StrideQKV{}),
      take<0, 2>(SmemLayoutK{}), select<1, 2>(TileShape{}), _1{}));

  static constexpr uint32_t kTmaBytesQ = kBlockM * kHeadDim * sizeof(Element);
  static constexpr uint32_t kTmaBytesKV = kBlockN * kHeadDim * sizeof(Element);

  using PipelineKV = cutlass::PipelineTmaAsync<kStages>;
  using PipelineMeta = cutlass::PipelineAsync<kMetaStages>;
  using QState = cutlass::PipelineState<kQStages>;  // which Q buffer, and its barrier phase
  using Msg = MetaMsg<kBlockM, kBlockN>;

  struct SharedStorage {
    cute::array_aligned<Element, cute::cosize_v<SmemLayoutQ>, 1024> smem_q;
    cute::array_aligned<Element, cute::cosize_v<SmemLayoutK>, 1024> smem_k;
    cute::array_aligned<Element, cute::cosize_v<SmemLayoutV>, 1024> smem_v;
    Msg meta[kMetaStages];
    typename PipelineKV::SharedStorage pipe_k;
    typename PipelineKV::SharedStorage pipe_v;
    typename PipelineMeta::SharedStorage pipe_meta;
    alignas(8) uint64_t bar_q_full[kQStages];   // TMA of Q landed (arrival 1 + tx bytes)
    // Q buffer free again: every consumer thread done with Q (arrival 256), or
    // with kTmaStoreO both warpgroups' O stores out of it have read it (arrival 2)
    alignas(8) uint64_t bar_q_empty[kQStages];
    alignas(8) uint64_t bar_job[kJobSlots];  // a mask job was posted (arrival 1)
    int job_stage[kJobSlots];                // its meta stage
  };
  static constexpr int kQEmptyArrivals = kTmaStoreO ? kNumMmaWarpGroups : kNumMmaThreads;
  // named barriers kBarOStaged + wg: warpgroup wg's 128 threads staged their O rows
  static constexpr int kBarOStaged = 5;
  static constexpr int kBarTurn0 = 3, kBarTurn1 = 4;  // named barriers: warpgroup 0's / 1's turn (kPingPong)
  static constexpr int kSmemBytes = int(sizeof(SharedStorage));
  static_assert(kSmemBytes <= 227 * 1024, "shared memory");
};

// Everything the kernel reads, passed as one __grid_constant__ parameter (the
// TMA descriptors must live in parameter/constant space).
template <typename Traits>
struct KernelParams {
  typename Traits::TmaQ tma_q;
  typename Traits::TmaKV tma_k;
  typename Traits::TmaKV tma_v;
  typename Traits::TmaO tma_o;  // used with kTmaStoreO
  typename Traits::ShapeQKV shape_q, shape_k;

  void* out;
  int64_t o_batch_stride, o_row_stride, o_head_stride;
  float* lse;
  const float* learnable_sink;  // [num_heads] fp32, or nullptr

  // mask
  const int32_t* startend;  // nullptr: no mask tensor
  int32_t ncols, mask_heads;
  int64_t mask_batch_stride, mask_head_stride;
  const TileBounds* bounds;  // prep/mask_bounds.cu workspace, [b][hm][n_tiles64]
  int32_t n_tiles64;
  BlockMaskView block_mask;  // Paddle's block_mask (blocks == nullptr: none)

  int32_t batch, num_heads, num_heads_k, seqlen_q, seqlen_k;
  bool causal;
  float softmax_scale, scale_log2;

  // scheduler
  int32_t m_blocks, total_tiles;
  int32_t heads_per_section;  // (b, h) pairs per L2 section, see tile_scheduler.cuh
  const int32_t* order;  // nullptr: static (b, h, m) order, heaviest m first
  int32_t* counter;      // nullptr: static striding by gridDim.x
};

}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
