// Thin Paddle door to the FlashMask core: tensors -> params, shapes, dtypes.
//
// Ops (prefixed "pfm_": Paddle itself has a built-in `flashmask_attention`):
//   pfm_flashmask_attention(q, k, v, startend_row_indices?, seed_offset, block_mask?)
//       -> out [B, Sq, H, Dv], softmax_lse [B, H, Sq] (fp32)
//   pfm_flashmask_attention_grad: dq, dk, dv (registered as the grad op)
//   pfm_flashmask_attention_bwd: the same gradients as a plain op, for callers
//       that drive the backward themselves (context parallelism).
//   pfm_flashmask_attention_sink(..., block_mask?, learnable_sink): the same with
//       a learnable sink; its grad op adds dsink.
//   pfm_flashmask_attention_grad_grad: refuses double backward (NotImplementedError).
// block_mask: int32 [B, 1 | Hk | H, ceil(Sq/128), ceil(Sk/128)];
// learnable_sink: fp32 [H] (the Python layer casts it).
// The user-facing checks live in paddle_flashmask/checks.py; the checks here
// are a backstop for direct callers and for what a static graph learns only at
// run time. They throw Paddle's own errors (ValueError in Python), which every
// executor turns into a Python exception (a PD_CHECK failure would abort the
// static-graph executor).
// softmax_scale 0 means head_dim ** -0.5 of the run-time head_dim.
#include <cmath>
#include <string>
#include <vector>

#include "core/flashmask_api.h"
#include "core/params_fill.h"
#include "paddle/common/enforce.h"
#include "paddle/extension.h"

namespace {

// ValueError / TypeError in Python.
void require(bool ok, const std::string& what) {
  if (!ok) PADDLE_THROW(common::errors::InvalidArgument("flashmask_attention: %s", what.c_str()));
}
void require_type(bool ok, const std::string& what) {
  if (!ok) PADDLE_THROW(common::errors::InvalidType("flashmask_attention: %s", what.c_str()));
}

// CUDA grid dim y (num_heads) stops at 65535 (batches beyond run in slices).
constexpr int64_t kMaxGridYZ = 65535;

using flashmask::BwdParams;
using flashmask::DType;
using flashmask::FwdParams;

DType to_core_dtype(paddle::DataType dt) {
  switch (dt) {
    case paddle::DataType::FLOAT32: return DType::kFloat32;
    case paddle::DataType::FLOAT16: return DType::kFloat16;
    case paddle::DataType::BFLOAT16: return DType::kBFloat16;
    default: break;
  }
  PADDLE_THROW(common::errors::InvalidType(
      "flashmask_attention: query dtype must be float32, float16 or bfloat16"));
}

int device_of(const paddle::Tensor& t) {
  if (t.is_cpu()) return kFlashMaskCPU;
  require(t.is_gpu(), "query must live on CPU or GPU");
  return kFlashMaskCUDA;
}

void* stream_of(const paddle::Tensor& t) {
#ifdef PADDLE_WITH_CUDA
  if (t.is_gpu()) return reinterpret_cast<void*>(t.stream());
#endif
  (void)t;
  return nullptr;
}

paddle::Tensor contiguous(const paddle::Tensor& t) {
  return t.is_contiguous() ? t : t.contiguous();
}

// A contiguous [B, S, H, D] tensor as the core sees it.
flashmask::View view_of(const paddle::Tensor& t) {
  const auto& s = t.shape();
  return flashmask::contiguous_view(t.data(), {s[0], s[1], s[2], s[3]});
}

// Device scratch the kernels need (mask tile bounds, delta, fp32 dQ), from
// Paddle's allocator; empty on the CPU. Keep the returned tensor alive.
paddle::Tensor attach_workspace(FwdParams* p, size_t bytes, const paddle::Tensor& like) {
  if (bytes == 0) return paddle::Tensor();
  auto ws = paddle::empty({static_cast<int64_t>(bytes)}, paddle::DataType::UINT8, like.place());
  p->workspace = ws.data();
  p->workspace_bytes = bytes;
  return ws;
}

// The core returns 1 for refused params, 2 for a failure while running.
void check_status(int status, const char* what) {
  if (status == 1)
    PADDLE_THROW(common::errors::InvalidArgument("%s: %s", what, flashmask_last_error()));
  if (status != 0)
    PADDLE_THROW(common::errors::PreconditionNotMet("%s: %s", what, flashmask_last_error()));
}

void check_sizes(const paddle::Tensor& q, const paddle::Tensor& k, const paddle::Tensor& v) {
  require(q.shape().size() == 4 && k.shape().size() == 4 && v.shape().size() == 4,
          "query, key and value must be 4-D [batch, seqlen, num_heads, head_dim]");
  require(k.shape()[0] == v.shape()[0] && k.shape()[1] == v.shape()[1] && k.shape()[2] == v.shape()[2],
          "value must have key's batch size, seqlen and num_heads");
  require(k.shape()[0] == q.shape()[0], "key batch size differs from query batch size");
  require(k.shape()[3] == q.shape()[3], "key head_dim differs from query head_dim");
  for (const auto* t : {&q, &k, &v})
    for (int64_t d : t->shape())
      require(d > 0 && d <= INT32_MAX, "query, key and value dims must lie in [1, 2^31 - 1]");
  require(q.shape()[2] % k.shape()[2] == 0,
          "query num_heads must be a multiple of key num_heads (GQA/MQA)");
  require(q.shape()[1] <= flashmask::kMaxSeqlen && k.shape()[1] <= flashmask::kMaxSeqlen,
          "query and key seqlen must be at most 2147418112 (2^31 - 2^16: int32 indices with room "
          "to round up to whole tiles)");
  if (q.is_gpu())
    require(q.shape()[2] <= kMaxGridYZ, "query num_heads must be at most 65535 on GPU");
}

// Optional inputs the core reads besides q, k, v and the column mask.
struct Extras {
  paddle::optional<paddle::Tensor> block_mask;
  paddle::optional<paddle::Tensor> sink;
};

Extras contiguous_extras(const paddle::optional<paddle::Tensor>& block_mask,
                         const paddle::optional<paddle::Tensor>& sink) {
  Extras e;
  if (block_mask) e.block_mask = contiguous(*block_mask);
  if (sink) e.sink = contiguous(*sink);
  return e;
}

// The kernels read both through raw pointers: on query's device, or a GPU
// kernel would read host memory (static graphs skip the Python check).
void set_extras(FwdParams* p, const Extras& e, const paddle::Place& place) {
  if (e.block_mask) {
    const auto& bm = *e.block_mask;
    require(bm.place() == place, "block_mask must be on query's device");
    require_type(bm.dtype() == paddle::DataType::INT32, "block_mask must be int32");
    require(bm.shape().size() == 4 && bm.shape()[0] == p->batch &&
                bm.shape()[2] == flashmask::block_mask_blocks(p->seqlen_q) &&
                bm.shape()[3] == flashmask::block_mask_blocks(p->seqlen_k),
            "block_mask must be [batch, heads, ceil(seqlen_q / 128), ceil(seqlen_k / 128)]");
    flashmask::set_block_mask(p, bm.data<int32_t>(), static_cast<int32_t>(bm.shape()[1]));
  }
  if (e.sink) {
    require(e.sink->place() == place, "learnable_sink must be on query's device");
    require_type(e.sink->dtype() == paddle::DataType::FLOAT32, "learnable_sink must be float32");
    require(e.sink->numel() == p->num_heads, "learnable_sink must be [num_heads]");
    p->learnable_sink = e.sink->data<float>();
  }
}

FwdParams make_fwd_params(const paddle::Tensor& q, const paddle::Tensor& k,
                          const paddle::Tensor& v,
                          const paddle::optional<paddle::Tensor>& startend,
                          const paddle::Tensor& seed_offset, float dropout, bool causal,
                          float softmax_scale) {
  check_sizes(q, k, v);
  require_type(k.dtype() == q.dtype() && v.dtype() == q.dtype(),
               "query, key and value must share one dtype");
  if (startend) {
    const auto& m = *startend;
    require_type(m.dtype() == paddle::DataType::INT32, "startend_row_indices must be int32");
    require(m.shape().size() == 4,
            "startend_row_indices must be 4-D [batch, heads, seqlen_k, ncols]");
    require(m.shape()[0] == q.shape()[0], "startend_row_indices.shape[0] must equal the batch size");
    require(m.shape()[2] == k.shape()[1], "startend_row_indices.shape[2] must equal key seqlen");
    require(m.shape()[1] == 1 || m.shape()[1] == k.shape()[2] || m.shape()[1] == q.shape()[2],
            "startend_row_indices.shape[1] must be 1, num_heads_k or num_heads");
    const int64_t ncols = m.shape()[3];
    require(causal ? (ncols == 1 || ncols == 2) : (ncols == 2 || ncols == 4),
            causal ? "startend_row_indices must have 1 or 2 columns with causal=True"
                   : "startend_row_indices must have 2 or 4 columns with causal=False");
  }
  require(std::isfinite(softmax_scale) && softmax_scale >= 0.f,
          "softmax_scale must be positive and finite (0 means head_dim ** -0.5)");
  require(dropout >= 0.f && dropout < 1.f, "dropout must lie in [0, 1)");
  if (dropout > 0.f) {
    require(seed_offset.dtype() == paddle::DataType::INT64 && seed_offset.numel() == 2,
            "seed_offset must be an int64 tensor of 2 values");
    require(!seed_offset.is_gpu() || q.is_gpu(), "seed_offset is on the GPU but query on the CPU");
  }

  FwdParams p;
  const float scale = softmax_scale > 0.f ? softmax_scale
                                          : 1.f / std::sqrt(static_cast<float>(q.shape()[3]));
  flashmask::fill_attention(&p, to_core_dtype(q.dtype()), view_of(q), view_of(k), view_of(v),
                            causal, scale);
  if (startend) {
    const auto& m = startend->shape();
    flashmask::fill_mask(&p, startend->data<int32_t>(), m[1], m[2], m[3]);
  }
  // seed_offset on the GPU is read by the kernels: graph-capture safe
  flashmask::fill_dropout(&p, dropout, dropout > 0.f ? seed_offset.data<int64_t>() : nullptr,
                          seed_offset.is_gpu());
  return p;
}

std::vector<int64_t> out_shape(const std::vector<int64_t>& q, const std::vector<int64_t>& v) {
  return {q[0], q[1], q[2], v[3]};
}

using OptTensor = paddle::optional<paddle::Tensor>;

// out, softmax_lse.
std::vector<paddle::Tensor> Forward(const paddle::Tensor& query, const paddle::Tensor& key,
                                    const paddle::Tensor& value, const OptTensor& startend,
                                    const paddle::Tensor& seed_offset, const OptTensor& block_mask,
                                    const OptTensor& sink, float dropout, bool causal,
                                    float softmax_scale, int kernel_options) {
  const auto q = contiguous(query), k = contiguous(key), v = contiguous(value);
  paddle::optional<paddle::Tensor> mask;
  if (startend) mask = contiguous(*startend);
  const Extras extras = contiguous_extras(block_mask, sink);
  FwdParams p = make_fwd_params(q, k, v, mask, seed_offset, dropout, causal, softmax_scale);
  p.kernels = flashmask::KernelOptions::from_bits(kernel_options);
  set_extras(&p, extras, q.place());
  auto out = paddle::empty(out_shape(q.shape(), v.shape()), q.dtype(), q.place());
  auto lse = paddle::empty({q.shape()[0], q.shape()[2], q.shape()[1]}, paddle::DataType::FLOAT32,
                           q.place());
  flashmask::fill_out(&p, view_of(out), lse.data<float>());
  const auto ws = attach_workspace(&p, flashmask_fwd_workspace_size(&p, device_of(q)), q);
  check_status(flashmask_fwd(&p, device_of(q), stream_of(q)), "flashmask_attention forward");
  return {out, lse};
}

// dq, dk, dv, and dsink (fp32 [H]) when there is a sink.
std::vector<paddle::Tensor> Backward(const paddle::Tensor& query, const paddle::Tensor& key,
                                     const paddle::Tensor& value, const OptTensor& startend,
                                     const paddle::Tensor& seed_offset, const OptTensor& block_mask,
                                     const OptTensor& sink, const paddle::Tensor& out,
                                     const paddle::Tensor& softmax_lse,
                                     const paddle::Tensor& out_grad, float dropout, bool causal,
                                     float softmax_scale, bool deterministic, int kernel_options) {
  const auto q = contiguous(query), k = contiguous(key), v = contiguous(value);
  const auto o = contiguous(out), dout = contiguous(out_grad), lse = contiguous(softmax_lse);
  paddle::optional<paddle::Tensor> mask;
  if (startend) mask = contiguous(*startend);
  const Extras extras = contiguous_extras(block_mask, sink);
  BwdParams p;
  static_cast<FwdParams&>(p) =
      make_fwd_params(q, k, v, mask, seed_offset, dropout, causal, softmax_scale);
  set_extras(&p, extras, q.place());
  const auto o_shape = out_shape(q.shape(), v.shape());
  require_type(o.dtype() == q.dtype() && dout.dtype() == q.dtype(),
               "backward: out and out_grad must have query's dtype");
  require(o.shape() == o_shape && dout.shape() == o_shape,
          "backward: out and out_grad must be [batch, seqlen_q, num_heads, value head_dim]");
  require_type(lse.dtype() == paddle::DataType::FLOAT32, "backward: softmax_lse must be float32");
  require(lse.shape() == std::vector<int64_t>{q.shape()[0], q.shape()[2], q.shape()[1]},
          "backward: softmax_lse must be [batch, num_heads, seqlen_q]");
  auto dq = paddle::empty(q.shape(), q.dtype(), q.place());
  auto dk = paddle::empty(k.shape(), k.dtype(), k.place());
  auto dv = paddle::empty(v.shape(), v.dtype(), v.place());
  flashmask::fill_out(&p, view_of(o), const_cast<float*>(lse.data<float>()));
  flashmask::fill_grads(&p, dout.data(), view_of(dq), view_of(dk), view_of(dv));
  std::vector<paddle::Tensor> grads = {dq, dk, dv};
  if (extras.sink) {
    grads.push_back(paddle::empty({p.num_heads}, paddle::DataType::FLOAT32, q.place()));
    p.dsink = grads.back().data<float>();
  }
  p.deterministic = deterministic;
  p.kernels = flashmask::KernelOptions::from_bits(kernel_options);
  const auto ws = attach_workspace(&p, flashmask_bwd_workspace_size(&p, device_of(q)), q);
  check_status(flashmask_bwd(&p, device_of(q), stream_of(q)), "flashmask_attention backward");
  return grads;
}

// Kernel entry points of the two op families: without a sink (3 gradients) and
// with one (a required input, so its gradient is a plain 4th output: Paddle's
// static graphs take optional outputs only in place).
std::vector<paddle::Tensor> FlashMaskForward(const paddle::Tensor& q, const paddle::Tensor& k,
                                             const paddle::Tensor& v, const OptTensor& startend,
                                             const paddle::Tensor& seed_offset,
                                             const OptTensor& block_mask, float dropout,
                                             bool causal, float softmax_scale, bool deterministic,
                                             int kernel_options) {
  return Forward(q, k, v, startend, seed_offset, block_mask, paddle::none, dropout, causal,
                 softmax_scale, kernel_options);
}

std::vector<paddle::Tensor> FlashMaskBackward(
    const paddle::Tensor& q, const paddle::Tensor& k, const paddle::Tensor& v,
    const OptTensor& startend, const paddle::Tensor& seed_offset, const OptTensor& block_mask,
    const paddle::Tensor& out, const paddle::Tensor& lse, const paddle::Tensor& out_grad,
    float dropout, bool causal, float softmax_scale, bool deterministic, int kernel_options) {
  return Backward(q, k, v, startend, seed_offset, block_mask, paddle::none, out, lse, out_grad,
                  dropout, causal, softmax_scale, deterministic, kernel_options);
}

std::vector<paddle::Tensor> FlashMaskSinkForward(
    const paddle::Tensor& q, const paddle::Tensor& k, const paddle::Tensor& v,
    const OptTensor& startend, const paddle::Tensor& seed_offset, const OptTensor& block_mask,
    const paddle::Tensor& sink, float dropout, bool causal, float softmax_scale, bool deterministic,
    int kernel_options) {
  return Forward(q, k, v, startend, seed_offset, block_mask, sink, dropout, causal, softmax_scale,
                 kernel_options);
}

std::vector<paddle::Tensor> FlashMaskSinkBackward(
    const paddle::Tensor& q, const paddle::Tensor& k, const paddle::Tensor& v,
    const OptTensor& startend, const paddle::Tensor& seed_offset, const OptTensor& block_mask,
    const paddle::Tensor& sink, const paddle::Tensor& out, const paddle::Tensor& lse,
    const paddle::Tensor& out_grad, float dropout, bool causal, float softmax_scale,
    bool deterministic, int kernel_options) {
  return Backward(q, k, v, startend, seed_offset, block_mask, sink, out, lse, out_grad, dropout,
                  causal, softmax_scale, deterministic, kernel_options);
}

using OptShape = paddle::optional<std::vector<int64_t>>;
using OptDtype = paddle::optional<paddle::DataType>;
using Shape = std::vector<int64_t>;

std::vector<Shape> ForwardInferShape(const Shape& q, const Shape& k, const Shape& v,
                                     const OptShape& startend, const Shape& seed_offset,
                                     const OptShape& block_mask, float dropout, bool causal,
                                     float softmax_scale) {
  return {out_shape(q, v), {q[0], q[2], q[1]}};
}

std::vector<paddle::DataType> ForwardInferDtype(const paddle::DataType& q,
                                                const paddle::DataType& k,
                                                const paddle::DataType& v,
                                                const OptDtype& startend,
                                                const paddle::DataType& seed_offset,
                                                const OptDtype& block_mask) {
  return {q, paddle::DataType::FLOAT32};
}

std::vector<Shape> BackwardInferShape(const Shape& q, const Shape& k, const Shape& v,
                                      const OptShape& startend, const Shape& seed_offset,
                                      const OptShape& block_mask, const Shape& out,
                                      const Shape& lse, const Shape& dout, float dropout,
                                      bool causal, float softmax_scale) {
  return {q, k, v};
}

std::vector<paddle::DataType> BackwardInferDtype(
    const paddle::DataType& q, const paddle::DataType& k, const paddle::DataType& v,
    const OptDtype& startend, const paddle::DataType& seed_offset, const OptDtype& block_mask,
    const paddle::DataType& out, const paddle::DataType& lse, const paddle::DataType& dout) {
  return {q, k, v};
}

std::vector<Shape> SinkForwardInferShape(const Shape& q, const Shape& k, const Shape& v,
                                         const OptShape& startend, const Shape& seed_offset,
                                         const OptShape& block_mask, const Shape& sink,
                                         float dropout, bool causal, float softmax_scale) {
  return ForwardInferShape(q, k, v, startend, seed_offset, block_mask, dropout, causal,
                           softmax_scale);
}

std::vector<paddle::DataType> SinkForwardInferDtype(
    const paddle::DataType& q, const paddle::DataType& k, const paddle::DataType& v,
    const OptDtype& startend, const paddle::DataType& seed_offset, const OptDtype& block_mask,
    const paddle::DataType& sink) {
  return {q, paddle::DataType::FLOAT32};
}

std::vector<Shape> SinkBackwardInferShape(const Shape& q, const Shape& k, const Shape& v,
                                          const OptShape& startend, const Shape& seed_offset,
                                          const OptShape& block_mask, const Shape& sink,
                                          const Shape& out, const Shape& lse, const Shape& dout,
                                          float dropout, bool causal, float softmax_scale) {
  return {q, k, v, sink};
}

std::vector<paddle::DataType> SinkBackwardInferDtype(
    const paddle::DataType& q, const paddle::DataType& k, const paddle::DataType& v,
    const OptDtype& startend, const paddle::DataType& seed_offset, const OptDtype& block_mask,
    const paddle::DataType& sink, const paddle::DataType& out, const paddle::DataType& lse,
    const paddle::DataType& dout) {
  return {q, k, v, paddle::DataType::FLOAT32};
}

// Second-order terms are not implemented: refuse rather than drop them.
std::vector<paddle::Tensor> DoubleBackward(const paddle::Tensor&, const paddle::Tensor&,
                                           const paddle::Tensor&, float, bool, float) {
  PADDLE_THROW(common::errors::Unimplemented(
      "flashmask_attention: double backward (a gradient of the gradient, e.g. paddle.grad(..., "
      "create_graph=True) then backward through the result) is not supported"));
}

std::vector<paddle::Tensor> SinkDoubleBackward(const paddle::Tensor& ddq, const paddle::Tensor& ddk,
                                               const paddle::Tensor& ddv, const paddle::Tensor&,
                                               float dropout, bool causal, float softmax_scale) {
  return DoubleBackward(ddq, ddk, ddv, dropout, causal, softmax_scale);
}

}  // namespace

// deterministic and kernel_options (KernelOptions::to_bits) come from the user's
// switches (paddle_flashmask/switches.py); the infer functions read the first three.
#define FLASHMASK_ATTRS                                                                    \
  {"dropout: float", "causal: bool", "softmax_scale: float", "deterministic: bool", \
   "kernel_options: int"}
#define FLASHMASK_INPUTS \
  "query", "key", "value", paddle::Optional("startend_row_indices"), "seed_offset", \
      paddle::Optional("block_mask")

PD_BUILD_OP(pfm_flashmask_attention)
    .Inputs({FLASHMASK_INPUTS})
    .Outputs({"out", "softmax_lse"})
    .Attrs(FLASHMASK_ATTRS)
    .SetKernelFn(PD_KERNEL(FlashMaskForward))
    .SetInferShapeFn(PD_INFER_SHAPE(ForwardInferShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(ForwardInferDtype));

PD_BUILD_GRAD_OP(pfm_flashmask_attention)
    .Inputs({FLASHMASK_INPUTS, "out", "softmax_lse", paddle::Grad("out")})
    .Outputs({paddle::Grad("query"), paddle::Grad("key"), paddle::Grad("value")})
    .Attrs(FLASHMASK_ATTRS)
    .SetKernelFn(PD_KERNEL(FlashMaskBackward))
    .SetInferShapeFn(PD_INFER_SHAPE(BackwardInferShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(BackwardInferDtype));

PD_BUILD_DOUBLE_GRAD_OP(pfm_flashmask_attention)
    .Inputs({paddle::Grad(paddle::Grad("query")), paddle::Grad(paddle::Grad("key")),
             paddle::Grad(paddle::Grad("value"))})
    .Outputs({paddle::Grad(paddle::Grad("out"))})
    .Attrs(FLASHMASK_ATTRS)
    .SetKernelFn(PD_KERNEL(DoubleBackward));

PD_BUILD_OP(pfm_flashmask_attention_bwd)
    .Inputs({FLASHMASK_INPUTS, "out", "softmax_lse", "out_grad"})
    .Outputs({"query_grad", "key_grad", "value_grad"})
    .Attrs(FLASHMASK_ATTRS)
    .SetKernelFn(PD_KERNEL(FlashMaskBackward))
    .SetInferShapeFn(PD_INFER_SHAPE(BackwardInferShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(BackwardInferDtype));

PD_BUILD_OP(pfm_flashmask_attention_sink)
    .Inputs({FLASHMASK_INPUTS, "learnable_sink"})
    .Outputs({"out", "softmax_lse"})
    .Attrs(FLASHMASK_ATTRS)
    .SetKernelFn(PD_KERNEL(FlashMaskSinkForward))
    .SetInferShapeFn(PD_INFER_SHAPE(SinkForwardInferShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(SinkForwardInferDtype));

PD_BUILD_GRAD_OP(pfm_flashmask_attention_sink)
    .Inputs({FLASHMASK_INPUTS, "learnable_sink", "out", "softmax_lse", paddle::Grad("out")})
    .Outputs({paddle::Grad("query"), paddle::Grad("key"), paddle::Grad("value"),
              paddle::Grad("learnable_sink")})
    .Attrs(FLASHMASK_ATTRS)
    .SetKernelFn(PD_KERNEL(FlashMaskSinkBackward))
    .SetInferShapeFn(PD_INFER_SHAPE(SinkBackwardInferShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(SinkBackwardInferDtype));

PD_BUILD_DOUBLE_GRAD_OP(pfm_flashmask_attention_sink)
    .Inputs({paddle::Grad(paddle::Grad("query")), paddle::Grad(paddle::Grad("key")),
             paddle::Grad(paddle::Grad("value")), paddle::Grad(paddle::Grad("learnable_sink"))})
    .Outputs({paddle::Grad(paddle::Grad("out"))})
    .Attrs(FLASHMASK_ATTRS)
    .SetKernelFn(PD_KERNEL(SinkDoubleBackward));
