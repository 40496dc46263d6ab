// Host helpers shared by the standalone device checkers of the sm90 forward
// (sm90_fwd/check_fwd_sm90.cu) and backward (sm90_bwd/check_bwd_sm90.cu): CUDA
// error exit, a watchdog around synchronisation (a pipeline-phase bug is a
// hang), element conversions (core/numeric.h) and the column-mask patterns.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/flashmask_params.h"
#include "core/mask_bounds.h"
#include "core/numeric.h"

#define CK(x)                                                                              \
  do {                                                                                     \
    cudaError_t e_ = (x);                                                                  \
    if (e_ != cudaSuccess) {                                                               \
      std::printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__); \
      std::fflush(stdout);                                                                 \
      std::_Exit(2);                                                                       \
    }                                                                                      \
  } while (0)

// CHECK_WATCHDOG_S=<seconds> raises every watchdog limit to at least that
// (e.g. under compute-sanitizer, which is far slower than the plain run).
static double watchdog_s(double limit_s) {
  const char* e = std::getenv("CHECK_WATCHDOG_S");
  const double v = e ? std::atof(e) : 0.0;
  return v > limit_s ? v : limit_s;
}

// Wait for the default stream; report a hang (exit 3) or an error (exit 2)
// instead of burning the whole device-call timeout.
static void sync_or_die(const std::string& what, double limit_s) {
  limit_s = watchdog_s(limit_s);
  const auto t0 = std::chrono::steady_clock::now();
  while (true) {
    const cudaError_t e = cudaStreamQuery(nullptr);
    if (e == cudaSuccess) return;
    if (e != cudaErrorNotReady) {
      std::printf("CUDA error %s after %s\n", cudaGetErrorString(e), what.c_str());
      std::fflush(stdout);
      std::_Exit(2);
    }
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > limit_s) {
      std::printf("HANG (> %.0f s) in %s\n", limit_s, what.c_str());
      std::fflush(stdout);
      std::_Exit(3);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

static float to_f(uint16_t x, flashmask::DType t) {
  return t == flashmask::DType::kBFloat16 ? flashmask::bf16_to_float(x) : flashmask::fp16_to_float(x);
}
static uint16_t from_f(float f, flashmask::DType t) {
  return t == flashmask::DType::kBFloat16 ? flashmask::float_to_bf16(f) : flashmask::float_to_fp16(f);
}

// Column mask tensor [b][mask_heads][sk][ncols] for a case's layout and
// pattern: 0 random bands, 1 documents, 2 share-question-like (lower band to
// the end, no upper band), 3 like 0 with every 7th column masked for every row.
template <class Case>
static std::vector<int32_t> make_mask(const Case& c, std::mt19937& rng) {
  std::vector<int32_t> m(size_t(c.b) * c.mask_heads * c.sk * c.ncols);
  std::uniform_int_distribution<int> U(0, c.sq);
  for (int bb = 0; bb < c.b; ++bb)
    for (int hm = 0; hm < c.mask_heads; ++hm) {
      const int doc = 64 + 37 * ((bb + hm) % 5);
      for (int j = 0; j < c.sk; ++j) {
        int32_t* col = &m[((size_t(bb) * c.mask_heads + hm) * c.sk + j) * c.ncols];
        int lts, lte, uts, ute;
        if (c.pattern == 1) {  // documents: rows of later documents / earlier ones masked
          const int d0 = (j / doc) * doc, d1 = std::min(c.sq, d0 + doc);
          lts = d1; lte = c.sq; uts = 0; ute = std::min(d0, c.sq);
        } else if (c.pattern == 3 && (j % 7) == 3) {  // columns masked for every row
          lts = 0; lte = c.sq; uts = 0; ute = c.sq;
        } else {
          lts = U(rng); lte = U(rng); if (lte < lts) std::swap(lts, lte);
          uts = U(rng); ute = U(rng); if (ute < uts) std::swap(uts, ute);
          if (c.pattern == 2) { lte = c.sq; uts = 0; }
        }
        if (c.ncols == 1) col[0] = lts;
        else if (c.ncols == 2) { col[0] = lts; col[1] = c.causal ? lte : ute; }
        else if (c.ncols == 4) { col[0] = lts; col[1] = lte; col[2] = uts; col[3] = ute; }
      }
    }
  return m;
}

// Column 0 of the mask columns serving (batch bb, query head hh) of a checker
// case, nullptr without a mask: mask head 0, hh, or hh's key head (the
// kernels' mask_head_of). Case needs h, hk, sk, ncols, mask_heads.
template <class Case>
static const int32_t* mask_columns(const Case& c, const std::vector<int32_t>& mask, int bb, int hh) {
  if (!c.ncols) return nullptr;
  const int hm = c.mask_heads == 1 ? 0 : (c.mask_heads == c.h ? hh : hh / (c.h / c.hk));
  return &mask[(size_t(bb) * c.mask_heads + hm) * c.sk * c.ncols];
}

// Useful (unmasked) (row, key) pairs of a checker case over every (batch,
// head): per key column, sq minus the union of its masked rows [lts, lte),
// [uts, ute) and causal [0, j - shift), clipped to [0, sq). Case needs
// b, h, hk, sq, sk, ncols, mask_heads, causal.
template <class Case>
static double unmasked_pairs(const Case& c, const std::vector<int32_t>& mask) {
  const int shift = c.sk - c.sq;
  double pairs = 0;
  for (int bb = 0; bb < c.b; ++bb)
    for (int hh = 0; hh < c.h; ++hh) {
      const int32_t* mcol = mask_columns(c, mask, bb, hh);
      for (int j = 0; j < c.sk; ++j) {
        const flashmask::ColumnBounds cb =
            mcol ? flashmask::decode_column(mcol + size_t(j) * c.ncols, c.ncols, c.causal, c.sq)
                 : flashmask::ColumnBounds{c.sq, c.sq, 0, 0};
        std::pair<int, int> iv[3] = {{cb.lts, cb.lte}, {cb.uts, cb.ute}, {0, c.causal ? j - shift : 0}};
        for (auto& x : iv) {
          x.first = std::max(0, std::min(x.first, c.sq));
          x.second = std::max(x.first, std::min(x.second, c.sq));
        }
        std::sort(iv, iv + 3);
        int covered = 0, end = 0;
        for (auto& x : iv) {
          const int lo = std::max(x.first, end);
          if (x.second > lo) {
            covered += x.second - lo;
            end = x.second;
          }
        }
        pairs += c.sq - covered;
      }
    }
  return pairs;
}
