// Compile-time shape of the sm90a FlashMask backward for one (element type,
// head_dim): tiles, warp roles, register split, shared-memory layouts, the
// three tiled wgmma's, TMA types, shared storage and kernel parameters.
//
// One CTA owns one (batch, kv head, key block of kBlockN keys) and walks the
// query blocks (kBlockM rows) of every query head of its GQA group - the
// FlashMask column direction. Two consumer warpgroups, in one of two splits:
//
// d64 / d128 (kSplitD = false), kBlockN = 128: each warpgroup owns 64 keys
//   S^T  = K_w Q^T          (SS, M = 64 keys, N = BM queries, K = D)
//   dP^T = V_w dO^T         (SS, same shape)
//   dV_w += P^T dO          (RS: P^T straight from the S^T accumulator)
//   dK_w += dS^T Q          (RS: dS^T from the dP^T accumulator)
//   dQ   = dS K             (SS, dS from smem written by both warpgroups;
//                            warpgroups split D (BM = 64) or M (BM = 128))
// d192 / d256 (kSplitD = true), kBlockN = 64, BM = 64: dK and dV of 64 keys
//   x D would be 2 * D fp32 registers per thread, so both warpgroups share
//   the 64 keys and split the head dim of dK / dV (D / 2 columns each):
//   S^T, dP^T               (SS, M = 64 keys, N = 32 queries per warpgroup)
//   P^T, dS^T -> smem       (each warpgroup writes its 32 queries)
//   dV[:, Dw] += P^T dO[:, Dw], dK[:, Dw] += dS^T Q[:, Dw]
//                           (SS, M = 64 keys, N = D / 2, K = 64 queries)
//   dQ   = dS K             (SS, in kDqSlices column slices: 2 of 128 at
//                            d256, 3 of 64 at d192, so the fp32 staging tile
//                            is 32 / 16 KB of smem, not 64 / 48)
// d192 splits at column 96, inside a 128-byte swizzle atom (64 columns), so
// its Q, dO, K, V tiles use the 64-byte swizzle (32-column atoms; its 8 x 16 B
// core matrices are still bank-conflict free).
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
namespace bwd {

using namespace cute;

constexpr int kPrepTileN = kBoundsTile;  // TileBounds granularity

template <int D>
struct BwdConfig {
  static constexpr int kBlockM = bwd_block_m(D);
  static constexpr int kBlockN = bwd_block_n(D);
  // setmaxnreg split. The CTA's register pool is what it was launched with:
  // __launch_bounds__(384, 1) -> 168 registers per thread at entry, i.e.
  // 168 * 384 = 64512, NOT 65536. setmaxnreg.inc blocks until the pool can
  // supply the increase, so 128 * producer + 256 * consumer must be <= 64512
  // (32 / 240 = 65536 hung every CTA in setmaxnreg.inc on the first device
  // run). d64 / d128 consumers need the 240 (d128: dK, dV 128 fp32 + S^T,
  // dP^T 64 + dQ 32; d64: S^T and dP^T of 128 queries, 128 fp32; at 224
  // ptxas serializes their wgmma's, C7512), so the producer warpgroup (TMA
  // producer, dQ writer, order scanner, zeroer) gets 24, as FA3's backward
  // with two MMA warpgroups. The head-dim-split consumers (d192 / d256: dK,
  // dV 128 fp32 + S^T, dP^T 32 + a dQ part 32) fit in 224 without spills, and
  // 56 registers take the spills out of the producer warpgroup's walks
  // (d256: 136 bytes of stack, 43 spill instructions in the dQ writer and
  // 85 in the deterministic order scanner, to none).
  static constexpr int kProducerRegs = D >= 192 ? 56 : 24;
  static constexpr int kConsumerRegs = D >= 192 ? 224 : 240;
};

template <typename Element_, int kHeadDim_>
struct BwdTraits {
  using Element = Element_;
  using ElementAccum = float;
  static constexpr int kHeadDim = kHeadDim_;
  static_assert(kHeadDim == 64 || kHeadDim == 128 || kHeadDim == 192 || kHeadDim == 256,
                "sm90 backward: head dims 64, 128, 192, 256");
  static constexpr int kBlockM = BwdConfig<kHeadDim>::kBlockM;
  static constexpr int kBlockN = BwdConfig<kHeadDim>::kBlockN;
  // see the header: warpgroups own 64 keys each, or share the keys and split D
  static constexpr bool kSplitD = kHeadDim >= 192;
  static_assert(kBlockN == (kSplitD ? 64 : 128), "64 keys per warpgroup, or 64 shared");
  static constexpr int kStages = 2;  // Q (+ lse) pipeline
  // dO (+ delta) pipeline: d256 has smem for one stage (as FA3's d256 backward)
  static constexpr int kStagesDo = kHeadDim == 256 ? 1 : 2;
  // dS^T (and for kSplitD P^T) tiles in smem: two buffers let a warpgroup
  // write block m + 1's while the other still reads block m's; kSplitD has
  // room for one and a barrier instead (kBarPdsFree)
  static constexpr int kDsBufs = kSplitD ? 1 : 2;
  // the dQ tile leaves the consumers in kDqSlices column slices (each
  // warpgroup's part of a slice starts on a swizzle atom of K)
  static constexpr int kDqSlices = kHeadDim == 256 ? 2 : kHeadDim == 192 ? 3 : 1;
  // deterministic mode: the writer adds a whole slice (both parts) as one link
  // of the chain, not a part at a time (backward time, H100, 8K, six masks:
  // d256 0.950, d192 0.985; d128 1.040, so it keeps its per-part adds)
  static constexpr bool kDetWholeSlice = kSplitD;
  static constexpr int kNumMmaWarpGroups = 2;
  static constexpr int kNumMmaThreads = 256;
  static constexpr int kNumThreads = kNumMmaThreads + 128;  // + producer warpgroup
  static constexpr int kProducerRegs = BwdConfig<kHeadDim>::kProducerRegs;
  static constexpr int kConsumerRegs = BwdConfig<kHeadDim>::kConsumerRegs;
  // registers per thread at entry under __launch_bounds__(kNumThreads, 1):
  // 65536 / 384 rounded down to the allocation granule of 8 = 168
  static constexpr int kEntryRegs = (65536 / kNumThreads) / 8 * 8;
  static_assert(kEntryRegs == 168, "384 threads, 1 CTA/SM");
  static_assert(128 * kProducerRegs + kNumMmaThreads * kConsumerRegs <= kEntryRegs * kNumThreads,
                "setmaxnreg.inc would wait forever: the CTA pool is kEntryRegs * kNumThreads");
  static_assert(kProducerRegs % 8 == 0 && kConsumerRegs % 8 == 0 && kProducerRegs >= 24 && kConsumerRegs <= 256,
                "setmaxnreg range");
  // dQ = dS K: with BM = 64 the two warpgroups split the head dim, with
  // BM = 128 the query rows.
  static constexpr bool kDqSplitM = kBlockM == 128;

  using BM = Int<kBlockM>;
  using BN = Int<kBlockN>;
  using HD = Int<kHeadDim>;
  using ST = Int<kStages>;
  using STdO = Int<kStagesDo>;
  using DQ = Int<kHeadDim / kDqSlices>;  // columns of one dQ slice

  // S^T / dP^T: (keys, queries, D); 2 warpgroups along the keys, or (kSplitD)
  // along the queries
  using TiledMmaSdP = std::conditional_t<
      kSplitD,
      decltype(make_tiled_mma(
          GMMA::ss_op_selector<Element, Element, ElementAccum, Shape<_64, Int<kBlockM / 2>, HD>>(),
          Layout<Shape<_1, _2, _1>>{})),
      decltype(make_tiled_mma(GMMA::ss_op_selector<Element, Element, ElementAccum, Shape<_64, BM, HD>>(),
                              Layout<Shape<_2, _1, _1>>{}))>;
  // dV += P^T dO, dK += dS^T Q: (keys, D, queries); A from registers, or
  // (kSplitD) from smem with the warpgroups along D
  using TiledMmadKV = std::conditional_t<
      kSplitD,
      decltype(make_tiled_mma(
          GMMA::ss_op_selector<Element, Element, ElementAccum, Shape<_64, Int<kHeadDim / 2>, BM>,
                               GMMA::Major::K, GMMA::Major::MN>(),
          Layout<Shape<_1, _2, _1>>{})),
      decltype(make_tiled_mma(GMMA::rs_op_selector<Element, Element, ElementAccum, Shape<_64, HD, BM>,
                                                   GMMA::Major::K, GMMA::Major::MN>(),
                              Layout<Shape<_2, _1, _1>>{}))>;
  // dQ = dS K, one slice: (queries, DQ, keys), both operands MN-major in smem
  using TiledMmadQ = std::conditional_t<
      kDqSplitM,
      decltype(make_tiled_mma(GMMA::ss_op_selector<Element, Element, ElementAccum, Shape<_64, DQ, BN>,
                                                   GMMA::Major::MN, GMMA::Major::MN>(),
                              Layout<Shape<_2, _1, _1>>{})),
      decltype(make_tiled_mma(
          GMMA::ss_op_selector<Element, Element, ElementAccum, Shape<BM, Int<kHeadDim / kDqSlices / 2>, BN>,
                               GMMA::Major::MN, GMMA::Major::MN>(),
          Layout<Shape<_1, _2, _1>>{}))>;

  // d192: the 64-byte swizzle, so column 96 (the head-dim split) and the
  // dQ slices' halves (32 columns) start on an atom
  using SmemAtomK = std::conditional_t<kHeadDim == 192, GMMA::Layout_K_SW64_Atom<Element>,
                                       GMMA::Layout_K_SW128_Atom<Element>>;
  using SmemLayoutQ = decltype(tile_to_shape(SmemAtomK{}, Shape<BM, HD, ST>{}));
  using SmemLayoutdO = decltype(tile_to_shape(SmemAtomK{}, Shape<BM, HD, STdO>{}));
  using SmemLayoutK = decltype(tile_to_shape(SmemAtomK{}, Shape<BN, HD>{}));      // also V
  // transposed (MN-major) views of the same bytes, as B operands
  using SmemLayoutQt =
      decltype(composition(SmemLayoutQ{}, make_ordered_layout(Shape<HD, BM, ST>{}, Step<_2, _1, _3>{})));
  using SmemLayoutdOt =
      decltype(composition(SmemLayoutdO{}, make_ordered_layout(Shape<HD, BM, STdO>{}, Step<_2, _1, _3>{})));
  using SmemLayoutKt =
      decltype(composition(SmemLayoutK{}, make_ordered_layout(Shape<HD, BN>{}, Step<_2, _1>{})));
  // dS (queries, keys, buffers), queries contiguous (A of dQ = dS K);
  // dSt = the (keys, queries, buffer) view the S^T accumulators write through
  // (and, kSplitD, the K-major A of dK = dS^T Q); P^T alike (kSplitD only)
  using SmemLayoutdS =
      decltype(tile_to_shape(GMMA::Layout_MN_SW128_Atom<Element>{}, Shape<BM, BN, Int<kDsBufs>>{}));
  using SmemLayoutdSt = decltype(composition(
      SmemLayoutdS{}, make_ordered_layout(Shape<BN, BM, Int<kDsBufs>>{}, Step<_2, _1, _3>{})));
  static constexpr int kPElems = kSplitD ? int(cute::cosize_v<SmemLayoutdS>) : 8;

  using ShapeQKV = cute::Shape<int32_t, int32_t, int32_t, int32_t>;  // (seq, d, head, batch)
  using StrideQKV = cute::Stride<int64_t, _1, int64_t, int64_t>;
  using TmaQ = decltype(make_tma_copy(
      SM90_TMA_LOAD{},
      make_tensor(make_gmem_ptr(static_cast<Element const*>(nullptr)), ShapeQKV{}, StrideQKV{}),
      take<0, 2>(SmemLayoutQ{}), Shape<BM, HD>{}, _1{}));
  using TmaK = decltype(make_tma_copy(
      SM90_TMA_LOAD{},
      make_tensor(make_gmem_ptr(static_cast<Element const*>(nullptr)), ShapeQKV{}, StrideQKV{}),
      SmemLayoutK{}, Shape<BN, HD>{}, _1{}));

  // dK / dV epilogue, d128: each warpgroup stages its 64 keys of dK and dV in
  // smem (the Q and dO buffers, free once the column's last block is done)
  // and TMA-stores them, instead of 4-byte register stores; (64 keys, D,
  // warpgroup). d64 stores from registers (with the staging code ptxas spilled
  // in its key loop), d256 too (its warpgroups split D, not the keys).
  static constexpr bool kTmaStoreDkv = kHeadDim == 128;
  using SmemLayoutKVStage = decltype(tile_to_shape(SmemAtomK{}, Shape<_64, HD, _2>{}));
  using TmaDKV = decltype(make_tma_copy(
      SM90_TMA_STORE{},
      make_tensor(make_gmem_ptr(static_cast<Element*>(nullptr)), ShapeQKV{}, StrideQKV{}),
      take<0, 2>(SmemLayoutKVStage{}), Shape<_64, HD>{}, _1{}));
  static_assert(!kTmaStoreDkv || (cute::cosize_v<SmemLayoutKVStage> <= cute::cosize_v<SmemLayoutQ> &&
                                  cute::cosize_v<SmemLayoutKVStage> <= cute::cosize_v<SmemLayoutdO>),
                "dK / dV stages fit the Q / dO buffers");

  static constexpr uint32_t kTmaBytesQ = kBlockM * kHeadDim * sizeof(Element) + kBlockM * sizeof(float);
  static constexpr uint32_t kTmaBytesKV = 2 * kBlockN * kHeadDim * sizeof(Element);
  static constexpr uint32_t kTmaBytesdO = kTmaBytesQ;
  static constexpr int kDqFloats = kBlockM * kHeadDim;  // one dQ tile in the accumulator
  static constexpr int kDqSliceFloats = kDqFloats / kDqSlices;  // ... in kDqSlices consecutive slices
  static_assert(kDqSliceFloats % (4 * kNumMmaThreads) == 0, "dQ slice in float4 per thread");
  // A slice is handed to the writer per warpgroup (its own barrier pair), so
  // each warpgroup's part is contiguous, in smem_dq and in the accumulator:
  // float4 k of consumer thread t at (t / 128) * part + k * 128 + t % 128.
  static constexpr int kDqPartFloats = kDqSliceFloats / kNumMmaWarpGroups;
  __host__ __device__ static constexpr int dq_float4_index(int k, int tidx) {
    return (tidx / 128) * (kDqPartFloats / 4) + k * 128 + tidx % 128;
  }
  // tables of masked query intervals per key: one per warpgroup that holds
  // the key (kSplitD: both hold all 64 keys)
  static constexpr int kIvTables = kSplitD ? 2 : 1;

  // deterministic mode: the add order's successor of each visited block,
  // scanned ahead by warp 2 (sm90/bwd/dq_order.cuh)
  static constexpr int kOrderSlots = 8;
  struct OrderRing {
    int32_t target[kOrderSlots];
    alignas(8) uint64_t full[kOrderSlots];   // posted (arrival 1)
    alignas(8) uint64_t empty[kOrderSlots];  // read by the writer (arrival 1)
  };

  using PipelineQ = cutlass::PipelineTmaAsync<kStages>;
  using PipelinedO = cutlass::PipelineTmaAsync<kStagesDo>;

  struct SharedStorage {
    cute::array_aligned<Element, cute::cosize_v<SmemLayoutK>, 1024> smem_k;
    cute::array_aligned<Element, cute::cosize_v<SmemLayoutK>, 1024> smem_v;
    cute::array_aligned<Element, cute::cosize_v<SmemLayoutQ>, 1024> smem_q;
    cute::array_aligned<Element, cute::cosize_v<SmemLayoutdO>, 1024> smem_do;
    cute::array_aligned<Element, cute::cosize_v<SmemLayoutdS>, 1024> smem_ds;
    cute::array_aligned<Element, kPElems, (kSplitD ? 1024 : 16)> smem_p;  // P^T, kSplitD only
    cute::array_aligned<float, kDqSliceFloats, 128> smem_dq;
    cute::array_aligned<float, kBlockM * kStages, 128> smem_lse;      // log2-domain lse per Q stage
    cute::array_aligned<float, kBlockM * kStagesDo, 128> smem_delta;  // delta per dO stage
    // per key of the block: masked query rows [x, y) and [z, w) for the current
    // head (each consumer thread writes and reads back only its own keys, in
    // its warpgroup's table)
    cute::array_aligned<int4, kBlockN * kIvTables, 128> smem_iv;
    typename PipelineQ::SharedStorage pipe_q;
    typename PipelinedO::SharedStorage pipe_do;
    alignas(8) uint64_t bar_kv;  // K and V of the CTA's key block (arrival 1 + tx)
    OrderRing order;
  };
  static constexpr int kSmemBytes = int(sizeof(SharedStorage));
  static_assert(kSmemBytes <= 227 * 1024, "shared memory");

  // named barriers (CUTLASS adds its reserved count to these ids: 0-7 are ours)
  static constexpr int kBarDqEmpty = 0;    // + warpgroup: the writer is done reading its dQ part (128 + 32)
  static constexpr int kBarDs = 2;         // both consumer warpgroups wrote their dS half (256)
  static constexpr int kBarDqFull = 3;     // + warpgroup: its dQ part is in smem_dq (128 + 32)
  static constexpr int kBarPdsFree = 5;    // kSplitD: both warpgroups done reading P^T / dS^T (256)
  static constexpr int kBarDkvStaged = 6;  // + warpgroup: its dK / dV rows are in smem (128)
  static constexpr int kDqPartThreads = 128 + 32;  // a consumer warpgroup and the dQ writer
  static_assert(kNumMmaWarpGroups == 2 && kBarDqEmpty + 1 < kBarDs && kBarDqFull + 1 < kBarPdsFree &&
                    kBarDkvStaged + 1 < 8,
                "one barrier id per warpgroup, within CUTLASS's 8 user ids");
};

template <typename Traits>
struct BwdKernelParams {
  typename Traits::TmaQ tma_q, tma_do;
  typename Traits::TmaK tma_k, tma_v;
  typename Traits::TmaDKV tma_dk, tma_dv;  // kTmaStoreDkv
  typename Traits::ShapeQKV shape_q, shape_k;

  void* dk;
  void* dv;
  int64_t dk_batch_stride, dk_row_stride, dk_head_stride;
  int64_t dv_batch_stride, dv_row_stride, dv_head_stride;

  // scratch (padded to m_blocks * kBlockM rows per (b, h))
  const float* lse_log2;  // lse * log2(e); +inf for padding rows and rows with lse = -inf
  const float* delta;     // rowsum(dO * O); 0 for padding rows
  float* dq_acc;          // [b * H + h][m_block][kDqFloats] in consumer-thread order
  int32_t* sem;           // [b * H + h][m_block], deterministic mode
  int32_t* dq_state;      // [b * H + h][m_block]: visits that claimed the tile | kDqZeroed
  int32_t* last_visible;  // [b * mask heads + hm][m_block]: deterministic mode with a mask, else null

  // mask
  const int32_t* startend;  // nullptr: no mask tensor
  int32_t ncols, mask_heads;
  int64_t mask_batch_stride, mask_head_stride;
  const TileBounds* bounds;  // prep/mask_bounds.cu workspace, [b][hm][n_tiles64]
  int32_t n_tiles64;
  BlockMaskView block_mask;  // Paddle's block_mask (blocks == nullptr: none)
  // the block mask by key column: [b][block-mask head][128-key block][word],
  // bit i of word w = block row 32 w + i kept (pack_block_mask_columns)
  const uint32_t* block_bits;
  int32_t block_words;

  int32_t batch, num_heads, num_heads_k, seqlen_q, seqlen_k, m_blocks;
  bool causal, deterministic;
  float softmax_scale, scale_log2;
};

}  // namespace bwd
}  // namespace sm90
}  // namespace cuda
}  // namespace flashmask
