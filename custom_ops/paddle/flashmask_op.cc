// Thin Paddle door to the FlashMask core: tensors -> params, shapes, dtypes.
//
// Ops (prefixed "pfm_": Paddle itself has a built-in `flashmask_attention`):
//   pfm_flashmask_attention(q, k, v, startend_row_indices?, seed_offset)
//       -> out [B, Sq, H, D], softmax_lse [B, H, Sq] (fp32)
//   pfm_flashmask_attention_grad: dq, dk, dv (registered as the grad op)
//   pfm_flashmask_attention_bwd: the same gradients as a plain op, for callers
//       that drive the backward themselves (context parallelism).
//   pfm_flashmask_attention_grad_grad: refuses double backward (NotImplementedError).
// The user-facing checks live in paddle_flashmask/checks.py; the checks here
// are a backstop for direct callers and for what a static graph learns only at
// run time. They throw Paddle's own errors (ValueError in Python), which every
// executor turns into a Python exception; a PD_CHECK failure aborts the
// static-graph executor.
// softmax_scale 0 means head_dim ** -0.5 of the run-time head_dim.
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/flashmask_api.h"
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

// CUDA grid dims y and z (num_heads, batch) stop at 65535.
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

// Row-major [B, S, H, D] strides.
void set_strides(const paddle::Tensor& t, int64_t* batch, int64_t* row, int64_t* head) {
  const auto s = t.shape();
  *head = s[3];
  *row = s[2] * s[3];
  *batch = s[1] * s[2] * s[3];
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

bool env_on(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && std::string(v) == "1";
}

// The user's switches (README, "Switches"; paddle_flashmask/switches.py reads
// the same variables for the torch door).
flashmask::KernelOptions kernel_options_from_env() {
  flashmask::KernelOptions o;
  o.allow_sm90 = !env_on("FLASHMASK_DISABLE_SM90");
  o.force_low_smem_bwd = env_on("FLASHMASK_FORCE_LOW_SMEM_BWD");
  return o;
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
  require(k.shape() == v.shape(), "value shape must equal key shape");
  require(k.shape()[0] == q.shape()[0], "key batch size differs from query batch size");
  require(k.shape()[3] == q.shape()[3], "key head_dim differs from query head_dim");
  for (const auto* t : {&q, &k})
    for (int64_t d : t->shape())
      require(d > 0 && d <= INT32_MAX, "query and key dims must lie in [1, 2^31 - 1]");
  require(q.shape()[2] % k.shape()[2] == 0,
          "query num_heads must be a multiple of key num_heads (GQA/MQA)");
  if (q.is_gpu())
    require(q.shape()[0] <= kMaxGridYZ && q.shape()[2] <= kMaxGridYZ,
            "query batch size and num_heads must be at most 65535 on GPU");
}

FwdParams make_fwd_params(const paddle::Tensor& q, const paddle::Tensor& k,
                          const paddle::Tensor& v,
                          const paddle::optional<paddle::Tensor>& startend,
                          const paddle::Tensor& seed_offset, float dropout, bool causal,
                          float softmax_scale) {
  check_sizes(q, k, v);
  FwdParams p;
  p.dtype = to_core_dtype(q.dtype());
  require_type(k.dtype() == q.dtype() && v.dtype() == q.dtype(),
               "query, key and value must share one dtype");
  p.batch = static_cast<int32_t>(q.shape()[0]);
  p.seqlen_q = static_cast<int32_t>(q.shape()[1]);
  p.num_heads = static_cast<int32_t>(q.shape()[2]);
  p.head_dim = static_cast<int32_t>(q.shape()[3]);
  p.seqlen_k = static_cast<int32_t>(k.shape()[1]);
  p.num_heads_k = static_cast<int32_t>(k.shape()[2]);
  p.q = q.data();
  p.k = k.data();
  p.v = v.data();
  set_strides(q, &p.q_batch_stride, &p.q_row_stride, &p.q_head_stride);
  set_strides(k, &p.k_batch_stride, &p.k_row_stride, &p.k_head_stride);
  set_strides(v, &p.v_batch_stride, &p.v_row_stride, &p.v_head_stride);
  set_strides(q, &p.o_batch_stride, &p.o_row_stride, &p.o_head_stride);
  if (startend) {
    const auto& m = *startend;
    require_type(m.dtype() == paddle::DataType::INT32, "startend_row_indices must be int32");
    require(m.shape().size() == 4,
            "startend_row_indices must be 4-D [batch, heads, seqlen_k, ncols]");
    require(m.shape()[0] == p.batch, "startend_row_indices.shape[0] must equal the batch size");
    require(m.shape()[2] == p.seqlen_k, "startend_row_indices.shape[2] must equal key seqlen");
    require(m.shape()[1] == 1 || m.shape()[1] == p.num_heads_k || m.shape()[1] == p.num_heads,
            "startend_row_indices.shape[1] must be 1, num_heads_k or num_heads");
    const int64_t ncols = m.shape()[3];
    require(causal ? (ncols == 1 || ncols == 2) : (ncols == 2 || ncols == 4),
            causal ? "startend_row_indices must have 1 or 2 columns with causal=True"
                   : "startend_row_indices must have 2 or 4 columns with causal=False");
    p.mask.startend = m.data<int32_t>();
    p.mask.heads = static_cast<int32_t>(m.shape()[1]);
    p.mask.ncols = static_cast<int32_t>(m.shape()[3]);
    p.mask.head_stride = m.shape()[2] * m.shape()[3];
    p.mask.batch_stride = m.shape()[1] * p.mask.head_stride;
  }
  p.causal = causal;
  require(std::isfinite(softmax_scale) && softmax_scale >= 0.f,
          "softmax_scale must be positive and finite (0 means head_dim ** -0.5)");
  p.softmax_scale =
      softmax_scale > 0.f ? softmax_scale : 1.f / std::sqrt(static_cast<float>(p.head_dim));
  require(dropout >= 0.f && dropout < 1.f, "dropout must lie in [0, 1)");
  p.dropout_p = dropout;
  if (dropout > 0.f) {
    require(seed_offset.dtype() == paddle::DataType::INT64 && seed_offset.numel() == 2,
            "seed_offset must be an int64 tensor of 2 values");
    if (seed_offset.is_gpu()) {  // read by the kernels: graph-capture safe
      require(q.is_gpu(), "seed_offset is on the GPU but query on the CPU");
      p.seed_offset_dev = seed_offset.data<int64_t>();
    } else {
      const int64_t* so = seed_offset.data<int64_t>();
      p.seed = static_cast<uint64_t>(so[0]);
      p.offset = static_cast<uint64_t>(so[1]);
    }
  }
  return p;
}

std::vector<paddle::Tensor> FlashMaskForward(const paddle::Tensor& query,
                                             const paddle::Tensor& key,
                                             const paddle::Tensor& value,
                                             const paddle::optional<paddle::Tensor>& startend,
                                             const paddle::Tensor& seed_offset, float dropout,
                                             bool causal, float softmax_scale) {
  const auto q = contiguous(query), k = contiguous(key), v = contiguous(value);
  paddle::optional<paddle::Tensor> mask;
  if (startend) mask = contiguous(*startend);
  FwdParams p = make_fwd_params(q, k, v, mask, seed_offset, dropout, causal, softmax_scale);
  p.kernels = kernel_options_from_env();
  auto out = paddle::empty(q.shape(), q.dtype(), q.place());
  auto lse = paddle::empty({q.shape()[0], q.shape()[2], q.shape()[1]}, paddle::DataType::FLOAT32,
                           q.place());
  p.out = out.data();
  p.softmax_lse = lse.data<float>();
  const auto ws = attach_workspace(&p, flashmask_fwd_workspace_size(&p, device_of(q)), q);
  check_status(flashmask_fwd(&p, device_of(q), stream_of(q)), "flashmask_attention forward");
  return {out, lse};
}

std::vector<paddle::Tensor> FlashMaskBackward(
    const paddle::Tensor& query, const paddle::Tensor& key, const paddle::Tensor& value,
    const paddle::optional<paddle::Tensor>& startend, const paddle::Tensor& seed_offset,
    const paddle::Tensor& out, const paddle::Tensor& softmax_lse, const paddle::Tensor& out_grad,
    float dropout, bool causal, float softmax_scale) {
  const auto q = contiguous(query), k = contiguous(key), v = contiguous(value);
  const auto o = contiguous(out), dout = contiguous(out_grad), lse = contiguous(softmax_lse);
  paddle::optional<paddle::Tensor> mask;
  if (startend) mask = contiguous(*startend);
  BwdParams p;
  static_cast<FwdParams&>(p) =
      make_fwd_params(q, k, v, mask, seed_offset, dropout, causal, softmax_scale);
  require_type(o.dtype() == q.dtype() && dout.dtype() == q.dtype(),
               "backward: out and out_grad must have query's dtype");
  require(o.shape() == q.shape() && dout.shape() == q.shape(),
          "backward: out and out_grad must have query's shape");
  require_type(lse.dtype() == paddle::DataType::FLOAT32, "backward: softmax_lse must be float32");
  require(lse.shape() == std::vector<int64_t>{q.shape()[0], q.shape()[2], q.shape()[1]},
          "backward: softmax_lse must be [batch, num_heads, seqlen_q]");
  auto dq = paddle::empty(q.shape(), q.dtype(), q.place());
  auto dk = paddle::empty(k.shape(), k.dtype(), k.place());
  auto dv = paddle::empty(v.shape(), v.dtype(), v.place());
  p.out = const_cast<void*>(o.data());
  p.softmax_lse = const_cast<float*>(lse.data<float>());
  p.dout = dout.data();
  p.dq = dq.data();
  p.dk = dk.data();
  p.dv = dv.data();
  set_strides(q, &p.dq_batch_stride, &p.dq_row_stride, &p.dq_head_stride);
  set_strides(k, &p.dk_batch_stride, &p.dk_row_stride, &p.dk_head_stride);
  set_strides(v, &p.dv_batch_stride, &p.dv_row_stride, &p.dv_head_stride);
  p.deterministic = env_on("FLASHMASK_DETERMINISTIC");
  p.kernels = kernel_options_from_env();
  const auto ws = attach_workspace(&p, flashmask_bwd_workspace_size(&p, device_of(q)), q);
  check_status(flashmask_bwd(&p, device_of(q), stream_of(q)), "flashmask_attention backward");
  return {dq, dk, dv};
}

std::vector<std::vector<int64_t>> ForwardInferShape(
    const std::vector<int64_t>& q, const std::vector<int64_t>& k, const std::vector<int64_t>& v,
    const paddle::optional<std::vector<int64_t>>& startend, const std::vector<int64_t>& seed_offset,
    float dropout, bool causal, float softmax_scale) {
  return {q, {q[0], q[2], q[1]}};
}

std::vector<paddle::DataType> ForwardInferDtype(const paddle::DataType& q,
                                                const paddle::DataType& k,
                                                const paddle::DataType& v,
                                                const paddle::optional<paddle::DataType>& startend,
                                                const paddle::DataType& seed_offset) {
  return {q, paddle::DataType::FLOAT32};
}

std::vector<std::vector<int64_t>> BackwardInferShape(
    const std::vector<int64_t>& q, const std::vector<int64_t>& k, const std::vector<int64_t>& v,
    const paddle::optional<std::vector<int64_t>>& startend, const std::vector<int64_t>& seed_offset,
    const std::vector<int64_t>& out, const std::vector<int64_t>& lse,
    const std::vector<int64_t>& dout, float dropout, bool causal, float softmax_scale) {
  return {q, k, v};
}

std::vector<paddle::DataType> BackwardInferDtype(
    const paddle::DataType& q, const paddle::DataType& k, const paddle::DataType& v,
    const paddle::optional<paddle::DataType>& startend, const paddle::DataType& seed_offset,
    const paddle::DataType& out, const paddle::DataType& lse, const paddle::DataType& dout) {
  return {q, k, v};
}

// Second-order terms are not implemented: refuse rather than drop them.
std::vector<paddle::Tensor> DoubleBackward(const paddle::Tensor&, const paddle::Tensor&,
                                           const paddle::Tensor&, float, bool, float) {
  PADDLE_THROW(common::errors::Unimplemented(
      "flashmask_attention: double backward (a gradient of the gradient, e.g. paddle.grad(..., "
      "create_graph=True) then backward through the result) is not supported"));
}

}  // namespace

#define FLASHMASK_ATTRS {"dropout: float", "causal: bool", "softmax_scale: float"}

PD_BUILD_OP(pfm_flashmask_attention)
    .Inputs({"query", "key", "value", paddle::Optional("startend_row_indices"), "seed_offset"})
    .Outputs({"out", "softmax_lse"})
    .Attrs(FLASHMASK_ATTRS)
    .SetKernelFn(PD_KERNEL(FlashMaskForward))
    .SetInferShapeFn(PD_INFER_SHAPE(ForwardInferShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(ForwardInferDtype));

PD_BUILD_GRAD_OP(pfm_flashmask_attention)
    .Inputs({"query", "key", "value", paddle::Optional("startend_row_indices"), "seed_offset",
             "out", "softmax_lse", paddle::Grad("out")})
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
    .Inputs({"query", "key", "value", paddle::Optional("startend_row_indices"), "seed_offset",
             "out", "softmax_lse", "out_grad"})
    .Outputs({"query_grad", "key_grad", "value_grad"})
    .Attrs(FLASHMASK_ATTRS)
    .SetKernelFn(PD_KERNEL(FlashMaskBackward))
    .SetInferShapeFn(PD_INFER_SHAPE(BackwardInferShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(BackwardInferDtype));
