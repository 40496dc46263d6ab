// CPU backward, in three race-free passes (so results never depend on thread
// timing):
//   1. delta[b, h, i] = rowsum(dO * O)
//   2. per (batch, head, query tile):   dQ = scale * sum_tiles dS K
//   3. per (batch, key head, key tile): dV = sum P_drop^T dO, dK = scale * sum dS^T Q,
//      summed over the query heads of the GQA group.
// with P = exp(scale * QK^T - lse), dS = P * (dropout(dO V^T) - delta). A
// learnable sink needs nothing more here: lse includes it, so P is already
// normalised over keys and sink; its own gradient is
//   dsink[h] = -sum_{b, i} exp(sink[h] - lse[b, h, i]) * delta[b, h, i].
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/cpu/flashmask_cpu.h"
#include "core/cpu/score_tile.h"
#include "core/cpu/tensor_io.h"
#include "core/cpu/tile_math.h"

namespace flashmask {
namespace cpu {
namespace {

// dpad: q/k head dim padded; dvpad: value head dim padded.
struct BwdScratch {
  BwdScratch(int dpad, int dvpad)
      : q(kBlockM * dpad), dout(kBlockM * dvpad), kt(dpad * kBlockN), vt(dvpad * kBlockN),
        k(kBlockN * dpad), p(kBlockM * kBlockN), p_drop(kBlockM * kBlockN),
        dp(kBlockM * kBlockN), acc_a(kBlockN * dpad), acc_b(kBlockN * dvpad) {}
  std::vector<float> q, dout, kt, vt, k, p, p_drop, dp, acc_a, acc_b;
  // Whether the loaded tiles are free of NaN/Inf (see gemm_acc_zero_safe).
  bool q_finite = true, dout_finite = true, k_finite = true;
};

struct RowStats {
  const float* lse;    // [rows] of this (b, h, tile)
  const float* delta;  // [rows]
};

// P and dS of one (query tile, key tile) pair, from w.q, w.dout, w.kt, w.vt.
// Leaves P (dropout applied) in w.p_drop and dS in w.dp.
void probs_and_dscores(const BwdParams& p, const MaskTiles& tiles, BwdScratch& w, int b, int h,
                       int hm, int r0, int rows, int rows_pad, int c0, int cols, bool partial,
                       const RowStats& stats) {
  const int D = p.head_dim, Dv = value_head_dim(p);
  const int shift = p.seqlen_k - p.seqlen_q;
  std::fill(w.p.begin(), w.p.end(), 0.f);
  gemm_acc(rows_pad, kBlockN, D, w.q.data(), round_up(D, kGemmCols), 1, w.kt.data(), kBlockN,
           w.p.data(), kBlockN);
  mask_score_tile(w.p.data(), kBlockN, rows, cols, kBlockN, r0, c0, tiles, b, hm, partial,
                  p.causal, shift);
  for (int r = 0; r < rows_pad; ++r) {
    float* row = w.p.data() + r * kBlockN;
    const float lse = r < rows ? stats.lse[r] : kNegInf;
    if (lse == kNegInf) {  // row masked everywhere (or padding): no probability
      std::fill(row, row + kBlockN, 0.f);
      continue;
    }
    if (lse != lse) {  // a NaN row: NaN on its unmasked pairs only
      for (int c = 0; c < kBlockN; ++c) row[c] = row[c] == kNegInf ? 0.f : NAN;
      continue;
    }
    exp_shifted(row, kBlockN, lse);
  }
  std::copy(w.p.begin(), w.p.end(), w.p_drop.begin());
  std::fill(w.dp.begin(), w.dp.end(), 0.f);
  gemm_acc(rows_pad, kBlockN, Dv, w.dout.data(), round_up(Dv, kGemmCols), 1, w.vt.data(), kBlockN,
           w.dp.data(), kBlockN);
  if (p.dropout_p > 0.f) {
    dropout_tile(w.p_drop.data(), kBlockN, rows, cols, r0, c0, b, h, p);
    dropout_tile(w.dp.data(), kBlockN, rows, cols, r0, c0, b, h, p);
  }
  for (int r = 0; r < rows_pad; ++r) {
    const float delta = r < rows ? stats.delta[r] : 0.f;
    for (int c = 0; c < kBlockN; ++c) {
      const int i = r * kBlockN + c;
      // Masked pairs stay exactly 0, whatever dP holds (a NaN in V).
      w.dp[i] = w.p[i] == 0.f ? 0.f : w.p[i] * (w.dp[i] - delta);
    }
  }
}

int64_t row_index(const BwdParams& p, int b, int h, int r) {
  return (static_cast<int64_t>(b) * p.num_heads + h) * p.seqlen_q + r;
}

void load_query_side(const BwdParams& p, BwdScratch& w, int b, int h, int r0, int rows,
                     int rows_pad) {
  const int D = p.head_dim, Dv = value_head_dim(p);
  load_rows(p.q, p.dtype, b * p.q_batch_stride + r0 * p.q_row_stride + h * p.q_head_stride,
            p.q_row_stride, rows, rows_pad, D, p.softmax_scale, w.q.data(), round_up(D, kGemmCols));
  load_rows(p.dout, p.dtype, b * p.o_batch_stride + r0 * p.o_row_stride + h * p.o_head_stride,
            p.o_row_stride, rows, rows_pad, Dv, 1.f, w.dout.data(), round_up(Dv, kGemmCols));
  w.q_finite = all_finite(w.q.data(), int64_t(rows) * round_up(D, kGemmCols));
  w.dout_finite = all_finite(w.dout.data(), int64_t(rows) * round_up(Dv, kGemmCols));
}

void load_key_side(const BwdParams& p, BwdScratch& w, int b, int hk, int c0, int cols,
                   bool with_k_rows) {
  const int D = p.head_dim, dpad = round_up(D, kGemmCols);
  const int64_t k_first = b * p.k_batch_stride + c0 * p.k_row_stride + hk * p.k_head_stride;
  const int64_t v_first = b * p.v_batch_stride + c0 * p.v_row_stride + hk * p.v_head_stride;
  load_rows_transposed(p.k, p.dtype, k_first, p.k_row_stride, cols, kBlockN, D, w.kt.data(),
                       kBlockN);
  load_rows_transposed(p.v, p.dtype, v_first, p.v_row_stride, cols, kBlockN, value_head_dim(p),
                       w.vt.data(), kBlockN);
  if (with_k_rows) {
    load_rows(p.k, p.dtype, k_first, p.k_row_stride, cols, kBlockN, D, 1.f, w.k.data(), dpad);
    w.k_finite = all_finite(w.k.data(), int64_t(cols) * dpad);
  }
}

void dq_task(const BwdParams& p, const MaskTiles& tiles, const std::vector<float>& delta, int b,
             int h, int m_tile, BwdScratch& w) {
  const int D = p.head_dim, dpad = round_up(D, kGemmCols);
  const int hk = h / (p.num_heads / p.num_heads_k), hm = tiles.mask_head(h);
  const int shift = p.seqlen_k - p.seqlen_q;
  const int r0 = m_tile * kBlockM, r1 = std::min(r0 + kBlockM, p.seqlen_q);
  const int rows = r1 - r0, rows_pad = round_up(rows, kGemmRows);
  const RowStats stats{p.softmax_lse + row_index(p, b, h, r0), delta.data() + row_index(p, b, h, r0)};

  load_query_side(p, w, b, h, r0, rows, rows_pad);
  std::fill(w.acc_a.begin(), w.acc_a.end(), 0.f);
  const int col_end = p.causal ? std::min(p.seqlen_k, std::max(0, r1 + shift)) : p.seqlen_k;
  const int n_tiles = (col_end + kBlockN - 1) / kBlockN;
  for (int n_tile = 0; n_tile < n_tiles; ++n_tile) {
    const int c0 = n_tile * kBlockN, c1 = std::min(c0 + kBlockN, p.seqlen_k);
    const TileKind kind = tiles.classify(b, h, n_tile, r0, r1);
    if (kind == TileKind::kFullyMasked) continue;
    load_key_side(p, w, b, hk, c0, c1 - c0, /*with_k_rows=*/true);
    probs_and_dscores(p, tiles, w, b, h, hm, r0, rows, rows_pad, c0, c1 - c0,
                      kind == TileKind::kPartial, stats);
    gemm_acc_zero_safe(w.k_finite, rows_pad, dpad, kBlockN, w.dp.data(), kBlockN, 1, w.k.data(),
                       dpad, w.acc_a.data(), dpad);
  }
  store_rows(p.dq, p.dtype, b * p.dq_batch_stride + r0 * p.dq_row_stride + h * p.dq_head_stride,
             p.dq_row_stride, rows, D, w.acc_a.data(), dpad, p.softmax_scale);
}

void dkdv_task(const BwdParams& p, const MaskTiles& tiles, const std::vector<float>& delta, int b,
               int hk, int n_tile, BwdScratch& w) {
  const int D = p.head_dim, dpad = round_up(D, kGemmCols);
  const int Dv = value_head_dim(p), dvpad = round_up(Dv, kGemmCols);
  const int group = p.num_heads / p.num_heads_k;
  const int shift = p.seqlen_k - p.seqlen_q;
  const int c0 = n_tile * kBlockN, c1 = std::min(c0 + kBlockN, p.seqlen_k), cols = c1 - c0;
  std::fill(w.acc_a.begin(), w.acc_a.end(), 0.f);  // dK (scaled Q folds in the scale)
  std::fill(w.acc_b.begin(), w.acc_b.end(), 0.f);  // dV
  load_key_side(p, w, b, hk, c0, cols, /*with_k_rows=*/false);
  // Causal: rows before c0 - shift see none of these columns.
  const int row_begin = p.causal ? std::max(0, c0 - shift) : 0;
  const int m_tiles = (p.seqlen_q + kBlockM - 1) / kBlockM;
  for (int h = hk * group; h < (hk + 1) * group; ++h) {
    const int hm = tiles.mask_head(h);
    for (int m_tile = row_begin / kBlockM; m_tile < m_tiles; ++m_tile) {
      const int r0 = m_tile * kBlockM, r1 = std::min(r0 + kBlockM, p.seqlen_q);
      const int rows = r1 - r0, rows_pad = round_up(rows, kGemmRows);
      const TileKind kind = tiles.classify(b, h, n_tile, r0, r1);
      if (kind == TileKind::kFullyMasked) continue;
      const RowStats stats{p.softmax_lse + row_index(p, b, h, r0),
                           delta.data() + row_index(p, b, h, r0)};
      load_query_side(p, w, b, h, r0, rows, rows_pad);
      probs_and_dscores(p, tiles, w, b, h, hm, r0, rows, rows_pad, c0, cols,
                        kind == TileKind::kPartial, stats);
      gemm_acc_zero_safe(w.dout_finite, kBlockN, dvpad, rows_pad, w.p_drop.data(), 1, kBlockN,
                         w.dout.data(), dvpad, w.acc_b.data(), dvpad);
      gemm_acc_zero_safe(w.q_finite, kBlockN, dpad, rows_pad, w.dp.data(), 1, kBlockN,
                         w.q.data(), dpad, w.acc_a.data(), dpad);
    }
  }
  store_rows(p.dk, p.dtype, b * p.dk_batch_stride + c0 * p.dk_row_stride + hk * p.dk_head_stride,
             p.dk_row_stride, cols, D, w.acc_a.data(), dpad, 1.f);
  store_rows(p.dv, p.dtype, b * p.dv_batch_stride + c0 * p.dv_row_stride + hk * p.dv_head_stride,
             p.dv_row_stride, cols, Dv, w.acc_b.data(), dvpad, 1.f);
}

// dsink[h] = -sum_{b, i} P_sink * delta with P_sink = exp(sink[h] - lse): the
// sink's probability, which a row's output scales by (1 - P_sink) through.
// One thread per head, in a fixed order: deterministic.
void sink_grad(const BwdParams& p, const std::vector<float>& delta, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int h = 0; h < p.num_heads; ++h) {
    double sum = 0.0;
    for (int b = 0; b < p.batch; ++b) {
      const int64_t row0 = row_index(p, b, h, 0);
      for (int i = 0; i < p.seqlen_q; ++i) {
        const float lse = p.softmax_lse[row0 + i];  // -inf only with a -inf sink and no key
        if (lse != kNegInf) sum += std::exp(p.learnable_sink[h] - lse) * delta[row0 + i];
      }
    }
    p.dsink[h] = static_cast<float>(-sum);
  }
}

}  // namespace

void flashmask_bwd(const BwdParams& p) {
  if (p.batch == 0 || p.num_heads == 0 || p.seqlen_q == 0 || p.seqlen_k == 0) return;
  const MaskTiles tiles(p, kBlockN);
  const int Dv = value_head_dim(p);
  const int threads = p.num_threads > 0 ? p.num_threads : omp_get_max_threads();

  const int64_t n_rows = static_cast<int64_t>(p.batch) * p.num_heads * p.seqlen_q;
  std::vector<float> delta(n_rows);
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t idx = 0; idx < n_rows; ++idx) {
    const int i = static_cast<int>(idx % p.seqlen_q);
    const int h = static_cast<int>((idx / p.seqlen_q) % p.num_heads);
    const int b = static_cast<int>(idx / (static_cast<int64_t>(p.seqlen_q) * p.num_heads));
    const int64_t o = b * p.o_batch_stride + i * p.o_row_stride + h * p.o_head_stride;
    float sum = 0.f;
    for (int d = 0; d < Dv; ++d)
      sum += load_scalar(p.out, p.dtype, o + d) * load_scalar(p.dout, p.dtype, o + d);
    delta[idx] = sum;
  }
  if (p.learnable_sink != nullptr) sink_grad(p, delta, threads);

  const int m_tiles = (p.seqlen_q + kBlockM - 1) / kBlockM;
  const int64_t dq_tasks = static_cast<int64_t>(p.batch) * p.num_heads * m_tiles;
  const int64_t dkdv_tasks = static_cast<int64_t>(p.batch) * p.num_heads_k * tiles.num_tiles();
#pragma omp parallel num_threads(threads)
  {
    BwdScratch scratch(round_up(p.head_dim, kGemmCols), round_up(Dv, kGemmCols));
#pragma omp for schedule(dynamic, 1) nowait
    for (int64_t t = 0; t < dq_tasks; ++t) {
      const int m_tile = static_cast<int>(t % m_tiles);
      const int h = static_cast<int>((t / m_tiles) % p.num_heads);
      const int b = static_cast<int>(t / (static_cast<int64_t>(m_tiles) * p.num_heads));
      dq_task(p, tiles, delta, b, h, m_tile, scratch);
    }
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < dkdv_tasks; ++t) {
      const int n_tile = static_cast<int>(t % tiles.num_tiles());
      const int hk = static_cast<int>((t / tiles.num_tiles()) % p.num_heads_k);
      const int b = static_cast<int>(t / (static_cast<int64_t>(tiles.num_tiles()) * p.num_heads_k));
      dkdv_task(p, tiles, delta, b, hk, n_tile, scratch);
    }
  }
}

}  // namespace cpu
}  // namespace flashmask
