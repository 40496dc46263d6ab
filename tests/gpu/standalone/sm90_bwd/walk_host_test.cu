// Host unit test (no GPU) of the backward's column walk: the jump over fully
// masked query blocks (next_candidate_block) must visit exactly the blocks a
// plain loop over every query block visits, with the same kinds, for random
// per-key-block TileBounds (both bands, empty bands, bands past seqlen_q),
// causal or not, Sq != Sk, both block heights.
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
  int errors = 0;
  for (int n = 0; n < n_blocks; ++n) {
    const int m_begin = m_block_begin<BM, BN>(n, sq, sk, causal);
    std::vector<std::pair<int, int>> plain, walked;
    for (int m = m_begin; m < m_blocks; ++m) {
      const int kind = block_kind_col<BM, BN>(t, m, n, sq, sk, causal);
      if (kind != static_cast<int>(TileKind::kFullyMasked)) plain.emplace_back(m, kind);
    }
    for (int m = m_begin; m < m_blocks;) {  // walk_blocks' loop
      const int kind = block_kind_col<BM, BN>(t, m, n, sq, sk, causal);
      if (kind == static_cast<int>(TileKind::kFullyMasked)) {
        const int next = next_candidate_block<BM>(t, m, sq);
        if (next <= m) {
          std::printf("no progress at m=%d\n", m);
          return errors + 1;
        }
        m = next;
        continue;
      }
      walked.emplace_back(m, kind);
      ++m;
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
    const int sq = 1 + int(rng() % 1500), sk = 1 + int(rng() % 1500);
    const bool causal = rng() % 2;
    errors += check<64, 128>(rng, sq, sk, causal);
    errors += check<128, 128>(rng, sq, sk, causal);
    cases += 2;
  }
  std::printf("walk_host_test: %ld cases, %ld mismatching key blocks\n", cases, errors);
  return errors == 0 ? 0 : 1;
}
