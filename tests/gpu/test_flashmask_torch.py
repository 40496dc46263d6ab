"""The FlashMask test matrix on the GPU, through the PyTorch door, against a
dense fp32 torch reference. Tolerance as in FlashAttention's tests: the error
of our kernels vs the fp32 reference is at most twice the error of a dense
implementation in the inputs' dtype, plus the dtype's rounding noise.

Skipped where torch, a GPU or the built extension is missing (CI on CPU);
FLASHMASK_TEST_DEVICE=cpu runs the same matrix on the CPU kernels."""
import os
import re
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")
from paddle_flashmask.torch import _ext, flashmask_attention  # noqa: E402

from flashmask_ref import attention_ref, dense_allowed, dense_block_mask, dropout_keep, random_startend  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEVICE = os.environ.get("FLASHMASK_TEST_DEVICE", "cuda")
if DEVICE == "cuda" and not torch.cuda.is_available():
    pytest.skip("no CUDA GPU", allow_module_level=True)
if not _ext.is_available():
    pytest.skip("extension not built (python custom_ops/torch/build.py)", allow_module_level=True)
if DEVICE == "cuda" and not _ext.has_cuda():
    pytest.skip("extension built without CUDA kernels", allow_module_level=True)

DTYPES = [torch.float16, torch.bfloat16]
HEAD_DIMS = [64, 96, 128, 192, 256]
# (causal, ncols): every layout; ncols 0 = no mask tensor
LAYOUTS = [(False, 0), (True, 0), (True, 1), (True, 2), (False, 2), (False, 4)]


def rounding_noise(x):
    return 2 * ((x + 0.3 - 0.3) - x).abs().max().item()


def run_case(b, sq, sk, h, hk, d, dtype, causal, idx, *, dropout=0.0, scale=None, window=None,
             seed=0, check_grad=True, deterministic=None, block_mask=None):
    gen = torch.Generator(device="cpu").manual_seed(seed)
    q = torch.randn(b, sq, h, d, generator=gen).to(DEVICE, dtype).requires_grad_()
    k = torch.randn(b, sk, hk, d, generator=gen).to(DEVICE, dtype).requires_grad_()
    v = torch.randn(b, sk, hk, d, generator=gen).to(DEVICE, dtype).requires_grad_()
    dout = torch.randn(b, sq, h, d, generator=gen).to(DEVICE, dtype)
    idx_dev = idx.to(DEVICE) if idx is not None else None
    kwargs = dict(dropout=dropout, causal=causal, softmax_scale=scale, return_softmax_lse=True,
                  deterministic=deterministic)
    if window is not None:
        kwargs["window_size"] = window
    if dropout > 0:
        kwargs["fixed_seed_offset"] = torch.tensor([1234 + seed, 7 * seed], dtype=torch.int64)
    if block_mask is not None:
        kwargs["block_mask"] = block_mask.to(DEVICE)
    out, lse = flashmask_attention(q, k, v, idx_dev, **kwargs)

    scale_v = scale if scale is not None else d ** -0.5
    if window is not None:
        from paddle_flashmask.torch import window_startend_row_indices
        wl = (window, window) if isinstance(window, int) else window
        idx_dev = window_startend_row_indices(b, sq, wl, causal, device=q.device)
    allowed = dense_allowed(idx_dev, causal, sq, sk, q.device)
    if block_mask is not None:
        allowed = allowed & dense_block_mask(block_mask.to(q.device), sq, sk)
    keep = None
    if dropout > 0:
        keep = dropout_keep(1234 + seed, 7 * seed, b, h, sq, sk, dropout, q.device)
    qr, kr, vr = (t.detach().clone().requires_grad_() for t in (q, k, v))
    out_ref, lse_ref = attention_ref(qr, kr, vr, allowed, scale_v, keep, dropout, upcast=True)
    qp, kp, vp = (t.detach().clone().requires_grad_() for t in (q, k, v))
    out_pt, _ = attention_ref(qp, kp, vp, allowed, scale_v, keep, dropout, upcast=False)

    err = (out.float() - out_ref).abs().max().item()
    err_pt = (out_pt.float() - out_ref).abs().max().item()
    assert err <= 2 * err_pt + rounding_noise(out_ref.to(dtype).float()) + 1e-5, (err, err_pt)
    # lse: -inf exactly where a row sees no key, else close to fp32
    inf_ref = torch.isinf(lse_ref)
    assert torch.equal(torch.isinf(lse), inf_ref)
    if (~inf_ref).any():
        assert (lse[~inf_ref] - lse_ref[~inf_ref]).abs().max().item() < 1e-2
    assert not torch.isnan(out).any()
    if not check_grad:
        return out
    out.backward(dout)
    out_ref.backward(dout.float())
    out_pt.backward(dout)
    for name, ours, ref, pt in (("dq", q.grad, qr.grad, qp.grad), ("dk", k.grad, kr.grad, kp.grad),
                                ("dv", v.grad, vr.grad, vp.grad)):
        assert not torch.isnan(ours).any(), name
        e = (ours.float() - ref).abs().max().item()
        e_pt = (pt.float() - ref).abs().max().item()
        tol = 2 * e_pt + rounding_noise(ref.to(dtype).float()) + 1e-4
        assert e <= tol, (name, e, e_pt, tol)
    return out, q.grad, k.grad, v.grad


@pytest.fixture(params=["default", "sm80"])
def kernel_path(request, monkeypatch):
    """default: the dispatcher's choice (the sm90a forward on Hopper); sm80:
    FLASHMASK_DISABLE_SM90=1, so Hopper also proves the sm80 forward."""
    if request.param == "sm80":
        monkeypatch.setenv("FLASHMASK_DISABLE_SM90", "1")
    return request.param


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp16", "bf16"])
@pytest.mark.parametrize("d", HEAD_DIMS)
@pytest.mark.parametrize("causal,ncols", LAYOUTS)
def test_layouts_head_dims(dtype, d, causal, ncols, kernel_path):
    gen = torch.Generator().manual_seed(d + ncols)
    b, sq, sk, h, hk = 2, 197, 197, 4, 2
    idx = random_startend(gen, b, 1 + (ncols % 2) * (hk - 1), sq, sk, causal, ncols)
    run_case(b, sq, sk, h, hk, d, dtype, causal, idx, seed=d)


@pytest.mark.parametrize("causal,ncols", LAYOUTS)
@pytest.mark.parametrize("kind", ["random", "doc"])
@pytest.mark.parametrize("sq,sk", [(128, 128), (1, 1), (17, 33), (129, 65), (255, 257), (64, 300), (333, 77), (1000, 1000)])
def test_lengths(causal, ncols, kind, sq, sk):
    gen = torch.Generator().manual_seed(sq * 7 + sk)
    idx = random_startend(gen, 2, 1, sq, sk, causal, ncols, kind=kind)
    run_case(2, sq, sk, 2, 1, 128, torch.bfloat16, causal, idx, seed=sq + sk)


@pytest.mark.parametrize("h,hk", [(8, 8), (8, 2), (8, 1)])
@pytest.mark.parametrize("mask_heads", ["one", "hk", "h"])
@pytest.mark.parametrize("causal,ncols", [(True, 2), (False, 4)])
def test_gqa_mqa_per_head_masks(h, hk, mask_heads, causal, ncols):
    gen = torch.Generator().manual_seed(h * 10 + hk)
    hm = {"one": 1, "hk": hk, "h": h}[mask_heads]
    idx = random_startend(gen, 2, hm, 160, 160, causal, ncols, kind="doc" if hk == 1 else "random")
    run_case(2, 160, 160, h, hk, 64, torch.float16, causal, idx, seed=hm)


@pytest.mark.parametrize("causal", [False, True])
def test_fully_masked_rows(causal):
    b, s, h, d = 1, 200, 2, 64
    # every key masks rows [50, 120): those rows see nothing
    cols = [torch.full((b, 1, s), 50), torch.full((b, 1, s), 120)]
    if not causal:
        cols += [torch.zeros(b, 1, s, dtype=torch.int64), torch.zeros(b, 1, s, dtype=torch.int64)]
    idx = torch.stack(cols, -1).to(torch.int32)
    out, *_ = run_case(b, s, s, h, h, d, torch.bfloat16, causal, idx)
    assert out[:, 50:120].abs().max().item() == 0.0


@pytest.mark.parametrize("d", [64, 128, 256])
@pytest.mark.parametrize("causal", [False, True])
def test_fully_masked_query_tiles(d, causal):
    """Rows [128, 256) see no key: whole query tiles that no key block visits
    (64 or 128 rows). Their dq must be exactly 0 although the backward's
    scratch, reused from the previous call, holds that call's dQ sums (the
    Hopper backward zeroes only the tiles it visits)."""
    b, s, h = 1, 300, 2

    def band(lo, hi):  # rows [lo, hi) masked for every key, same layout (and scratch size) either way
        cols = [torch.full((b, 1, s), lo), torch.full((b, 1, s), hi)]
        if not causal:
            cols += [torch.zeros(b, 1, s, dtype=torch.int64), torch.zeros(b, 1, s, dtype=torch.int64)]
        return torch.stack(cols, -1).to(torch.int32)

    run_case(b, s, s, h, h, d, torch.bfloat16, causal, band(s, s), seed=1)  # leaves sums in the scratch
    _, dq, _, _ = run_case(b, s, s, h, h, d, torch.bfloat16, causal, band(128, 256))
    assert dq[:, 128:256].abs().max().item() == 0.0


@pytest.mark.parametrize("window", [0, 5, (64, 3), (3, 100)])
@pytest.mark.parametrize("causal", [False, True])
def test_window(window, causal):
    run_case(2, 300, 300, 4, 4, 128, torch.bfloat16, causal, None, window=window)


@pytest.mark.parametrize("scale", [0.05, 0.3])
def test_softmax_scale(scale):
    gen = torch.Generator().manual_seed(3)
    idx = random_startend(gen, 1, 1, 150, 150, True, 1)
    run_case(1, 150, 150, 2, 2, 96, torch.float16, True, idx, scale=scale)


@pytest.mark.parametrize("causal,ncols", [(False, 0), (True, 0), (True, 1), (False, 4)])
@pytest.mark.parametrize("p", [0.17, 0.5])
@pytest.mark.parametrize("d", [64, 128])
def test_dropout(causal, ncols, p, d):
    gen = torch.Generator().manual_seed(11)
    idx = random_startend(gen, 2, 1, 130, 150, causal, ncols, kind="doc")
    run_case(2, 130, 150, 4, 2, d, torch.bfloat16, causal, idx, dropout=p, seed=5)


def test_dropout_seed_offset_roundtrip():
    q = torch.randn(1, 64, 2, 64, device=DEVICE, dtype=torch.bfloat16)
    out1, so = flashmask_attention(q, q, q, dropout=0.3, return_seed_offset=True)
    out2 = flashmask_attention(q, q, q, dropout=0.3, fixed_seed_offset=so)
    assert torch.equal(out1, out2)
    out3 = flashmask_attention(q, q, q, dropout=0.3, training=False)
    ref = flashmask_attention(q, q, q)
    assert torch.equal(out3, ref)


@pytest.mark.parametrize("d", [64, 128, 256])  # d256: the Hopper backward's dQ in two slices
@pytest.mark.parametrize("causal,ncols", [(True, 1), (False, 4), (False, 0)])
def test_deterministic_bitwise(causal, ncols, d):
    gen = torch.Generator().manual_seed(1)
    idx = random_startend(gen, 2, 1, 384, 384, causal, ncols, kind="doc")
    r1 = run_case(2, 384, 384, 4, 2, d, torch.bfloat16, causal, idx, deterministic=True)
    r2 = run_case(2, 384, 384, 4, 2, d, torch.bfloat16, causal, idx, deterministic=True)
    for a, b in zip(r1, r2):
        assert torch.equal(a, b)


@pytest.mark.parametrize("causal,ncols", [(True, 2), (False, 4)])
def test_deterministic_many_key_blocks(causal, ncols):
    """Per-head document masks over more than 32 key blocks of 128: the
    deterministic order's scan for the next key block (32 per warp step,
    bounded by each query block's last visible key block) crosses steps."""
    gen = torch.Generator().manual_seed(4)
    idx = random_startend(gen, 1, 2, 4160, 4160, causal, ncols, kind="doc")
    r1 = run_case(1, 4160, 4160, 2, 1, 128, torch.bfloat16, causal, idx, deterministic=True)
    r2 = run_case(1, 4160, 4160, 2, 1, 128, torch.bfloat16, causal, idx, deterministic=True)
    for a, b in zip(r1, r2):
        assert torch.equal(a, b)


@pytest.mark.parametrize("d", [64, 128])  # the Hopper backward's key-split consumer (64 keys per warpgroup)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("deterministic", [False, True])
def test_masked_key_halves(d, causal, deterministic):
    """Key blocks of 128 whose two 64-key halves are each fully masked for
    some query blocks while the block's merged bounds say partial (the
    Hopper backward gives each consumer warpgroup one half). Non-causal: in
    key block 0, keys 0-63 mask rows [0, 256) by the lower band and keys
    64-127 by the upper band; key block 1's halves mask rows [64, 320) and
    [192, 320). Causal: key block 1's first half masks rows [128, 192), where
    its second half is above the diagonal."""
    b, s, h = 1, 520, 2
    full = torch.full((s,), s, dtype=torch.int32)
    zero = torch.zeros(s, dtype=torch.int32)
    lts, lte = full.clone(), full.clone()
    if causal:
        lts[128:192], lte[128:192] = 128, 192
        idx = torch.stack([lts, lte], -1)
    else:
        uts, ute = zero.clone(), zero.clone()
        lts[0:64], lte[0:64] = 0, 256
        uts[64:128], ute[64:128] = 0, 256
        lts[128:192], lte[128:192] = 64, 320
        lts[192:256], lte[192:256] = 192, 320
        idx = torch.stack([lts, lte, uts, ute], -1)
    idx = idx.view(1, 1, s, -1).expand(b, 1, s, idx.shape[-1]).contiguous()
    run_case(b, s, s, h, h, d, torch.bfloat16, causal, idx, deterministic=deterministic)


@pytest.mark.parametrize("d", [64, 128])
def test_misaligned_views(d):
    """q, k, v as dense views 2 bytes past a 16-byte boundary: the door copies
    them (the kernels' vector loads and TMA descriptors need 16-byte alignment)
    and the result equals the aligned inputs' (a misaligned pointer used to
    reach the kernels as is)."""
    gen = torch.Generator(device="cpu").manual_seed(3)
    shape = (2, 200, 4, d)
    n = 2 * 200 * 4 * d
    base = [torch.randn(n + 8, generator=gen).to(DEVICE, torch.bfloat16) for _ in range(3)]
    q, k, v = (t[1:1 + n].view(shape) for t in base)
    assert q.data_ptr() % 16 != 0
    qa, ka, va = (t.clone() for t in (q, k, v))
    for t in (q, k, v, qa, ka, va):
        t.requires_grad_()
    dout = torch.randn(shape, generator=gen).to(DEVICE, torch.bfloat16)
    out = flashmask_attention(q, k, v, causal=True)
    ref = flashmask_attention(qa, ka, va, causal=True)
    assert torch.equal(out, ref)
    g = torch.autograd.grad(out, (q, k, v), dout)
    ga = torch.autograd.grad(ref, (qa, ka, va), dout)
    for x, y in zip(g, ga):
        torch.testing.assert_close(x, y, atol=2e-2, rtol=1e-2)


def _paper_masks():
    try:
        from paddle_flashmask.paper_masks import PAPER_MASKS, make_paper_mask
    except Exception:  # noqa: BLE001 - module absent or needs paddle
        return []
    return [(name, make_paper_mask) for name in PAPER_MASKS]


@pytest.mark.parametrize("name,make", _paper_masks() or [pytest.param(None, None, marks=pytest.mark.skip("paper_masks absent"))])
def test_paper_masks(name, make, kernel_path):
    spec = make(name, 2, 512, seed=0)
    idx = spec.startend_row_indices
    idx = None if idx is None else torch.as_tensor(idx).to(torch.int32)
    run_case(2, 512, 512, 4, 4, 128, torch.bfloat16, bool(spec.causal), idx)


def test_input_checks():
    q = torch.randn(1, 16, 2, 64, device=DEVICE, dtype=torch.bfloat16)
    with pytest.raises(TypeError, match="query"):
        flashmask_attention(q.float() if DEVICE == "cuda" else q.int(), q, q)
    with pytest.raises(ValueError, match="key"):
        flashmask_attention(q, q[:, :, :, :32], q)
    with pytest.raises(ValueError, match="startend_row_indices"):
        flashmask_attention(q, q, q, torch.zeros(1, 1, 16, 3, dtype=torch.int32, device=DEVICE))
    with pytest.raises(TypeError, match="startend_row_indices"):
        flashmask_attention(q, q, q, torch.zeros(1, 1, 16, 2, dtype=torch.int64, device=DEVICE))
    with pytest.raises(ValueError, match="dropout"):
        flashmask_attention(q, q, q, dropout=1.5)
    with pytest.raises(ValueError, match="window_size"):
        flashmask_attention(q, q, q, window_size=-1)
    with pytest.raises(TypeError, match="causal"):
        flashmask_attention(q, q, q, causal=1)
    with pytest.raises(ValueError, match="num_heads"):
        flashmask_attention(q, q[:, :, :1].repeat(1, 1, 3, 1), q[:, :, :1].repeat(1, 1, 3, 1))
    if DEVICE == "cuda":  # head dims up to 256 run (zero-padded where not compiled); above, refused
        wide = torch.randn(1, 8, 2, 320, device=DEVICE, dtype=q.dtype)
        with pytest.raises(ValueError, match="head_dim 320 is not supported on GPU"):
            flashmask_attention(wide, wide, wide)


def test_door_refuses_dims_past_int32():
    """The C++ door itself (the Python checks refuse such sizes first): the core's sizes
    are int32, so a batch of 2^32 + 1 (a stride-0 view) wrapped to 1 before the check.
    Forward and backward, and a refusal of ordinary tensors (an int64 mask) next to them,
    in a child process, so that a door which crashed on any of them fails this test
    instead of ending the whole run."""
    code = textwrap.dedent(f"""
        import torch
        from paddle_flashmask.torch import _ext
        ext = _ext.load()
        one = torch.zeros(1, 1, 1, 8, device="{DEVICE}", dtype=torch.bfloat16)
        big = one.expand(2**32 + 1, 1, 1, 8)
        lse = torch.zeros(1, 1, 1, device="{DEVICE}")
        mask64 = torch.zeros(1, 1, 16, 2, dtype=torch.int64, device="{DEVICE}")
        small = torch.zeros(1, 16, 1, 64, device="{DEVICE}", dtype=torch.bfloat16)
        calls = {{
            "mask": lambda: ext.forward(small, small, small, mask64, None, 0.0, False, 0.35, None, None, 0),
            "forward": lambda: ext.forward(big, big, big, None, None, 0.0, False, 0.35, None, None, 0),
            "backward": lambda: ext.backward(big, big, big, None, None, big, lse, big, 0.0, False, 0.35,
                                             False, None, None, 0),
        }}
        for name, call in calls.items():
            try:
                call()
                print(name, "returned", flush=True)
            except RuntimeError as e:
                print(name, "RuntimeError:", str(e).splitlines()[0], flush=True)
        """)
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"exit {res.returncode}\n{res.stdout}\n{res.stderr[-2000:]}"
    assert "mask RuntimeError: startend_row_indices must be contiguous int32" in res.stdout, res.stdout
    for name in ("forward", "backward"):
        assert re.search(name + r" RuntimeError: .*dims must be at most 2\^31 - 1, got 4294967297", res.stdout), res.stdout


@pytest.mark.parametrize("causal,ncols,kind", [(True, 1, "doc"), (True, 2, "random"), (False, 4, "random"),
                                                (True, 0, "random"), (False, 0, "random")])
@pytest.mark.parametrize("d", [64, 128, 256])
def test_many_work_tiles_per_cta(causal, ncols, kind, d):
    """More (batch, head, query tile) work tiles than SMs: the persistent
    kernels' tile-to-tile hand-offs (Q buffers reused every other tile, the
    pipelines' phases across tiles, tiles with no visible key)."""
    if DEVICE != "cuda":
        pytest.skip("too slow on the CPU kernels")
    gen = torch.Generator().manual_seed(11 + ncols)
    b, s, h, hk = 2, 1100, 16, 4  # 9 query tiles x 32 heads = 288 work tiles
    idx = random_startend(gen, b, hk if ncols == 2 else 1, s, s, causal, ncols, kind=kind)
    run_case(b, s, s, h, hk, d, torch.bfloat16, causal, idx, seed=ncols + d)


@pytest.mark.parametrize("causal,ncols,kind", [(True, 1, "doc"), (False, 4, "random"), (True, 0, "random")])
def test_long_sequence_many_tiles(causal, ncols, kind):
    """> 128 key and query tiles: multi-chunk tile compaction in every kernel."""
    if DEVICE != "cuda":
        pytest.skip("too slow on the CPU kernels")
    gen = torch.Generator().manual_seed(7)
    s = 8320
    idx = random_startend(gen, 1, 1, s, s, causal, ncols, kind=kind)
    run_case(1, s, s, 1, 1, 64, torch.bfloat16, causal, idx)
    run_case(1, s, s, 1, 1, 64, torch.bfloat16, causal, idx, deterministic=True)


@pytest.mark.parametrize("causal,ncols", [lay for lay in LAYOUTS if lay[1] > 0])
@pytest.mark.parametrize("d", [64, 128, 96])
@pytest.mark.parametrize("deterministic", [False, True])
def test_any_int32_bounds(causal, ncols, d, deterministic, kernel_path):
    """Any int32 bound is valid (README): below 0 acts as 0, above seqlen_q as
    seqlen_q, a band whose start is at or past its end is empty. The reference
    applies the formula itself; the kernels must agree (prep, tile kinds, the
    sm90 backward's block walk), including at INT32_MIN / INT32_MAX."""
    gen = torch.Generator().manual_seed(d + ncols)
    b, sq, sk, h, hk = 2, 301, 301, 4, 2
    idx = torch.randint(-2 * sq, 2 * sq, (b, 1, sk, ncols), generator=gen, dtype=torch.int32)
    extremes = torch.tensor([-2**31, 2**31 - 1, -1, sq + 1], dtype=torch.int32)
    idx[0, 0, :64] = extremes[torch.randint(0, 4, (64, ncols), generator=gen)]
    run_case(b, sq, sk, h, hk, d, torch.bfloat16, causal, idx, seed=d, deterministic=deterministic)


@pytest.mark.parametrize("d", [32, 40, 80, 160, 224])
@pytest.mark.parametrize("causal,ncols", [(True, 1), (False, 4)])
def test_head_dims_served_by_zero_padding(d, causal, ncols, kernel_path):
    """Head dims without an instantiation run at the next compiled size with q, k,
    v zero-padded: exact against the reference at the real head dim (default scale
    d ** -0.5 of the real d), forward and every gradient."""
    gen = torch.Generator().manual_seed(d + ncols)
    b, sq, sk, h, hk = 2, 203, 203, 4, 2
    idx = random_startend(gen, b, 1, sq, sk, causal, ncols)
    run_case(b, sq, sk, h, hk, d, torch.bfloat16, causal, idx, seed=d)
