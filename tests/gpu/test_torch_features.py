"""The torch door with learnable_sink, block_mask and Dv != D against a dense
reference: on CPU tensors all three (float64), on CUDA tensors Dv != D (zero
padded to a compiled head dim; the sink's own tests are test_sink_gpu.py).
Skipped where torch or the extension is missing."""
import pytest

torch = pytest.importorskip("torch")
from paddle_flashmask.torch import _ext, flashmask_attention  # noqa: E402

from flashmask_ref import dense_allowed, random_startend  # noqa: E402

if not _ext.is_available():
    pytest.skip("extension not built (python custom_ops/torch/build.py)", allow_module_level=True)


def reference(q, k, v, allowed, scale, sink):
    """float64 softmax over the keys and the (unscaled) sink column; lse includes the sink."""
    h, hk = q.shape[2], k.shape[2]
    qh, kh, vh = (t.double().transpose(1, 2) for t in (q, k, v))
    kh, vh = kh.repeat_interleave(h // hk, dim=1), vh.repeat_interleave(h // hk, dim=1)
    s = torch.matmul(qh, kh.transpose(-1, -2)) * scale
    s = s.masked_fill(~allowed.repeat_interleave(h // allowed.shape[1], dim=1), float("-inf"))
    sink_col = sink.double().view(1, h, 1, 1).expand(*s.shape[:3], 1)
    logits = torch.cat([s, sink_col], dim=-1)
    lse = torch.logsumexp(logits, dim=-1)
    p = torch.exp(s - lse.unsqueeze(-1))
    return torch.matmul(p, vh).transpose(1, 2), lse


@pytest.mark.parametrize("causal,ncols", [(True, 1), (False, 4)])
def test_sink_block_mask_and_dv_on_cpu(causal, ncols):
    gen = torch.Generator().manual_seed(0)
    b, sq, sk, h, hk, d, dv = 2, 200, 260, 4, 2, 24, 40
    q = torch.randn(b, sq, h, d, generator=gen, requires_grad=True)
    k = torch.randn(b, sk, hk, d, generator=gen, requires_grad=True)
    v = torch.randn(b, sk, hk, dv, generator=gen, requires_grad=True)
    sink = torch.linspace(-1.0, 1.5, h).requires_grad_()
    idx = random_startend(gen, b, 1, sq, sk, causal, ncols).to(torch.int32)
    blocks = (torch.rand(b, 1, 2, 3, generator=gen) < 0.6).to(torch.int32)
    out, lse = flashmask_attention(q, k, v, idx, causal=causal, block_mask=blocks,
                                   learnable_sink=sink, return_softmax_lse=True)
    kept = blocks.repeat_interleave(128, 2).repeat_interleave(128, 3)[:, :, :sq, :sk].bool()
    allowed = dense_allowed(idx, causal, sq, sk, "cpu") & kept
    ref, ref_lse = reference(q, k, v, allowed, d ** -0.5, sink)
    assert out.shape == (b, sq, h, dv)
    assert (out.double() - ref).abs().max().item() < 1e-5
    assert (lse.double() - ref_lse).abs().max().item() < 1e-4
    dout = torch.randn(out.shape, generator=gen)
    grads = torch.autograd.grad(out, (q, k, v, sink), dout)
    ref_grads = torch.autograd.grad(ref, (q, k, v, sink), dout.double())
    for g, rg in zip(grads, ref_grads):
        assert g.dtype == torch.float32
        assert (g.double() - rg).abs().max().item() <= 1e-4 * max(1.0, rg.abs().max().item())


@pytest.mark.skipif(not torch.cuda.is_available() or not _ext.has_cuda(), reason="no CUDA kernels")
@pytest.mark.parametrize("path", ["default", "sm80"])
@pytest.mark.parametrize("d,dv", [(192, 128), (128, 64), (64, 128), (96, 40)])
def test_cuda_value_head_dim_unlike_key(d, dv, path, monkeypatch):
    """Dv != D on CUDA (zero-padded to a compiled size holding both): out, lse and
    every gradient against the fp32 dense reference, with a sink and a mask."""
    if path == "sm80":
        monkeypatch.setenv("FLASHMASK_DISABLE_SM90", "1")
    gen = torch.Generator().manual_seed(d + dv)
    b, s, h, hk = 2, 333, 4, 2
    q, k = (torch.randn(b, s, n, d, generator=gen).cuda().bfloat16().requires_grad_() for n in (h, hk))
    v = torch.randn(b, s, hk, dv, generator=gen).cuda().bfloat16().requires_grad_()
    sink = torch.linspace(-1.0, 1.5, h, device="cuda").requires_grad_()
    idx = random_startend(gen, b, 1, s, s, True, 2).to(torch.int32).cuda()
    out, lse = flashmask_attention(q, k, v, idx, causal=True, learnable_sink=sink, return_softmax_lse=True)
    assert out.shape == (b, s, h, dv)
    allowed = dense_allowed(idx, True, s, s, "cuda")
    ref, ref_lse = reference(q.float(), k.float(), v.float(), allowed, d ** -0.5, sink)
    assert (out.double() - ref).abs().max().item() < 3e-2
    assert (lse.double() - ref_lse).abs().max().item() < 1e-2
    dout = torch.randn(out.shape, generator=gen).cuda().bfloat16()
    grads = torch.autograd.grad(out, (q, k, v, sink), dout)
    ref_grads = torch.autograd.grad(ref, (q, k, v, sink), dout.double())
    for g, rg in zip(grads, ref_grads):
        assert g.shape == rg.shape
        assert (g.double() - rg).abs().max().item() <= 5e-2 * max(1.0, rg.abs().max().item())
