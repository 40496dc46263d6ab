// Standalone device check of the sm90a forward (no torch, no Paddle): random
// q/k/v and FlashMask column masks, prep/mask_bounds.cu's mask preprocessing, then
// sm90::run_fwd, compared against a dense CPU reference (fp32 math on the
// bf16/fp16-rounded inputs): out and lse, including fully masked rows
// (out 0, lse -inf). Then a timing of a few large cases.
//   nvcc ... check_fwd_sm90.cu entry.o fwd_sm90_*.o mask_bounds.o -o check
//   ./check [--quick] [--no-bench] [--bench-only] [--case i]   (exit 3: hang, 4: no case i)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/flashmask_params.h"
#include "core/mask_bounds.h"
#include "core/cuda/sm90/fwd/entry.h"
#include "../check_common.h"
#include "core/cuda/prep/mask_bounds.h"

using namespace flashmask;

struct Case {
  int b, sq, sk, h, hk, d;
  bool causal;
  int ncols;       // 0, 1, 2, 4
  int mask_heads;  // 1, hk or h
  int pattern;     // 0 random bands, 1 documents, 2 share-question-like, 3 everything masked for some cols
  DType dtype;
};

static std::string name_of(const Case& c) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s b%d sq%d sk%d h%d hk%d d%d %s ncols%d mh%d pat%d",
                c.dtype == DType::kBFloat16 ? "bf16" : "fp16", c.b, c.sq, c.sk, c.h, c.hk, c.d,
                c.causal ? "causal" : "full", c.ncols, c.mask_heads, c.pattern);
  return buf;
}

struct DeviceRun {
  FwdParams p;
  void *dq, *dk, *dv, *dout, *dws;
  float* dlse;
  int32_t* dmask;
};

static DeviceRun setup(const Case& c, const std::vector<uint16_t>& q, const std::vector<uint16_t>& k,
                       const std::vector<uint16_t>& v, const std::vector<int32_t>& mask, bool extra_ws) {
  DeviceRun r{};
  FwdParams& p = r.p;
  p.dtype = c.dtype;
  p.batch = c.b; p.seqlen_q = c.sq; p.seqlen_k = c.sk;
  p.num_heads = c.h; p.num_heads_k = c.hk; p.head_dim = c.d;
  CK(cudaMalloc(&r.dq, q.size() * 2)); CK(cudaMemcpy(r.dq, q.data(), q.size() * 2, cudaMemcpyHostToDevice));
  CK(cudaMalloc(&r.dk, k.size() * 2)); CK(cudaMemcpy(r.dk, k.data(), k.size() * 2, cudaMemcpyHostToDevice));
  CK(cudaMalloc(&r.dv, v.size() * 2)); CK(cudaMemcpy(r.dv, v.data(), v.size() * 2, cudaMemcpyHostToDevice));
  CK(cudaMalloc(&r.dout, q.size() * 2)); CK(cudaMemset(r.dout, 0xff, q.size() * 2));  // NaN pattern
  CK(cudaMalloc(&r.dlse, size_t(c.b) * c.h * c.sq * 4));
  p.q = r.dq; p.k = r.dk; p.v = r.dv; p.out = r.dout; p.softmax_lse = r.dlse;
  // [B, S, H, D] row-major
  p.q_batch_stride = int64_t(c.sq) * c.h * c.d; p.q_row_stride = int64_t(c.h) * c.d; p.q_head_stride = c.d;
  p.k_batch_stride = int64_t(c.sk) * c.hk * c.d; p.k_row_stride = int64_t(c.hk) * c.d; p.k_head_stride = c.d;
  p.v_batch_stride = p.k_batch_stride; p.v_row_stride = p.k_row_stride; p.v_head_stride = p.k_head_stride;
  p.o_batch_stride = p.q_batch_stride; p.o_row_stride = p.q_row_stride; p.o_head_stride = p.q_head_stride;
  p.causal = c.causal;
  p.softmax_scale = 1.f / std::sqrt(float(c.d));
  r.dmask = nullptr;
  size_t bounds_bytes = 0;
  if (c.ncols > 0) {
    CK(cudaMalloc(&r.dmask, mask.size() * 4));
    CK(cudaMemcpy(r.dmask, mask.data(), mask.size() * 4, cudaMemcpyHostToDevice));
    p.mask.startend = r.dmask; p.mask.ncols = c.ncols; p.mask.heads = c.mask_heads;
    p.mask.head_stride = int64_t(c.sk) * c.ncols; p.mask.batch_stride = p.mask.head_stride * c.mask_heads;
    bounds_bytes = (size_t(c.b) * c.mask_heads * ((c.sk + 63) / 64) * sizeof(TileBounds) + 255) & ~size_t(255);
  }
  p.workspace_bytes = bounds_bytes + (extra_ws ? cuda::sm90::fwd_extra_workspace_bytes(p) : 0);
  r.dws = nullptr;
  if (p.workspace_bytes) CK(cudaMalloc(&r.dws, p.workspace_bytes));
  p.workspace = r.dws;
  return r;
}

static void launch(DeviceRun& r) {
  if (r.p.mask.ncols > 0) cuda::launch_mask_bounds(r.p, static_cast<TileBounds*>(r.p.workspace), nullptr);
  cuda::sm90::run_fwd(r.p, static_cast<const TileBounds*>(r.p.workspace), nullptr);
}

static void release(DeviceRun& r) {
  cudaFree(r.dq); cudaFree(r.dk); cudaFree(r.dv); cudaFree(r.dout); cudaFree(r.dlse);
  if (r.dmask) cudaFree(r.dmask);
  if (r.dws) cudaFree(r.dws);
}

static bool check_case(const Case& c, bool extra_ws, std::mt19937& rng) {
  const size_t nq = size_t(c.b) * c.sq * c.h * c.d, nk = size_t(c.b) * c.sk * c.hk * c.d;
  std::vector<uint16_t> q(nq), k(nk), v(nk);
  std::normal_distribution<float> N(0.f, 1.f);
  for (auto& x : q) x = from_f(N(rng), c.dtype);
  for (auto& x : k) x = from_f(N(rng), c.dtype);
  for (auto& x : v) x = from_f(N(rng), c.dtype);
  std::vector<int32_t> mask = c.ncols ? make_mask(c, rng) : std::vector<int32_t>{};
  DeviceRun r = setup(c, q, k, v, mask, extra_ws);
  CK(cudaMemset(r.dout, 0xff, nq * 2));
  launch(r);
  CK(cudaGetLastError());
  sync_or_die(name_of(c), 10.0);
  std::vector<uint16_t> out(nq);
  std::vector<float> lse(size_t(c.b) * c.h * c.sq);
  CK(cudaMemcpy(out.data(), r.dout, nq * 2, cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(lse.data(), r.dlse, lse.size() * 4, cudaMemcpyDeviceToHost));

  // dense reference
  const int shift = c.sk - c.sq;
  const float scale = r.p.softmax_scale;
  double max_err = 0, max_lse_err = 0;
  long bad_masked = 0, nan_count = 0;
  std::vector<float> s(c.sk), qf(c.d);
  std::vector<double> o(c.d);
  for (int bb = 0; bb < c.b; ++bb)
    for (int hh = 0; hh < c.h; ++hh) {
      const int hk = hh / (c.h / c.hk);
      const int32_t* mcol = mask_columns(c, mask, bb, hh);
      for (int i = 0; i < c.sq; ++i) {
        const uint16_t* qr = &q[((size_t(bb) * c.sq + i) * c.h + hh) * c.d];
        for (int t = 0; t < c.d; ++t) qf[t] = to_f(qr[t], c.dtype);
        float mx = -INFINITY;
        for (int j = 0; j < c.sk; ++j) {
          bool masked = c.causal && j > i + shift;
          if (mcol) masked |= column_masks_row(decode_column(mcol + size_t(j) * c.ncols, c.ncols, c.causal, c.sq), i);
          if (masked) { s[j] = -INFINITY; continue; }
          const uint16_t* kr = &k[((size_t(bb) * c.sk + j) * c.hk + hk) * c.d];
          float acc = 0.f;
          for (int t = 0; t < c.d; ++t) acc += qf[t] * to_f(kr[t], c.dtype);
          s[j] = acc * scale;
          mx = std::max(mx, s[j]);
        }
        double l = 0;
        std::fill(o.begin(), o.end(), 0.0);
        if (mx != -INFINITY)
          for (int j = 0; j < c.sk; ++j) {
            if (s[j] == -INFINITY) continue;
            const double e = std::exp(double(s[j]) - mx);
            l += e;
            const uint16_t* vr = &v[((size_t(bb) * c.sk + j) * c.hk + hk) * c.d];
            for (int t = 0; t < c.d; ++t) o[t] += e * to_f(vr[t], c.dtype);
          }
        const uint16_t* orow = &out[((size_t(bb) * c.sq + i) * c.h + hh) * c.d];
        const float lg = lse[(size_t(bb) * c.h + hh) * c.sq + i];
        if (l == 0) {
          for (int t = 0; t < c.d; ++t) if (to_f(orow[t], c.dtype) != 0.f) ++bad_masked;
          if (!(std::isinf(lg) && lg < 0)) ++bad_masked;
        } else {
          for (int t = 0; t < c.d; ++t) {
            const float got = to_f(orow[t], c.dtype);
            if (std::isnan(got)) ++nan_count;
            max_err = std::max(max_err, std::fabs(got - o[t] / l));
          }
          max_lse_err = std::max(max_lse_err, std::fabs(double(lg) - (mx + std::log(l))));
        }
      }
    }
  const double tol = c.dtype == DType::kBFloat16 ? 2e-2 : 5e-3;
  const bool ok = max_err <= tol && max_lse_err <= 2e-3 && bad_masked == 0 && nan_count == 0;
  std::printf("%s %-70s ws=%d max|dO|=%.3e max|dlse|=%.3e bad_masked=%ld nan=%ld\n", ok ? "PASS" : "FAIL",
              name_of(c).c_str(), int(extra_ws), max_err, max_lse_err, bad_masked, nan_count);
  std::fflush(stdout);
  release(r);
  return ok;
}

static void bench(const Case& c, std::mt19937& rng) {
  const size_t nq = size_t(c.b) * c.sq * c.h * c.d, nk = size_t(c.b) * c.sk * c.hk * c.d;
  // timing only: tile a pool of random values (hundreds of millions of
  // normal samples would cost the device call tens of seconds of host time)
  std::vector<uint16_t> pool(1 << 20);
  std::normal_distribution<float> N(0.f, 1.f);
  for (auto& x : pool) x = from_f(N(rng), c.dtype);
  std::vector<uint16_t> q(nq), k(nk), v(nk);
  for (size_t i = 0; i < nq; ++i) q[i] = pool[(i * 7) & (pool.size() - 1)];
  for (size_t i = 0; i < nk; ++i) k[i] = pool[(i * 13 + 5) & (pool.size() - 1)];
  for (size_t i = 0; i < nk; ++i) v[i] = pool[(i * 29 + 11) & (pool.size() - 1)];
  std::vector<int32_t> mask = c.ncols ? make_mask(c, rng) : std::vector<int32_t>{};
  DeviceRun r = setup(c, q, k, v, mask, true);
  for (int w = 0; w < 3; ++w) launch(r);
  sync_or_die("bench warm-up " + name_of(c), 30.0);
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0)); CK(cudaEventCreate(&e1));
  const int iters = 20;
  CK(cudaEventRecord(e0));
  for (int it = 0; it < iters; ++it) launch(r);
  CK(cudaEventRecord(e1));
  CK(cudaEventSynchronize(e1));
  float ms = 0;
  CK(cudaEventElapsedTime(&ms, e0, e1));
  ms /= iters;
  // useful FLOPs: unmasked (i, j) pairs x 4 d (host count over the mask)
  const double pairs = unmasked_pairs(c, mask);
  const double tflops = pairs * 4.0 * c.d / (ms * 1e-3) / 1e12;
  std::printf("BENCH %-70s %8.3f ms  %6.1f TFLOP/s (useful)  density %.3f\n", name_of(c).c_str(), ms,
              tflops, pairs / (double(c.b) * c.h * c.sq * c.sk));
  std::fflush(stdout);
  release(r);
}

int main(int argc, char** argv) {
  bool quick = false, do_bench = true, do_check = true;
  int only_case = -1;
  for (int a = 1; a < argc; ++a) {
    if (!std::strcmp(argv[a], "--case") && a + 1 < argc) only_case = std::atoi(argv[++a]);
    if (!std::strcmp(argv[a], "--quick")) quick = true;
    if (!std::strcmp(argv[a], "--no-bench")) do_bench = false;
    if (!std::strcmp(argv[a], "--bench-only")) do_check = false;
  }
  int dev = 0;
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, dev));
  std::printf("device %s sm_%d%d, %d SMs\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount);
  std::mt19937 rng(1234);
  const DType BF = DType::kBFloat16, FP = DType::kFloat16;
  std::vector<Case> cases = {
      // b, sq, sk, h, hk, d, causal, ncols, mask_heads, pattern, dtype
      {1, 128, 128, 1, 1, 128, false, 0, 1, 0, BF},
      {2, 300, 300, 2, 2, 128, true, 0, 1, 0, BF},
      {1, 257, 513, 4, 2, 128, true, 0, 1, 0, BF},     // sq != sk, GQA
      {1, 513, 257, 2, 1, 128, true, 0, 1, 0, BF},     // sq > sk: leading rows fully masked
      {2, 384, 384, 4, 2, 128, true, 1, 1, 0, BF},
      {1, 384, 640, 4, 4, 128, true, 2, 4, 1, BF},     // per-head masks, documents
      {1, 500, 500, 4, 2, 128, false, 2, 2, 2, BF},    // mask heads = hk
      {1, 448, 448, 2, 2, 128, false, 4, 2, 0, BF},
      {1, 320, 320, 2, 2, 128, false, 4, 1, 3, BF},    // columns masked everywhere
      {1, 1024, 1024, 2, 1, 128, true, 2, 1, 1, BF},
      {1, 384, 384, 2, 2, 128, true, 1, 1, 0, FP},
      {1, 333, 333, 2, 2, 64, true, 2, 1, 1, BF},
      {1, 333, 400, 2, 1, 64, false, 4, 1, 0, FP},
      {1, 300, 300, 2, 2, 256, true, 1, 1, 0, BF},
      {1, 260, 330, 2, 1, 256, false, 4, 2, 1, FP},
  };
  int fails = 0;
  if (only_case >= 0) do_bench = false;
  if (only_case >= static_cast<int>(cases.size())) {
    std::printf("no case %d (%zu cases)\n", only_case, cases.size());
    return 4;
  }
  for (size_t i = 0; i < cases.size() && do_check; ++i) {
    if (only_case >= 0 && static_cast<int>(i) != only_case) continue;
    if (quick && i % 3 != 0) continue;
    fails += !check_case(cases[i], true, rng);
    if (i == 4 || i == 7) fails += !check_case(cases[i], false, rng);  // static schedule path
  }
  std::printf("%d failures\n", fails);
  if (do_bench && fails == 0) {
    bench({4, 8192, 8192, 16, 16, 128, true, 0, 1, 0, BF}, rng);
    bench({4, 8192, 8192, 16, 16, 128, false, 0, 1, 0, BF}, rng);
    bench({4, 8192, 8192, 16, 16, 128, true, 2, 1, 1, BF}, rng);
    bench({4, 8192, 8192, 16, 16, 128, false, 4, 16, 0, BF}, rng);
    bench({4, 8192, 8192, 16, 16, 64, true, 0, 1, 0, BF}, rng);
    bench({4, 8192, 8192, 16, 16, 256, true, 0, 1, 0, BF}, rng);
  }
  return fails == 0 ? 0 : 1;
}
