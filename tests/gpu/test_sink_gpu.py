"""The learnable attention sink on the GPU kernels (sm90 and sm80 paths,
default and deterministic backward), through the PyTorch door, against the
dense fp32 reference with the sink column (flashmask_ref.attention_ref):
out, lse, dq, dk, dv and dsink. Tolerance as in test_flashmask_torch.py: at
most twice the error of a dense implementation in the inputs' dtype, plus
rounding noise."""
import pytest

torch = pytest.importorskip("torch")
from paddle_flashmask.torch import _ext, flashmask_attention  # noqa: E402

from flashmask_ref import attention_ref, dense_allowed, random_startend  # noqa: E402
from test_flashmask_torch import LAYOUTS, kernel_path, rounding_noise  # noqa: E402,F401 (fixture)

if not torch.cuda.is_available():
    pytest.skip("no CUDA GPU", allow_module_level=True)
if not _ext.is_available() or not _ext.has_cuda():
    pytest.skip("extension not built with CUDA kernels", allow_module_level=True)

def run_sink_case(b, sq, sk, h, hk, d, dtype, causal, idx, sink_values, *, deterministic=None, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(b, sq, h, d, generator=gen).cuda().to(dtype).requires_grad_()
    k = torch.randn(b, sk, hk, d, generator=gen).cuda().to(dtype).requires_grad_()
    v = torch.randn(b, sk, hk, d, generator=gen).cuda().to(dtype).requires_grad_()
    dout = torch.randn(b, sq, h, d, generator=gen).cuda().to(dtype)
    sink = torch.tensor(sink_values, dtype=torch.float32, device="cuda").requires_grad_()
    idx = idx.cuda() if idx is not None else None
    out, lse = flashmask_attention(q, k, v, idx, causal=causal, learnable_sink=sink,
                                   return_softmax_lse=True, deterministic=deterministic)
    allowed = dense_allowed(idx, causal, sq, sk, "cuda")
    scale = d ** -0.5
    leaves = {}
    refs = {}
    for name, upcast in (("ref", True), ("pt", False)):
        leaves[name] = [t.detach().clone().requires_grad_() for t in (q, k, v, sink)]
        qq, kk, vv, ss = leaves[name]
        refs[name] = attention_ref(qq, kk, vv, allowed, scale, upcast=upcast, sink=ss)
    out_ref, lse_ref = refs["ref"]
    out_pt = refs["pt"][0]

    assert not torch.isnan(out).any() and not torch.isnan(lse).any()
    err, err_pt = (out.float() - out_ref).abs().max().item(), (out_pt.float() - out_ref).abs().max().item()
    assert err <= 2 * err_pt + rounding_noise(out_ref.to(dtype).float()) + 1e-5, (err, err_pt)
    assert (lse - lse_ref).abs().max().item() < 1e-2
    out.backward(dout)
    out_ref.backward(dout.float())
    out_pt.backward(dout)
    ours = (q.grad, k.grad, v.grad, sink.grad)
    # dsink = -sum_i p_i delta_i with delta_i = dout_i . out_i from the stored
    # (rounded) out, as every FlashAttention backward computes delta: its error
    # is bounded by sum_i p_i |dout_i . (out_i - out_ref_i)| on top of the usual.
    p_sink = torch.exp(sink.detach().view(1, h, 1) - lse_ref)  # [B, H, Sq]
    delta = (dout.float() * out.detach().float()).sum(-1).transpose(1, 2)
    delta_err = (dout.float() * (out.detach().float() - out_ref.detach())).sum(-1).abs().transpose(1, 2)
    out_bound = (p_sink * delta_err).sum((0, 2))
    exact = -(torch.exp(sink.detach().view(1, h, 1) - lse) * delta).sum((0, 2))
    assert (sink.grad - exact).abs().max().item() <= 1e-3 * max(1.0, exact.abs().max().item())
    for name, g, gr, gp in zip(("dq", "dk", "dv", "dsink"), ours, (t.grad for t in leaves["ref"]),
                               (t.grad for t in leaves["pt"])):
        assert g is not None and not torch.isnan(g).any(), name
        e, e_pt = (g.float() - gr).abs().max().item(), (gp.float() - gr).abs().max().item()
        tol = 2 * e_pt + rounding_noise(gr.to(dtype).float()) + 1e-4 * max(1.0, gr.abs().max().item())
        if name == "dsink":
            tol += 1.5 * out_bound.max().item()
        assert e <= tol, (name, e, e_pt, tol)
    return out, lse, ours


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("d", [64, 128, 256])
@pytest.mark.parametrize("causal,ncols", LAYOUTS)
def test_sink_layouts_head_dims(dtype, d, causal, ncols, kernel_path):
    gen = torch.Generator().manual_seed(1)
    idx = random_startend(gen, 2, 1, 300, 300, causal, ncols)
    run_sink_case(2, 300, 300, 2, 2, d, dtype, causal, idx, [-1.0, 2.5])


@pytest.mark.parametrize("sq,sk", [(77, 333), (333, 77), (1, 129), (1000, 1000)])
@pytest.mark.parametrize("h,hk,mask_heads", [(4, 2, 2), (4, 1, 4), (6, 3, 1)])
def test_sink_gqa_lengths(sq, sk, h, hk, mask_heads, kernel_path):
    gen = torch.Generator().manual_seed(sq + sk + h)
    idx = random_startend(gen, 1, mask_heads, sq, sk, True, 2)
    sinks = [float(x) for x in torch.linspace(-4, 6, h)]
    run_sink_case(1, sq, sk, h, hk, 128, torch.bfloat16, True, idx, sinks)


@pytest.mark.parametrize("sink_value", [-30.0, 0.0, 40.0])
def test_sink_fully_masked_rows_and_extreme_logits(sink_value, kernel_path):
    """Rows [64, 200) see no key: out 0, lse = sink; a sink far above or below
    every score must neither overflow nor vanish from lse."""
    b, s, h = 1, 384, 2
    idx = torch.zeros(b, 1, s, 4, dtype=torch.int32)
    idx[..., 0], idx[..., 1] = 64, 200  # lower band masks rows [64, 200) for every key
    out, lse, _ = run_sink_case(b, s, s, h, h, 128, torch.bfloat16, False, idx, [sink_value, -2.0])
    assert torch.count_nonzero(out[:, 64:200]) == 0
    assert torch.equal(lse[:, 0, 64:200], torch.full_like(lse[:, 0, 64:200], sink_value))


@pytest.mark.parametrize("causal,ncols", [(True, 1), (False, 4)])
def test_sink_deterministic_bitwise(causal, ncols, kernel_path):
    gen = torch.Generator().manual_seed(3)
    idx = random_startend(gen, 2, 2, 700, 700, causal, ncols)
    first = run_sink_case(2, 700, 700, 4, 2, 128, torch.bfloat16, causal, idx, [0.5, -1.0, 3.0, 1.0],
                          deterministic=True)[2]
    again = run_sink_case(2, 700, 700, 4, 2, 128, torch.bfloat16, causal, idx, [0.5, -1.0, 3.0, 1.0],
                          deterministic=True)[2]
    for g1, g2 in zip(first, again):
        assert torch.equal(g1, g2)


def test_sink_in_query_dtype():
    """A bf16 sink gets a bf16 gradient. (Zero-size inputs never reach the
    kernels: the checks refuse them, tests/test_checks.py.)"""
    q = torch.randn(1, 64, 2, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    sink = torch.tensor([1.0, -1.0], device="cuda", dtype=torch.bfloat16, requires_grad=True)
    out = flashmask_attention(q, q, q, causal=True, learnable_sink=sink)
    out.float().sum().backward()
    assert sink.grad.dtype == torch.bfloat16 and torch.isfinite(sink.grad).all()
