// Host unit test (no GPU) of the sm90 mask logic in mask.cuh, against the
// element-wise definition in mask_bounds.h, over random FlashMask layouts:
//   * block_kind (merged prep TileBounds, computed here as prep/mask_bounds.cu does):
//     fully masked => every element masked; unmasked => none masked;
//     n_block_end: no unmasked element at or past it;
//   * encode_column + the 2-interval test (the backward's) and the row bits
//     of row_mask_word (the forward's) == element_masked, for every (row,
//     column) of the partial blocks, keys past seqlen_k included;
//   * causal-only blocks: the consumer's one-compare rule == element_masked;
//   * BlockMaskView offsets past 2^31 (int64).
//   nvcc -std=c++17 -I<repo>/custom_ops -I<cutlass>/include mask_host_test.cu -o t && ./t
#include <cstdio>
#include <random>
#include <vector>

#include "core/cuda/sm90/common/mask.cuh"

using namespace flashmask;
using namespace flashmask::cuda::sm90;

static long causal_only_blocks = 0;

template <int BM, int BN>
static long run_case(std::mt19937& rng, int sq, int sk, bool causal, int ncols, int pattern) {
  std::uniform_int_distribution<int> U(0, sq);
  std::vector<int32_t> cols(size_t(sk) * (ncols ? ncols : 1));
  for (int j = 0; j < sk; ++j) {
    int lts = U(rng), lte = U(rng), uts = U(rng), ute = U(rng);
    if (lte < lts) std::swap(lts, lte);
    if (ute < uts) std::swap(uts, ute);
    if (pattern == 1) {  // documents of 100 keys
      const int d0 = (j / 100) * 100, d1 = std::min(sq, d0 + 100);
      lts = d1; lte = sq; uts = 0; ute = std::min(d0, sq);
    }
    int32_t* c = &cols[size_t(j) * (ncols ? ncols : 1)];
    if (ncols == 1) c[0] = lts;
    if (ncols == 2) { c[0] = lts; c[1] = causal ? lte : ute; }
    if (ncols == 4) { c[0] = lts; c[1] = lte; c[2] = uts; c[3] = ute; }
  }
  const int32_t* col0 = ncols ? cols.data() : nullptr;
  // prep/mask_bounds.cu: per 64-key tile min/max of the decoded bounds
  const int n64 = (sk + 63) / 64;
  std::vector<TileBounds> tb(n64, empty_tile_bounds());
  for (int j = 0; j < sk; ++j)
    extend_tile_bounds(tb[j / 64], col0 ? decode_column(col0 + size_t(j) * ncols, ncols, causal, sq)
                                        : ColumnBounds{sq, sq, 0, 0});
  MaskGeom g{ncols ? tb.data() : nullptr, n64, sq, sk, sk - sq, causal};
  const int shift = sk - sq;
  auto masked_ref = [&](int i, int j) {
    if (j >= sk) return true;
    const ColumnBounds c = col0 ? decode_column(col0 + size_t(j) * ncols, ncols, causal, sq) : ColumnBounds{sq, sq, 0, 0};
    return element_masked(c, i, j, causal, shift);
  };
  long errors = 0;
  for (int m = 0; m * BM < sq; ++m) {
    const int r0 = m * BM, r1 = std::min(r0 + BM, sq);
    const int n_end = n_block_end<BN>(g, r1);
    for (int n = 0; n * BN < sk; ++n) {
      const int kind = n < n_end ? block_kind<BN>(g, tb.data(), r0, r1, n) : 0;
      bool any_visible = false, any_masked = false;
      for (int i = r0; i < r1; ++i)
        for (int j = n * BN; j < n * BN + BN; ++j) {
          const bool mk = masked_ref(i, j);
          any_masked |= mk;
          any_visible |= !mk;
        }
      if (kind == kBlockFullyMasked && any_visible) ++errors;  // skipped a visible key
      if (kind == kBlockUnmasked && any_masked) ++errors;  // "unmasked" with a masked element
      if (kind == kBlockCausalOnly) {
        ++causal_only_blocks;
        for (int i = r0; i < r1; ++i)
          for (int j = n * BN; j < n * BN + BN; ++j)  // apply_causal_mask's rule
            if ((j - n * BN > (i - r0) + r0 + shift - n * BN) != masked_ref(i, j)) ++errors;
      }
      if (kind == kBlockPartial) {
        for (int c = 0; c < BN; ++c) {
          const int j = n * BN + c;
          int32_t raw[4];
          load_column(col0, ncols, j, g, raw);
          const int4 cb = encode_column(raw, col0 != nullptr, ncols, j, g);
          for (int i = r0; i < r0 + BM; ++i) {  // the kernel tests padding rows too
            const bool got = (i >= cb.x && i < cb.y) || (i >= cb.z && i < cb.w);
            const int base = r0 + (i - r0) / 32 * 32;
            const bool bit = (row_mask_word(cb, base) >> (i - base)) & 1u;
            if (i < sq && (got != masked_ref(i, j) || bit != got)) ++errors;
          }
        }
      }
    }
  }
  return errors;
}

int main() {
  std::mt19937 rng(7);
  long errors = 0;
  int cases = 0;
  const int sizes[][2] = {{128, 128}, {300, 300}, {257, 513}, {513, 257}, {1000, 1000}, {64, 700}, {700, 64}};
  for (auto& sz : sizes)
    for (int causal = 0; causal < 2; ++causal)
      for (int ncols : {0, 1, 2, 4}) {
        if (causal && ncols == 4) continue;
        if (!causal && ncols == 1) continue;
        for (int pattern = 0; pattern < 2; ++pattern) {
          const long e128 = run_case<128, 128>(rng, sz[0], sz[1], causal, ncols, pattern);
          const long e64 = run_case<128, 64>(rng, sz[0], sz[1], causal, ncols, pattern);
          if (e128 || e64)
            std::printf("FAIL sq=%d sk=%d causal=%d ncols=%d pattern=%d: %ld (BN=128) %ld (BN=64) errors\n", sz[0],
                        sz[1], causal, ncols, pattern, e128, e64);
          errors += e128 + e64;
          cases += 2;
        }
      }
  // block_mask offsets past 2^31 (Sq = Sk = 2^31 - 2^16: 16.8M x 16.8M blocks): the last
  // block's, and the first one whose int32 product wrapped (46341 x 46342 blocks)
  {
    const int last = 2147418112 - 1, cols = last / kBlockMaskSize + 1;
    const BlockMaskView longest{nullptr, 1, cols, 0, 0}, first_wrap{nullptr, 1, 46342, 0, 0};
    const int64_t want = int64_t(last / kBlockMaskSize) * cols + last / kBlockMaskSize;
    const int64_t got = longest.offset(last, last), wrap = first_wrap.offset(46341 * kBlockMaskSize, 0);
    if (got != want || wrap != int64_t(46341) * 46342) {
      std::printf("FAIL block_mask offset: %lld (want %lld), %lld\n", (long long)got, (long long)want,
                  (long long)wrap);
      ++errors;
    }
  }
  std::printf("%d cases, %ld causal-only blocks, %ld errors\n", cases, causal_only_blocks, errors);
  return errors || causal_only_blocks == 0 ? 1 : 0;
}
