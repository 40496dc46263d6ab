// Thin PyTorch door to the FlashMask core: torch tensors -> FwdParams /
// BwdParams -> the C ABI (flashmask_api.h). Workspace, seed/offset and stream
// come from torch; the kernels never see a torch type.
#include <torch/extension.h>

#ifdef FLASHMASK_TORCH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <initializer_list>
#include <limits>
#include <optional>
#include <vector>

#include "core/flashmask_api.h"
#include "core/params_fill.h"

namespace {

using flashmask::BwdParams;
using flashmask::DType;
using flashmask::FwdParams;

DType core_dtype(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return DType::kFloat32;
    case at::kHalf: return DType::kFloat16;
    case at::kBFloat16: return DType::kBFloat16;
    default: TORCH_CHECK(false, "flashmask_attention: query dtype must be float32, float16 or bfloat16");
  }
}

// A view the kernels can read in place: contiguous last axis, strides and base
// address on 16 bytes (the 16-byte vector loads of the sm80 kernels and the
// TMA descriptors of the sm90 ones need both); else a contiguous copy.
at::Tensor last_dim_contiguous(const at::Tensor& t) {
  const bool aligned = reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
  if (aligned && t.stride(-1) == 1 && t.stride(0) % 8 == 0 && t.stride(1) % 8 == 0 && t.stride(2) % 8 == 0)
    return t;
  return t.clone(at::MemoryFormat::Contiguous);  // (contiguous() would keep a misaligned dense view)
}

// The core's sizes are int32 (as the Paddle door checks): a wider dim would
// wrap. Checked first, before anything reads or copies the tensors (a stride-0
// view of 2^32 rows is cheap to pass and must not reach a copy).
void check_int32_dims(std::initializer_list<const at::Tensor*> tensors) {
  for (const at::Tensor* t : tensors)
    for (int64_t d : t->sizes())
      TORCH_CHECK(d <= std::numeric_limits<int32_t>::max(),
                  "q, k, v, out and dout dims must be at most 2^31 - 1, got ", d);
}

// A [B, S, H, D] tensor (last axis contiguous) as the core sees it.
flashmask::View view_of(const at::Tensor& t) {
  flashmask::View v;
  v.data = t.data_ptr();
  for (int i = 0; i < 4; ++i) v.size[i] = t.size(i);
  v.batch_stride = t.stride(0);
  v.row_stride = t.stride(1);
  v.head_stride = t.stride(2);
  return v;
}

int core_device_of(const at::Tensor& t) { return t.is_cuda() ? kFlashMaskCUDA : kFlashMaskCPU; }

void* stream_of(const at::Tensor& t) {
#ifdef FLASHMASK_TORCH_CUDA
  if (t.is_cuda()) return c10::cuda::getCurrentCUDAStream(t.device().index()).stream();
#endif
  return nullptr;
}

void check_status(int status, const char* what) {
  TORCH_CHECK(status == 0, what, ": ", flashmask_last_error());
}

FwdParams make_params(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                      const std::optional<at::Tensor>& mask, const std::optional<at::Tensor>& seed_offset,
                      double dropout, bool causal, double scale) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "q, k, v must be 4-D [B, S, H, D]");
  TORCH_CHECK(k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type(),
              "q, k, v must share one dtype");
  TORCH_CHECK(k.size(0) == v.size(0) && k.size(1) == v.size(1) && k.size(2) == v.size(2),
              "key and value differ in batch, seqlen or heads");
  TORCH_CHECK(k.device() == q.device() && v.device() == q.device(), "q, k, v on different devices");
  TORCH_CHECK(k.size(0) == q.size(0) && k.size(3) == q.size(3), "key batch/head_dim differ from query");
  if (mask) {
    const at::Tensor& m = *mask;
    TORCH_CHECK(m.scalar_type() == at::kInt && m.dim() == 4 && m.size(0) == q.size(0) &&
                    m.size(2) == k.size(1) && m.is_contiguous() && m.device() == q.device(),
                "startend_row_indices must be contiguous int32 [B, h, Sk, ncols] on q's device");
  }
  if (dropout > 0.0) {
    TORCH_CHECK(seed_offset.has_value() && seed_offset->scalar_type() == at::kLong &&
                    seed_offset->numel() == 2 && seed_offset->is_contiguous(),
                "seed_offset must be a contiguous int64 tensor of 2 values");
    TORCH_CHECK(!seed_offset->is_cuda() || q.is_cuda(), "seed_offset on the GPU but q on the CPU");
  }
  FwdParams p;
  flashmask::fill_attention(&p, core_dtype(q), view_of(q), view_of(k), view_of(v), causal,
                            static_cast<float>(scale));
  if (mask)
    flashmask::fill_mask(&p, mask->data_ptr<int32_t>(), mask->size(1), mask->size(2), mask->size(3));
  // seed_offset on the GPU is read by the kernels: graph-capture safe
  flashmask::fill_dropout(&p, static_cast<float>(dropout),
                          dropout > 0.0 ? seed_offset->data_ptr<int64_t>() : nullptr,
                          dropout > 0.0 && seed_offset->is_cuda());
  return p;
}

// block_mask: contiguous int32 [B, h, ceil(Sq/128), ceil(Sk/128)]; sink: contiguous fp32 [H].
void set_extras(FwdParams* p, const at::Tensor& q, const std::optional<at::Tensor>& block_mask,
                const std::optional<at::Tensor>& sink) {
  if (block_mask) {
    const at::Tensor& bm = *block_mask;
    TORCH_CHECK(bm.scalar_type() == at::kInt && bm.dim() == 4 && bm.size(0) == p->batch &&
                    bm.size(2) == flashmask::block_mask_blocks(p->seqlen_q) &&
                    bm.size(3) == flashmask::block_mask_blocks(p->seqlen_k) && bm.is_contiguous() &&
                    bm.device() == q.device(),
                "block_mask must be contiguous int32 [B, h, ceil(Sq/128), ceil(Sk/128)] on q's device");
    flashmask::set_block_mask(p, bm.data_ptr<int32_t>(), static_cast<int32_t>(bm.size(1)));
  }
  if (sink) {
    TORCH_CHECK(sink->scalar_type() == at::kFloat && sink->numel() == p->num_heads &&
                    sink->is_contiguous() && sink->device() == q.device(),
                "learnable_sink must be a contiguous float32 [num_heads] tensor on q's device");
    p->learnable_sink = sink->data_ptr<float>();
  }
}

std::vector<int64_t> out_sizes(const at::Tensor& q, const at::Tensor& v) {
  return {q.size(0), q.size(1), q.size(2), v.size(3)};
}

std::vector<at::Tensor> forward(const at::Tensor& query, const at::Tensor& key, const at::Tensor& value,
                                const std::optional<at::Tensor>& mask,
                                const std::optional<at::Tensor>& seed_offset, double dropout,
                                bool causal, double scale,
                                const std::optional<at::Tensor>& block_mask,
                                const std::optional<at::Tensor>& sink, int64_t kernel_options) {
#ifdef FLASHMASK_TORCH_CUDA
  c10::OptionalDeviceGuard guard(query.device());
#endif
  check_int32_dims({&query, &key, &value});
  const at::Tensor q = last_dim_contiguous(query), k = last_dim_contiguous(key),
                   v = last_dim_contiguous(value);
  FwdParams p = make_params(q, k, v, mask, seed_offset, dropout, causal, scale);
  p.kernels = flashmask::KernelOptions::from_bits(static_cast<int>(kernel_options));
  set_extras(&p, q, block_mask, sink);
  at::Tensor out = at::empty(out_sizes(q, v), q.options());
  at::Tensor lse = at::empty({q.size(0), q.size(2), q.size(1)}, q.options().dtype(at::kFloat));
  flashmask::fill_out(&p, view_of(out), lse.data_ptr<float>());
  const int dev = core_device_of(q);
  const size_t ws_bytes = flashmask_fwd_workspace_size(&p, dev);
  at::Tensor ws;
  if (ws_bytes > 0) {
    ws = at::empty({static_cast<int64_t>(ws_bytes)}, q.options().dtype(at::kByte));
    p.workspace = ws.data_ptr();
    p.workspace_bytes = ws_bytes;
  }
  check_status(flashmask_fwd(&p, dev, stream_of(q)), "flashmask_attention forward");
  return {out, lse};
}

std::vector<at::Tensor> backward(const at::Tensor& query, const at::Tensor& key, const at::Tensor& value,
                                 const std::optional<at::Tensor>& mask,
                                 const std::optional<at::Tensor>& seed_offset, const at::Tensor& out_,
                                 const at::Tensor& lse_, const at::Tensor& dout_, double dropout,
                                 bool causal, double scale, bool deterministic,
                                 const std::optional<at::Tensor>& block_mask,
                                 const std::optional<at::Tensor>& sink, int64_t kernel_options) {
#ifdef FLASHMASK_TORCH_CUDA
  c10::OptionalDeviceGuard guard(query.device());
#endif
  check_int32_dims({&query, &key, &value, &out_, &dout_});
  const at::Tensor q = last_dim_contiguous(query), k = last_dim_contiguous(key),
                   v = last_dim_contiguous(value);
  // out and dout share one set of strides in the params.
  const at::Tensor o = out_.contiguous(), dout = dout_.contiguous(), lse = lse_.contiguous();
  BwdParams p;
  static_cast<FwdParams&>(p) = make_params(q, k, v, mask, seed_offset, dropout, causal, scale);
  set_extras(&p, q, block_mask, sink);
  const std::vector<int64_t> o_sizes = out_sizes(q, v);
  TORCH_CHECK(o.sizes() == at::IntArrayRef(o_sizes) && dout.sizes() == at::IntArrayRef(o_sizes) &&
                  o.scalar_type() == q.scalar_type() && dout.scalar_type() == q.scalar_type(),
              "out and dout must be [B, Sq, H, Dv] in query's dtype");
  TORCH_CHECK(q.size(3) > 0, "head_dim must be positive");  // before dividing by it
  TORCH_CHECK(lse.scalar_type() == at::kFloat && lse.numel() == q.numel() / q.size(3),
              "softmax_lse must be float32 [B, H, Sq]");
  at::Tensor dq = at::empty(q.sizes(), q.options());
  at::Tensor dk = at::empty(k.sizes(), k.options());
  at::Tensor dv = at::empty(v.sizes(), v.options());
  flashmask::fill_out(&p, view_of(o), const_cast<float*>(lse.data_ptr<float>()));
  flashmask::fill_grads(&p, dout.data_ptr(), view_of(dq), view_of(dk), view_of(dv));
  at::Tensor dsink;  // undefined (None in Python) without a sink
  if (sink) {
    dsink = at::empty({p.num_heads}, q.options().dtype(at::kFloat));
    p.dsink = dsink.data_ptr<float>();
  }
  p.deterministic = deterministic;
  p.kernels = flashmask::KernelOptions::from_bits(static_cast<int>(kernel_options));
  const int dev = core_device_of(q);
  const size_t ws_bytes = flashmask_bwd_workspace_size(&p, dev);
  at::Tensor ws;
  if (ws_bytes > 0) {
    ws = at::empty({static_cast<int64_t>(ws_bytes)}, q.options().dtype(at::kByte));
    p.workspace = ws.data_ptr();
    p.workspace_bytes = ws_bytes;
  }
  check_status(flashmask_bwd(&p, dev, stream_of(q)), "flashmask_attention backward");
  return {dq, dk, dv, dsink};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "FlashMask attention core (C ABI) for PyTorch tensors";
  m.def("forward", &forward, "FlashMask forward -> (out, softmax_lse)");
  m.def("backward", &backward, "FlashMask backward -> (dq, dk, dv, dsink or None)");
  m.def("has_cuda", []() { return flashmask_has_cuda() != 0; });
}
