// Host unit test (no GPU) of the backward's column walk (walk_head, the loop
// of walk_blocks): its runs of blocks of one kind (kind_run_end; fully
// masked runs are jumped over whole) and its jumps over block rows the packed block mask drops
// (32 per word) must visit exactly the blocks a plain loop over every query
// block visits, with the same kinds, for random per-key-block TileBounds (both
// bands, empty bands, bands past seqlen_q), random block-mask columns (dense,
// sparse, whole words dropped, none), causal or not, Sq != Sk, both block
// heights, up to 12K query rows (more than one word).
//   nvcc -std=c++17 --expt-relaxed-constexpr -I<repo>/custom_ops -I<cutlass include> walk_host_test.cu -o t && ./t
#include <cstdio>
#include <random>
#include <vector>

#include "core/cuda/sm90/bwd/mask.cuh"

using namespace flashmask;
using namespace flashmask::cuda::sm90::bwd;

template <int BM, int BN>
static int check(std::mt19937& rng, int sq, int sk, bool causal) {
  std::uniform_int_distribution<int> row(0, sq + BM);  // past seqlen_q too
  auto band = [&](int& lo_min, int& lo_max, int& hi_min, int& hi_max) {
    int a = row(rng), b = row(rng), c = row(rng), d = row(rng);
    if (a > b) std::swap(a, b);
    if (c > d) std::swap(c, d);
    lo_min = a, lo_max = b, hi_min = c, hi_max = d;  // start in [a, b], end in [c, d]
  };
  TileBounds t;
  band(t.lts_min, t.lts_max, t.lte_min, t.lte_max);
  band(t.uts_min, t.uts_max, t.ute_min, t.ute_max);
  if (rng() % 4 == 0) t.uts_min = t.uts_max = t.ute_min = t.ute_max = 0;  // no upper band
  const int m_blocks = (sq + BM - 1) / BM, n_blocks = (sk + BN - 1) / BN;
  // the head's packed block-mask column (bit i of word w: block row 32 w + i)
  const int rows = (sq + kBlockMaskSize - 1) / kBlockMaskSize, words = (rows + 31) / 32;
  std::vector<uint32_t> column(words);
  const int style = int(rng() % 4);  // 0: no block mask, 1: dense, 2: sparse, 3: sparse with a word dropped
  for (uint32_t& w : column) {
    w = 0;
    for (int i = 0; i < 32; ++i)
      if (rng() % 100 < (style == 1 ? 80u : 8u)) w |= 1u << i;
  }
  if (style == 3) column[rng() % words] = 0;
  const uint32_t* bits = style == 0 ? nullptr : column.data();
  auto kept = [&](int m) {
    const int r = m * BM / kBlockMaskSize;
    return bits == nullptr || ((bits[r / 32] >> (r % 32)) & 1u) != 0;
  };
  int errors = 0;
  for (int n = 0; n < n_blocks; ++n) {
    const int m_begin = m_block_begin<BM, BN>(n, sq, sk, causal);
    std::vector<std::pair<int, int>> plain, walked;
    for (int m = m_begin; m < m_blocks; ++m) {
      const int kind = block_kind_col<BM, BN>(t, m, n, sq, sk, causal);
      if (kind != static_cast<int>(TileKind::kFullyMasked) && kept(m)) plain.emplace_back(m, kind);
    }
    int last = -1;
    bool backwards = false;
    walk_head<BM, BN>(t, bits, m_begin, m_blocks, n, sq, sk, causal, [&](int m, int kind) {
      backwards |= m <= last;
      last = m;
      walked.emplace_back(m, kind);
    });
    if (backwards) {
      std::printf("the walk went backwards at n=%d\n", n);
      return errors + 1;
    }
    if (plain != walked) {
      if (errors < 5)
        std::printf("MISMATCH BM=%d sq=%d sk=%d causal=%d n=%d: plain %zu blocks, walked %zu\n", BM, sq, sk,
                    int(causal), n, plain.size(), walked.size());
      ++errors;
    }
  }
  return errors;
}

int main() {
  std::mt19937 rng(7);
  long cases = 0, errors = 0;
  for (int it = 0; it < 4000; ++it) {
    const int sq = 1 + int(rng() % (it % 8 == 0 ? 12000 : 1500)), sk = 1 + int(rng() % 1500);
    const bool causal = rng() % 2;
    errors += check<64, 128>(rng, sq, sk, causal);
    errors += check<128, 128>(rng, sq, sk, causal);
    errors += check<64, 64>(rng, sq, sk, causal);
    cases += 3;
  }
  std::printf("walk_host_test: %ld cases, %ld mismatching key blocks\n", cases, errors);
  return errors == 0 ? 0 : 1;
}
