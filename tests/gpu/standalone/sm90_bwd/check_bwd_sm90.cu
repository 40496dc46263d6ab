// Standalone device check of the sm90a backward (no torch, no Paddle): random
// q/k/v/dO and FlashMask column masks; out and lse from a dense CPU forward
// (out rounded to the element type, lse fp32, -inf for fully masked rows);
// prep/mask_bounds.cu's mask preprocessing, then sm90::run_bwd; dq, dk, dv compared with
// a dense CPU reference (fp32 dot products, fp64 sums). Exact zeros where the
// reference is exactly zero (fully masked rows / columns). Deterministic mode
// runs twice and is compared bitwise (and against the reference).
//   ./check [--case i] [--no-bench] [--bench-only] [--list]
// Exit: 0 pass, 1 fail, 2 CUDA error, 3 hang (10 s watchdog), 4 no such case.
// Built with -DWITH_FWD (and the sm90 forward objects) the bench also times
// the sm90 forward and reports forward + backward.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/flashmask_params.h"
#include "core/mask_bounds.h"
#include "../check_common.h"
#include "core/cuda/prep/mask_bounds.h"
#include "core/cuda/sm90/bwd/entry.h"
#ifdef WITH_FWD
#include "core/cuda/sm90/fwd/entry.h"
#endif

using namespace flashmask;

struct Case {
  int b, sq, sk, h, hk, d;
  bool causal;
  int ncols;       // 0, 1, 2, 4
  int mask_heads;  // 1, hk or h
  int pattern;     // 0 random bands, 1 documents, 2 share-question-like, 3 some columns masked for every row
  DType dtype;
  bool det;        // deterministic mode (run twice, bitwise compare)
};

static std::string name_of(const Case& c) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s b%d sq%d sk%d h%d hk%d d%d %s ncols%d mh%d pat%d%s",
                c.dtype == DType::kBFloat16 ? "bf16" : "fp16", c.b, c.sq, c.sk, c.h, c.hk, c.d,
                c.causal ? "causal" : "full", c.ncols, c.mask_heads, c.pattern, c.det ? " det" : "");
  return buf;
}

struct Host {
  std::vector<uint16_t> q, k, v, o, dout;
  std::vector<float> lse;
  std::vector<int32_t> mask;
};

struct DeviceRun {
  BwdParams p;
  void *dq_in, *dk_in, *dv_in, *dout_in, *o_in, *dq, *dk, *dv, *ws;
  float* lse;
  int32_t* mask;
  size_t bounds_bytes, delta_bytes;
};

static size_t a256(size_t n) { return (n + 255) & ~size_t(255); }

static void* upload(const void* src, size_t bytes) {
  void* d = nullptr;
  CK(cudaMalloc(&d, std::max<size_t>(bytes, 16)));
  if (bytes) CK(cudaMemcpy(d, src, bytes, cudaMemcpyHostToDevice));
  return d;
}

static DeviceRun setup(const Case& c, const Host& hs) {
  DeviceRun r{};
  BwdParams& p = r.p;
  p.dtype = c.dtype;
  p.batch = c.b; p.seqlen_q = c.sq; p.seqlen_k = c.sk;
  p.num_heads = c.h; p.num_heads_k = c.hk; p.head_dim = c.d;
  r.dq_in = upload(hs.q.data(), hs.q.size() * 2);
  r.dk_in = upload(hs.k.data(), hs.k.size() * 2);
  r.dv_in = upload(hs.v.data(), hs.v.size() * 2);
  r.o_in = upload(hs.o.data(), hs.o.size() * 2);
  r.dout_in = upload(hs.dout.data(), hs.dout.size() * 2);
  r.lse = static_cast<float*>(upload(hs.lse.data(), hs.lse.size() * 4));
  CK(cudaMalloc(&r.dq, hs.q.size() * 2));
  CK(cudaMalloc(&r.dk, hs.k.size() * 2));
  CK(cudaMalloc(&r.dv, hs.v.size() * 2));
  p.q = r.dq_in; p.k = r.dk_in; p.v = r.dv_in; p.out = r.o_in; p.dout = r.dout_in; p.softmax_lse = r.lse;
  p.dq = r.dq; p.dk = r.dk; p.dv = r.dv;
  p.q_batch_stride = int64_t(c.sq) * c.h * c.d; p.q_row_stride = int64_t(c.h) * c.d; p.q_head_stride = c.d;
  p.k_batch_stride = int64_t(c.sk) * c.hk * c.d; p.k_row_stride = int64_t(c.hk) * c.d; p.k_head_stride = c.d;
  p.v_batch_stride = p.k_batch_stride; p.v_row_stride = p.k_row_stride; p.v_head_stride = p.k_head_stride;
  p.o_batch_stride = p.q_batch_stride; p.o_row_stride = p.q_row_stride; p.o_head_stride = p.q_head_stride;
  p.dq_batch_stride = p.q_batch_stride; p.dq_row_stride = p.q_row_stride; p.dq_head_stride = p.q_head_stride;
  p.dk_batch_stride = p.k_batch_stride; p.dk_row_stride = p.k_row_stride; p.dk_head_stride = p.k_head_stride;
  p.dv_batch_stride = p.k_batch_stride; p.dv_row_stride = p.k_row_stride; p.dv_head_stride = p.k_head_stride;
  p.causal = c.causal;
  p.deterministic = c.det;
  p.softmax_scale = 1.f / std::sqrt(float(c.d));
  r.mask = nullptr;
  r.bounds_bytes = 0;
  if (c.ncols > 0) {
    r.mask = static_cast<int32_t*>(upload(hs.mask.data(), hs.mask.size() * 4));
    p.mask.startend = r.mask; p.mask.ncols = c.ncols; p.mask.heads = c.mask_heads;
    p.mask.head_stride = int64_t(c.sk) * c.ncols; p.mask.batch_stride = p.mask.head_stride * c.mask_heads;
    r.bounds_bytes = a256(size_t(c.b) * c.mask_heads * ((c.sk + 63) / 64) * sizeof(TileBounds));
  }
  r.delta_bytes = a256(size_t(c.b) * c.h * c.sq * 4);
  // the dispatcher's layout on this path: [tile bounds][delta][sm90 scratch]
  p.workspace_bytes = r.bounds_bytes + r.delta_bytes + cuda::sm90::bwd_extra_workspace_bytes(p);
  CK(cudaMalloc(&r.ws, p.workspace_bytes));
  p.workspace = r.ws;
  return r;
}

static void launch_bwd(DeviceRun& r) {
  char* ws = static_cast<char*>(r.p.workspace);
  TileBounds* bounds = reinterpret_cast<TileBounds*>(ws);
  if (r.p.mask.ncols > 0) cuda::launch_mask_bounds(r.p, bounds, nullptr);
  cuda::sm90::run_bwd(r.p, bounds, reinterpret_cast<float*>(ws + r.bounds_bytes),
                      ws + r.bounds_bytes + r.delta_bytes, nullptr);
}

static void release(DeviceRun& r) {
  for (void* x : {r.dq_in, r.dk_in, r.dv_in, r.o_in, r.dout_in, r.dq, r.dk, r.dv, r.ws, (void*)r.lse})
    cudaFree(x);
  if (r.mask) cudaFree(r.mask);
}

// ----- dense CPU reference -----

struct MaskView {
  const Case& c;
  const std::vector<int32_t>& mask;
  // masked[j] for row i of (b, h)
  bool masked(int bb, int hh, int i, int j) const {
    const int shift = c.sk - c.sq;
    if (c.causal && j > i + shift) return true;
    const int32_t* mcol = mask_columns(c, mask, bb, hh);
    if (!mcol) return false;
    return column_masks_row(decode_column(mcol + size_t(j) * c.ncols, c.ncols, c.causal, c.sq), i);
  }
};

template <class F>
static void parallel_for(int n, F&& f) {
  const int nt = std::max(1, std::min<int>(n, int(std::thread::hardware_concurrency())));
  std::vector<std::thread> th;
  for (int t = 0; t < nt; ++t)
    th.emplace_back([&, t]() {
      for (int i = t; i < n; i += nt) f(i);
    });
  for (auto& x : th) x.join();
}

// Forward: out (rounded) and lse, per (b, h, row).
static void ref_forward(const Case& c, Host& hs) {
  const float scale = 1.f / std::sqrt(float(c.d));
  MaskView mv{c, hs.mask};
  hs.o.assign(size_t(c.b) * c.sq * c.h * c.d, 0);
  hs.lse.assign(size_t(c.b) * c.h * c.sq, 0.f);
  parallel_for(c.b * c.h * c.sq, [&](int idx) {
    const int i = idx % c.sq, hh = (idx / c.sq) % c.h, bb = idx / (c.sq * c.h);
    const int hk = hh / (c.h / c.hk);
    std::vector<float> qf(c.d), s(c.sk);
    std::vector<double> o(c.d, 0.0);
    for (int t = 0; t < c.d; ++t) qf[t] = to_f(hs.q[((size_t(bb) * c.sq + i) * c.h + hh) * c.d + t], c.dtype);
    float mx = -INFINITY;
    for (int j = 0; j < c.sk; ++j) {
      if (mv.masked(bb, hh, i, j)) { s[j] = -INFINITY; continue; }
      const uint16_t* kr = &hs.k[((size_t(bb) * c.sk + j) * c.hk + hk) * c.d];
      float acc = 0.f;
      for (int t = 0; t < c.d; ++t) acc += qf[t] * to_f(kr[t], c.dtype);
      s[j] = acc * scale;
      mx = std::max(mx, s[j]);
    }
    double l = 0;
    if (mx != -INFINITY)
      for (int j = 0; j < c.sk; ++j) {
        if (s[j] == -INFINITY) continue;
        const double e = std::exp(double(s[j]) - mx);
        l += e;
        const uint16_t* vr = &hs.v[((size_t(bb) * c.sk + j) * c.hk + hk) * c.d];
        for (int t = 0; t < c.d; ++t) o[t] += e * to_f(vr[t], c.dtype);
      }
    uint16_t* orow = &hs.o[((size_t(bb) * c.sq + i) * c.h + hh) * c.d];
    for (int t = 0; t < c.d; ++t) orow[t] = from_f(l > 0 ? float(o[t] / l) : 0.f, c.dtype);
    hs.lse[(size_t(bb) * c.h + hh) * c.sq + i] = l > 0 ? float(mx + std::log(l)) : -INFINITY;
  });
}

// Backward reference from the given out / lse. dq, dk, dv in double.
static void ref_backward(const Case& c, const Host& hs, std::vector<double>& dq, std::vector<double>& dk,
                         std::vector<double>& dv) {
  const float scale = 1.f / std::sqrt(float(c.d));
  MaskView mv{c, hs.mask};
  dq.assign(size_t(c.b) * c.sq * c.h * c.d, 0.0);
  dk.assign(size_t(c.b) * c.sk * c.hk * c.d, 0.0);
  dv.assign(dk.size(), 0.0);
  const int group = c.h / c.hk;
  // parallel over (b, head, row chunk) tasks; dk / dv partials per worker thread
  const int chunk = 64;
  const int nchunks = (c.sq + chunk - 1) / chunk;
  const int tasks = c.b * c.h * nchunks;
  const int nt = std::max(1, std::min<int>(tasks, int(std::thread::hardware_concurrency())));
  std::vector<std::vector<double>> pdk(nt), pdv(nt);
  parallel_for(nt, [&](int w) {
    std::vector<double>& lk = pdk[w];
    std::vector<double>& lv = pdv[w];
    lk.assign(dk.size(), 0.0);
    lv.assign(dv.size(), 0.0);
    std::vector<float> qf(c.d), dof(c.d);
    std::vector<double> acc(c.d);
    for (int task = w; task < tasks; task += nt) {
      const int ch = task % nchunks, hh = (task / nchunks) % c.h, bb = task / (nchunks * c.h);
      const int hk = hh / group;
      for (int i = ch * chunk; i < std::min(c.sq, (ch + 1) * chunk); ++i) {
        const size_t qoff = ((size_t(bb) * c.sq + i) * c.h + hh) * c.d;
        const float lse = hs.lse[(size_t(bb) * c.h + hh) * c.sq + i];
        if (lse == -INFINITY) continue;
        double delta = 0;
        for (int t = 0; t < c.d; ++t) {
          qf[t] = to_f(hs.q[qoff + t], c.dtype);
          dof[t] = to_f(hs.dout[qoff + t], c.dtype);
          delta += double(dof[t]) * to_f(hs.o[qoff + t], c.dtype);
        }
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int j = 0; j < c.sk; ++j) {
          if (mv.masked(bb, hh, i, j)) continue;
          const size_t koff = ((size_t(bb) * c.sk + j) * c.hk + hk) * c.d;
          float s = 0.f, dp = 0.f;
          for (int t = 0; t < c.d; ++t) {
            s += qf[t] * to_f(hs.k[koff + t], c.dtype);
            dp += dof[t] * to_f(hs.v[koff + t], c.dtype);
          }
          const double pr = std::exp(double(s) * scale - lse);
          const double ds = pr * (double(dp) - delta);
          for (int t = 0; t < c.d; ++t) {
            acc[t] += ds * to_f(hs.k[koff + t], c.dtype);
            lk[koff + t] += ds * qf[t];
            lv[koff + t] += pr * dof[t];
          }
        }
        for (int t = 0; t < c.d; ++t) dq[qoff + t] = acc[t] * scale;
      }
    }
  });
  for (int w = 0; w < nt; ++w)
    for (size_t off = 0; off < dk.size(); ++off) {
      dk[off] += pdk[w][off] * scale;
      dv[off] += pdv[w][off];
    }
}

// Which reference entries must be EXACTLY zero on the device too: dq rows of
// fully masked query rows (lse = -inf) and dk / dv rows of key columns that no
// (query head of the group, row) sees. Rows that see exactly one key have an
// analytically zero dq as well (softmax over one element: dP - delta = 0), but
// both the reference (fp32 dp vs fp64 delta) and the device compute rounding
// noise there; the reference's noise is sometimes exactly 0.0 (bf16 inputs:
// the fp32 dot product can be exact), so such rows are NOT required to be 0
// (they are still held to the error tolerance). vis_* = visible key / row counts.
struct Structure {
  std::vector<int> vis_q;   // [b][h][sq]: keys row i sees
  std::vector<int> vis_k;   // [b][hk][sk]: (query head of the group, row) pairs seeing key j
};
static Structure structure_of(const Case& c, const Host& hs) {
  Structure st;
  MaskView mv{c, hs.mask};
  st.vis_q.assign(size_t(c.b) * c.h * c.sq, 0);
  st.vis_k.assign(size_t(c.b) * c.hk * c.sk, 0);
  const int group = c.h / c.hk;
  for (int bb = 0; bb < c.b; ++bb)
    for (int hh = 0; hh < c.h; ++hh)
      for (int i = 0; i < c.sq; ++i)
        for (int j = 0; j < c.sk; ++j)
          if (!mv.masked(bb, hh, i, j)) {
            ++st.vis_q[(size_t(bb) * c.h + hh) * c.sq + i];
            ++st.vis_k[(size_t(bb) * c.hk + hh / group) * c.sk + j];
          }
  return st;
}

struct Err {
  double max_err = 0, max_ref = 0;
  long bad_zero = 0, nan = 0;
  long soft_zero = 0;   // ref exactly 0 in a row that is not structurally zero (info only)
  long soft_zero_nz = 0;  // ... and the device value nonzero (info only)
  std::vector<std::string> detail;  // first few bad entries
};
// Tensors are [b][row][head][d]; `vis` is [b][head][row] (visible count, 0 = structurally zero).
static Err compare(const char* name, const std::vector<uint16_t>& got, const std::vector<double>& ref,
                   DType t, int heads, int rows, int d, const std::vector<int>& vis, int blk) {
  Err e;
  for (size_t i = 0; i < ref.size(); ++i) {
    const float g = to_f(got[i], t);
    const size_t rr = i / d;
    const int hh = int(rr % heads), row = int((rr / heads) % rows), bb = int(rr / (size_t(heads) * rows));
    const int v = vis[(size_t(bb) * heads + hh) * rows + row];
    if (std::isnan(g) || std::isinf(g)) {
      if (e.nan < 4) {
        char buf[200];
        std::snprintf(buf, sizeof buf, "  %s nan/inf at b%d h%d row%d col%d (visible %d, block %d)", name, bb, hh,
                      row, int(i % d), v, row / blk);
        e.detail.push_back(buf);
      }
      ++e.nan;
      continue;
    }
    if (ref[i] == 0.0 && g != 0.f) {
      if (v == 0) {
        if (e.bad_zero < 4 || (i % d == 0 && e.detail.size() < 12)) {
          char buf[200];
          std::snprintf(buf, sizeof buf,
                        "  %s bad_zero at b%d h%d row%d col%d got %.3e (structurally zero: visible 0, block %d)",
                        name, bb, hh, row, int(i % d), g, row / blk);
          e.detail.push_back(buf);
        }
        ++e.bad_zero;
      } else {
        ++e.soft_zero_nz;
      }
    }
    if (ref[i] == 0.0 && v != 0) ++e.soft_zero;
    e.max_err = std::max(e.max_err, std::fabs(double(g) - ref[i]));
    e.max_ref = std::max(e.max_ref, std::fabs(ref[i]));
  }
  return e;
}

// Reference-only report (no GPU): exactly-zero reference rows and why.
static void report_zero_rows(const Case& c, const std::vector<double>& r, const char* name, int heads, int rows,
                             const std::vector<int>& vis, int blk) {
  long structural = 0, soft = 0;
  for (int bb = 0; bb < c.b; ++bb)
    for (int row = 0; row < rows; ++row)
      for (int hh = 0; hh < heads; ++hh) {
        const double* x = &r[((size_t(bb) * rows + row) * heads + hh) * c.d];
        bool all0 = true, any0 = false;
        for (int t = 0; t < c.d; ++t) { all0 = all0 && x[t] == 0.0; any0 = any0 || x[t] == 0.0; }
        const int v = vis[(size_t(bb) * heads + hh) * rows + row];
        if (v == 0) { ++structural; continue; }
        if (any0) {
          ++soft;
          std::printf("  %s ref zero (%s) in a NON-structural row: b%d h%d row%d visible %d block %d\n", name,
                      all0 ? "whole row" : "some entries", bb, hh, row, v, row / blk);
        }
      }
  std::printf("  %s: %ld structurally zero rows, %ld non-structural rows with exact-zero ref entries\n", name,
              structural, soft);
}

static void fill_inputs(const Case& c, Host& hs, std::mt19937& rng) {
  const size_t nq = size_t(c.b) * c.sq * c.h * c.d, nk = size_t(c.b) * c.sk * c.hk * c.d;
  std::normal_distribution<float> N(0.f, 1.f);
  hs.q.resize(nq); hs.k.resize(nk); hs.v.resize(nk); hs.dout.resize(nq);
  for (auto& x : hs.q) x = from_f(N(rng), c.dtype);
  for (auto& x : hs.k) x = from_f(N(rng), c.dtype);
  for (auto& x : hs.v) x = from_f(N(rng), c.dtype);
  for (auto& x : hs.dout) x = from_f(N(rng), c.dtype);
  hs.mask = c.ncols ? make_mask(c, rng) : std::vector<int32_t>{};
}

static void ref_only_case(const Case& c, std::mt19937& rng) {
  Host hs;
  fill_inputs(c, hs, rng);
  ref_forward(c, hs);
  std::vector<double> rq, rk, rv;
  ref_backward(c, hs, rq, rk, rv);
  const Structure st = structure_of(c, hs);
  const int bm = c.d <= 64 ? 128 : 64;
  std::printf("REF %s\n", name_of(c).c_str());
  report_zero_rows(c, rq, "dq", c.h, c.sq, st.vis_q, bm);
  report_zero_rows(c, rk, "dk", c.hk, c.sk, st.vis_k, 128);
  report_zero_rows(c, rv, "dv", c.hk, c.sk, st.vis_k, 128);
  std::fflush(stdout);
}

static bool check_case(const Case& c, std::mt19937& rng) {
  Host hs;
  fill_inputs(c, hs, rng);
  ref_forward(c, hs);
  DeviceRun r = setup(c, hs);
  const size_t nq = hs.q.size(), nk = hs.k.size();
  const int runs = c.det ? 2 : 1;
  std::vector<uint16_t> dq[2], dk[2], dv[2];
  for (int run = 0; run < runs; ++run) {
    CK(cudaMemset(r.dq, 0xff, nq * 2));  // NaN pattern: every element must be written
    CK(cudaMemset(r.dk, 0xff, nk * 2));
    CK(cudaMemset(r.dv, 0xff, nk * 2));
    CK(cudaMemset(r.ws, 0x7f, r.p.workspace_bytes));  // garbage scratch: must be (re)initialised
    launch_bwd(r);
    CK(cudaGetLastError());
    sync_or_die(name_of(c) + " run " + std::to_string(run), 10.0);
    dq[run].resize(nq); dk[run].resize(nk); dv[run].resize(nk);
    CK(cudaMemcpy(dq[run].data(), r.dq, nq * 2, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(dk[run].data(), r.dk, nk * 2, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(dv[run].data(), r.dv, nk * 2, cudaMemcpyDeviceToHost));
  }
  release(r);
  std::vector<double> rq, rk, rv;
  ref_backward(c, hs, rq, rk, rv);
  const Structure st = structure_of(c, hs);
  const int bm = c.d <= 64 ? 128 : 64;
  const Err eq = compare("dq", dq[0], rq, c.dtype, c.h, c.sq, c.d, st.vis_q, bm);
  const Err ek = compare("dk", dk[0], rk, c.dtype, c.hk, c.sk, c.d, st.vis_k, 128);
  const Err ev = compare("dv", dv[0], rv, c.dtype, c.hk, c.sk, c.d, st.vis_k, 128);
  const double rel = c.dtype == DType::kBFloat16 ? 3e-2 : 1e-2;
  auto ok_of = [&](const Err& e) { return e.nan == 0 && e.bad_zero == 0 && e.max_err <= rel * std::max(e.max_ref, 1e-3); };
  bool ok = ok_of(eq) && ok_of(ek) && ok_of(ev);
  long det_diff = 0;
  if (c.det) {
    det_diff += std::memcmp(dq[0].data(), dq[1].data(), nq * 2) != 0;
    det_diff += std::memcmp(dk[0].data(), dk[1].data(), nk * 2) != 0;
    det_diff += std::memcmp(dv[0].data(), dv[1].data(), nk * 2) != 0;
    ok = ok && det_diff == 0;
  }
  std::printf("%s %-66s dq %.2e/%.2e dk %.2e/%.2e dv %.2e/%.2e (max err/max ref) bad_zero=%ld nan=%ld%s"
              " [exact-0 ref in non-structural rows: %ld, device nonzero there: %ld (allowed)]\n",
              ok ? "PASS" : "FAIL", name_of(c).c_str(), eq.max_err, eq.max_ref, ek.max_err, ek.max_ref,
              ev.max_err, ev.max_ref, eq.bad_zero + ek.bad_zero + ev.bad_zero, eq.nan + ek.nan + ev.nan,
              c.det ? (det_diff ? " NONDETERMINISTIC" : " bitwise-identical x2") : "",
              eq.soft_zero + ek.soft_zero + ev.soft_zero, eq.soft_zero_nz + ek.soft_zero_nz + ev.soft_zero_nz);
  if (!ok)
    for (const Err* e : {&eq, &ek, &ev})
      for (const auto& l : e->detail) std::printf("%s\n", l.c_str());
  std::fflush(stdout);
  return ok;
}

// ----- bench -----

template <class F>
static float time_ms(F&& f, const std::string& what, int iters) {
  for (int w = 0; w < 2; ++w) f();
  sync_or_die("bench warm-up " + what, 30.0);
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0)); CK(cudaEventCreate(&e1));
  CK(cudaEventRecord(e0));
  for (int it = 0; it < iters; ++it) f();
  CK(cudaEventRecord(e1));
  sync_or_die("bench " + what, 60.0);
  float ms = 0;
  CK(cudaEventElapsedTime(&ms, e0, e1));
  cudaEventDestroy(e0); cudaEventDestroy(e1);
  return ms / iters;
}

static void bench(Case c, std::mt19937& rng) {
  const size_t nq = size_t(c.b) * c.sq * c.h * c.d, nk = size_t(c.b) * c.sk * c.hk * c.d;
  std::vector<uint16_t> pool(1 << 20);
  std::normal_distribution<float> N(0.f, 1.f);
  for (auto& x : pool) x = from_f(N(rng), c.dtype);
  Host hs;
  hs.q.resize(nq); hs.k.resize(nk); hs.v.resize(nk); hs.dout.resize(nq); hs.o.resize(nq);
  for (size_t i = 0; i < nq; ++i) hs.q[i] = pool[(i * 7) & (pool.size() - 1)];
  for (size_t i = 0; i < nk; ++i) hs.k[i] = pool[(i * 13 + 5) & (pool.size() - 1)];
  for (size_t i = 0; i < nk; ++i) hs.v[i] = pool[(i * 29 + 11) & (pool.size() - 1)];
  for (size_t i = 0; i < nq; ++i) hs.dout[i] = pool[(i * 31 + 3) & (pool.size() - 1)];
  for (size_t i = 0; i < nq; ++i) hs.o[i] = pool[(i * 37 + 1) & (pool.size() - 1)];
  hs.lse.assign(size_t(c.b) * c.h * c.sq, 8.f);  // plausible magnitude (timing only)
  hs.mask = c.ncols ? make_mask(c, rng) : std::vector<int32_t>{};
  DeviceRun r = setup(c, hs);
  const double pairs = unmasked_pairs(c, hs.mask);
  const double fwd_flop = pairs * 4.0 * c.d, bwd_flop = 2.5 * fwd_flop;
  float fwd_ms = 0;
#ifdef WITH_FWD
  {
    // the sm90 forward on the same inputs: realistic out / lse for the
    // backward, and the fwd + bwd total
    FwdParams fp = r.p;
    const size_t fextra = cuda::sm90::fwd_extra_workspace_bytes(fp);
    void* fws = nullptr;
    CK(cudaMalloc(&fws, r.bounds_bytes + fextra + 256));
    fp.workspace = fws;
    fp.workspace_bytes = r.bounds_bytes + fextra + 256;
    fp.out = const_cast<void*>(r.p.out);
    auto fwd = [&]() {
      if (fp.mask.ncols > 0) cuda::launch_mask_bounds(fp, static_cast<TileBounds*>(fws), nullptr);
      cuda::sm90::run_fwd(fp, static_cast<const TileBounds*>(fws), nullptr);
    };
    fwd_ms = time_ms(fwd, "fwd " + name_of(c), 10);
    cudaFree(fws);
  }
#endif
  for (int det = 0; det < 2; ++det) {
    r.p.deterministic = det != 0;
    Case cd = c;
    cd.det = det != 0;
    const float ms = time_ms([&]() { launch_bwd(r); }, name_of(cd), 10);
    std::printf("BENCH %-62s bwd %8.3f ms %6.1f TFLOP/s", name_of(cd).c_str(), ms, bwd_flop / (ms * 1e-3) / 1e12);
    if (fwd_ms > 0)
      std::printf(" | fwd %.3f ms %.1f | fwd+bwd %.1f TFLOP/s", fwd_ms, fwd_flop / (fwd_ms * 1e-3) / 1e12,
                  (fwd_flop + bwd_flop) / ((fwd_ms + ms) * 1e-3) / 1e12);
    std::printf("  density %.3f\n", pairs / (double(c.b) * c.h * c.sq * c.sk));
    std::fflush(stdout);
  }
  release(r);
}

int main(int argc, char** argv) {
  bool do_bench = true, do_check = true, list = false, ref_only = false;
  int only_case = -1;
  for (int a = 1; a < argc; ++a) {
    if (!std::strcmp(argv[a], "--case") && a + 1 < argc) only_case = std::atoi(argv[++a]);
    if (!std::strcmp(argv[a], "--no-bench")) do_bench = false;
    if (!std::strcmp(argv[a], "--bench-only")) do_check = false;
    if (!std::strcmp(argv[a], "--list")) list = true;
    if (!std::strcmp(argv[a], "--ref-only")) ref_only = true;  // CPU reference analysis, no GPU
  }
  const DType BF = DType::kBFloat16, FP = DType::kFloat16;
  std::vector<Case> cases = {
      // b, sq, sk, h, hk, d, causal, ncols, mask_heads, pattern, dtype, det
      {1, 128, 128, 1, 1, 128, false, 0, 1, 0, BF, false},     // 0 smallest
      {2, 300, 300, 2, 2, 128, true, 0, 1, 0, BF, false},      // 1 causal, odd length
      {1, 257, 513, 4, 2, 128, true, 0, 1, 0, BF, false},      // 2 sq < sk, GQA
      {1, 513, 257, 2, 1, 128, true, 0, 1, 0, BF, false},      // 3 sq > sk: leading rows fully masked
      {2, 384, 384, 4, 2, 128, true, 1, 1, 0, BF, false},      // 4 causal 1 col
      {1, 384, 640, 4, 4, 128, true, 2, 4, 1, BF, false},      // 5 per-head documents, mask heads = h
      {1, 500, 500, 4, 2, 128, false, 2, 2, 2, BF, false},     // 6 mask heads = hk
      {1, 448, 448, 2, 2, 128, false, 4, 2, 0, BF, false},     // 7 4 cols
      {1, 320, 320, 2, 2, 128, false, 4, 1, 3, BF, false},     // 8 columns masked for every row
      {1, 1000, 1000, 4, 1, 128, true, 2, 1, 1, BF, false},    // 9 documents, MQA
      {1, 384, 384, 2, 2, 128, true, 1, 1, 0, FP, false},      // 10 fp16
      {1, 333, 333, 2, 2, 64, true, 2, 1, 1, BF, false},       // 11 d64
      {1, 333, 400, 2, 1, 64, false, 4, 1, 0, FP, false},      // 12 d64 fp16
      {1, 4133, 4133, 2, 1, 64, true, 0, 1, 0, BF, false},     // 13 long odd
      {1, 1000, 1000, 2, 2, 128, false, 0, 1, 0, FP, false},   // 14 full fp16
      {2, 640, 640, 4, 2, 128, true, 0, 1, 0, BF, true},       // 15 det causal
      {1, 700, 900, 4, 2, 128, false, 4, 4, 0, BF, true},      // 16 det random per-head mask
      {1, 1000, 1000, 2, 1, 64, true, 2, 1, 1, FP, true},      // 17 det documents d64
      {1, 500, 500, 2, 2, 64, false, 0, 1, 0, BF, true},       // 18 det full d64
      {1, 200, 1100, 2, 2, 128, false, 2, 1, 2, FP, false},    // 19 sq << sk
  };
  if (list) {
    for (size_t i = 0; i < cases.size(); ++i) std::printf("%zu %s\n", i, name_of(cases[i]).c_str());
    return 0;
  }
  if (ref_only) {  // each case from a fresh rng, as run_check.sh's one-process-per-case runs
    for (size_t i = 0; i < cases.size(); ++i) {
      if (only_case >= 0 && static_cast<int>(i) != only_case) continue;
      std::mt19937 r1(4321);
      ref_only_case(cases[i], r1);
    }
    return 0;
  }
  int dev = 0;
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, dev));
  std::printf("device %s sm_%d%d, %d SMs\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount);
  std::mt19937 rng(4321);
  if (only_case >= static_cast<int>(cases.size())) {
    std::printf("no case %d (%zu cases)\n", only_case, cases.size());
    return 4;
  }
  int fails = 0;
  if (only_case >= 0) do_bench = false;
  for (size_t i = 0; i < cases.size() && do_check; ++i) {
    if (only_case >= 0 && static_cast<int>(i) != only_case) continue;
    fails += !check_case(cases[i], rng);
  }
  if (do_check) std::printf("%d failures\n", fails);
  if (do_bench && fails == 0) {
    bench({4, 8192, 8192, 16, 16, 128, true, 0, 1, 0, BF, false}, rng);
    bench({4, 8192, 8192, 16, 16, 128, false, 0, 1, 0, BF, false}, rng);
    bench({4, 8192, 8192, 16, 16, 128, true, 2, 1, 1, BF, false}, rng);
    bench({4, 8192, 8192, 16, 16, 128, false, 4, 16, 0, BF, false}, rng);
    bench({4, 8192, 8192, 16, 16, 64, true, 0, 1, 0, BF, false}, rng);
  }
  return fails == 0 ? 0 : 1;
}
