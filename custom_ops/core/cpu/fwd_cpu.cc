// CPU forward: one task per (batch, head, query tile); online softmax over the
// key tiles the mask leaves, fp32 accumulation.
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
struct FwdScratch {
  FwdScratch(int dpad, int dvpad)
      : q(kBlockM * dpad), kt(dpad * kBlockN), v(kBlockN * dvpad), s(kBlockM * kBlockN),
        acc(kBlockM * dvpad), row_max(kBlockM), row_sum(kBlockM) {}
  std::vector<float> q, kt, v, s, acc, row_max, row_sum;
};

// max that keeps a NaN (std::max drops it): a row with a NaN score must give
// NaN, not pass for a fully masked row.
inline float nan_max(float a, float b) { return (a != a || b != b) ? NAN : std::max(a, b); }

// Online-softmax update of one row with the scores s[0, cols_pad); turns s
// into the (undropped) probabilities and returns the rescale factor of acc.
inline float softmax_update(float* s, int cols_pad, float& row_max, float& row_sum) {
  float tile_max = kNegInf;
  for (int c = 0; c < cols_pad; ++c) tile_max = nan_max(tile_max, s[c]);
  const float new_max = nan_max(row_max, tile_max);
  if (new_max == kNegInf) {  // nothing visible yet in this row
    std::fill(s, s + cols_pad, 0.f);
    return 1.f;
  }
  const float alpha = row_max == kNegInf ? 0.f : std::exp(row_max - new_max);
  row_sum = row_sum * alpha + exp_shifted(s, cols_pad, new_max);  // masked (-inf) -> 0
  row_max = new_max;
  return alpha;
}

// log(row_sum * exp(row_max) + exp(sink)), with sink = -inf for none; -inf
// when both terms are empty; NaN for a NaN row_sum.
inline float row_lse(float row_max, float row_sum, float sink) {
  if (row_sum == 0.f) return sink;
  if (sink == kNegInf) return row_max + std::log(row_sum);
  const float m = std::max(row_max, sink);
  return m + std::log(row_sum * std::exp(row_max - m) + std::exp(sink - m));
}

void forward_task(const FwdParams& p, const MaskTiles& tiles, int b, int h, int m_tile,
                  FwdScratch& w) {
  const int D = p.head_dim, dpad = round_up(D, kGemmCols);
  const int Dv = value_head_dim(p), dvpad = round_up(Dv, kGemmCols);
  const int group = p.num_heads / p.num_heads_k, hk = h / group;
  const int hm = tiles.mask_head(h);
  const int shift = p.seqlen_k - p.seqlen_q;
  const int r0 = m_tile * kBlockM, r1 = std::min(r0 + kBlockM, p.seqlen_q);
  const int rows = r1 - r0, rows_pad = round_up(rows, kGemmRows);

  load_rows(p.q, p.dtype, b * p.q_batch_stride + r0 * p.q_row_stride + h * p.q_head_stride,
            p.q_row_stride, rows, rows_pad, D, p.softmax_scale, w.q.data(), dpad);
  std::fill(w.acc.begin(), w.acc.end(), 0.f);
  std::fill(w.row_max.begin(), w.row_max.end(), kNegInf);
  std::fill(w.row_sum.begin(), w.row_sum.end(), 0.f);

  // Causal: the last visible key column of this tile's last row.
  const int col_end = p.causal ? std::min(p.seqlen_k, std::max(0, r1 + shift)) : p.seqlen_k;
  const int n_tiles = (col_end + kBlockN - 1) / kBlockN;
  for (int n_tile = 0; n_tile < n_tiles; ++n_tile) {
    const int c0 = n_tile * kBlockN, c1 = std::min(c0 + kBlockN, p.seqlen_k);
    const int cols = c1 - c0;
    const TileKind kind = tiles.classify(b, h, n_tile, r0, r1);
    if (kind == TileKind::kFullyMasked) continue;

    const int64_t k_first = b * p.k_batch_stride + c0 * p.k_row_stride + hk * p.k_head_stride;
    const int64_t v_first = b * p.v_batch_stride + c0 * p.v_row_stride + hk * p.v_head_stride;
    load_rows_transposed(p.k, p.dtype, k_first, p.k_row_stride, cols, kBlockN, D, w.kt.data(),
                         kBlockN);
    load_rows(p.v, p.dtype, v_first, p.v_row_stride, cols, kBlockN, Dv, 1.f, w.v.data(), dvpad);

    std::fill(w.s.begin(), w.s.end(), 0.f);
    gemm_acc(rows_pad, kBlockN, D, w.q.data(), dpad, 1, w.kt.data(), kBlockN, w.s.data(), kBlockN);
    mask_score_tile(w.s.data(), kBlockN, rows, cols, kBlockN, r0, c0, tiles, b, hm,
                    kind == TileKind::kPartial, p.causal, shift);
    for (int r = 0; r < rows; ++r) {
      const float alpha =
          softmax_update(w.s.data() + r * kBlockN, kBlockN, w.row_max[r], w.row_sum[r]);
      if (alpha != 1.f)
        for (int d = 0; d < dvpad; ++d) w.acc[r * dvpad + d] *= alpha;
    }
    for (int r = rows; r < rows_pad; ++r)
      std::fill(w.s.begin() + r * kBlockN, w.s.begin() + (r + 1) * kBlockN, 0.f);
    if (p.dropout_p > 0.f) dropout_tile(w.s.data(), kBlockN, rows, cols, r0, c0, b, h, p);
    gemm_acc_zero_safe(all_finite(w.v.data(), int64_t(cols) * dvpad), rows_pad, dvpad, kBlockN,
                       w.s.data(), kBlockN, 1, w.v.data(), dvpad, w.acc.data(), dvpad);
  }

  // Rows that saw no key (masked everywhere) give 0, and lse = -inf, or the
  // sink's logit when there is one (its term alone is the denominator). A NaN
  // sum (a NaN score) stays NaN in out and lse.
  const float sink = p.learnable_sink != nullptr ? p.learnable_sink[h] : kNegInf;
  for (int r = 0; r < rows; ++r) {
    const float l = w.row_sum[r], lse = row_lse(w.row_max[r], l, sink);
    // acc holds values weighted by exp(s - row_max): out = acc * exp(row_max - lse),
    // which is acc / l without a sink.
    const float norm = l == 0.f ? 0.f : sink == kNegInf ? 1.f / l : std::exp(w.row_max[r] - lse);
    for (int d = 0; d < dvpad; ++d) w.acc[r * dvpad + d] *= norm;
    p.softmax_lse[(static_cast<int64_t>(b) * p.num_heads + h) * p.seqlen_q + r0 + r] = lse;
  }
  store_rows(p.out, p.dtype, b * p.o_batch_stride + r0 * p.o_row_stride + h * p.o_head_stride,
             p.o_row_stride, rows, Dv, w.acc.data(), dvpad, 1.f);
}

}  // namespace

void flashmask_fwd(const FwdParams& p) {
  if (p.batch == 0 || p.num_heads == 0 || p.seqlen_q == 0) return;
  const MaskTiles tiles(p, kBlockN);
  const int m_tiles = (p.seqlen_q + kBlockM - 1) / kBlockM;
  const int64_t tasks = static_cast<int64_t>(p.batch) * p.num_heads * m_tiles;
  const int threads = p.num_threads > 0 ? p.num_threads : omp_get_max_threads();
#pragma omp parallel num_threads(threads)
  {
    FwdScratch scratch(round_up(p.head_dim, kGemmCols), round_up(value_head_dim(p), kGemmCols));
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; ++t) {
      const int m_tile = static_cast<int>(t % m_tiles);
      const int h = static_cast<int>((t / m_tiles) % p.num_heads);
      const int b = static_cast<int>(t / (static_cast<int64_t>(m_tiles) * p.num_heads));
      forward_task(p, tiles, b, h, m_tile, scratch);
    }
  }
}

}  // namespace cpu
}  // namespace flashmask
