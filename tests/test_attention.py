"""FlashMask CPU op vs the dense reference: forward, lse and all three grads
over the mask layouts, GQA/MQA, per-head masks, Sq != Sk, odd lengths, head
dims, dtypes and fully masked rows."""
import numpy as np
import paddle
import pytest

import paddle_flashmask as pfm
from attention_cases import (LAYOUTS, assert_close, layout_case, random_qkv, random_startend,
                             rel_err, run_both)

FP32_FWD_TOL, FP32_GRAD_TOL = 1e-5, 1e-4
SHAPES = [(67, 67), (128, 128), (50, 131), (130, 45)]  # (Sq, Sk): odd, tile-aligned, ragged
HEADS = [(4, 4), (4, 2), (4, 1)]  # MHA, GQA, MQA


@pytest.mark.parametrize("causal,ncols", LAYOUTS)
@pytest.mark.parametrize("sq,sk", SHAPES)
@pytest.mark.parametrize("heads,heads_k", HEADS)
def test_layouts_fp32(causal, ncols, sq, sk, heads, heads_k):
    q, k, v, startend = layout_case(causal, ncols, sq, sk, heads, heads_k)
    mine, ref = run_both(q, k, v, startend, causal)
    assert_close(mine, ref, FP32_FWD_TOL, FP32_GRAD_TOL, f"{causal=} {ncols=} {sq=} {sk=}")


@pytest.mark.parametrize("mask_heads", ["one", "kv", "q"])
@pytest.mark.parametrize("causal,ncols", [(True, 2), (False, 4)])
def test_per_head_masks(mask_heads, causal, ncols):
    heads, heads_k = 6, 2
    h = {"one": 1, "kv": heads_k, "q": heads}[mask_heads]
    rng = np.random.default_rng(7)
    q, k, v = random_qkv(2, 90, 90, heads, heads_k, 32)
    startend = random_startend(rng, 2, h, 90, 90, causal, ncols)
    assert_close(*run_both(q, k, v, startend, causal), FP32_FWD_TOL, FP32_GRAD_TOL)


@pytest.mark.parametrize("dim", [8, 40, 64, 96, 128, 256])
def test_head_dims(dim):
    rng = np.random.default_rng(dim)
    q, k, v = random_qkv(1, 70, 70, 2, 1, dim, seed=dim)
    startend = random_startend(rng, 1, 1, 70, 70, True, 1)
    assert_close(*run_both(q, k, v, startend, True), FP32_FWD_TOL, FP32_GRAD_TOL)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("causal,ncols", [(True, 1), (False, 4)])
def test_half_dtypes(dtype, causal, ncols):
    """Half inputs, fp32 math inside: against the fp32 reference on the same
    (rounded) inputs, the error is the output rounding of the dtype."""
    rng = np.random.default_rng(3)
    q, k, v = random_qkv(2, 100, 100, 4, 2, 64, dtype=dtype, seed=5)
    startend = random_startend(rng, 2, 1, 100, 100, causal, ncols)
    (out, lse, grads), ref = run_both(q, k, v, startend, causal)
    assert out.dtype == getattr(paddle, dtype) and all(g.dtype == q.dtype for g in grads)
    tol = 1e-2 if dtype == "bfloat16" else 2e-3  # a few ulps of the output dtype
    assert_close((out, lse, grads), ref, tol, 2 * tol, dtype)


def test_softmax_scale():
    q, k, v = random_qkv(1, 64, 64, 2, 2, 32)
    assert_close(*run_both(q, k, v, None, True, softmax_scale=0.37), FP32_FWD_TOL, FP32_GRAD_TOL)


def test_fully_masked_rows_give_zero():
    """Rows 10..29 masked for every key: out, lse, dq are 0 / -inf there, no NaN."""
    sq = 64
    q, k, v = random_qkv(1, sq, sq, 2, 2, 16)
    idx = np.zeros([1, 1, sq, 4], np.int32)
    idx[..., 0], idx[..., 1] = 10, 30  # lower band covers rows [10, 30) of every column
    idx[..., 2], idx[..., 3] = 0, 0
    startend = paddle.to_tensor(idx)
    mine, ref = run_both(q, k, v, startend, False)
    assert_close(mine, ref, FP32_FWD_TOL, FP32_GRAD_TOL)
    out, lse, (dq, _, _) = mine
    assert float(out[:, 10:30].abs().max()) == 0.0
    assert bool(paddle.isinf(lse[:, :, 10:30]).all()) and float(lse[:, :, 10:30].max()) < 0
    assert float(dq[:, 10:30].abs().max()) == 0.0


def test_everything_masked():
    q, k, v = random_qkv(1, 33, 33, 1, 1, 16)
    idx = paddle.zeros([1, 1, 33, 1], dtype="int32")  # causal, LTS = 0: every row masked
    out = pfm.flashmask_attention(q, k, v, idx, causal=True)
    dq, dk, dv = paddle.grad([out], [q, k, v], [paddle.ones_like(out)])
    for t in (out, dq, dk, dv):
        assert float(t.abs().max()) == 0.0


def test_causal_rows_before_shift_are_empty():
    """Sq > Sk, bottom-right causal: the first Sq - Sk rows see no key."""
    q, k, v = random_qkv(1, 40, 25, 1, 1, 16)
    out = pfm.flashmask_attention(q, k, v, causal=True)
    assert float(out[:, :15].abs().max()) == 0.0
    assert float(out[:, 15:].abs().min()) > 0.0


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("window", [0, 5, (3, 9), (20, 0)])
def test_window_size(causal, window):
    s = 80
    q, k, v = random_qkv(2, s, s, 2, 1, 32)
    left, right = (window, window) if isinstance(window, int) else window
    i = np.arange(s)[:, None]
    j = np.arange(s)[None, :]
    allowed = (j >= i - left) & (j <= i + (0 if causal else right))
    from reference import dense_attention

    out = pfm.flashmask_attention(q, k, v, causal=causal, window_size=window)
    ref, _ = dense_attention(q, k, v, paddle.to_tensor(allowed[None, None]))
    dout = paddle.randn(out.shape)
    for g, rg in zip(paddle.grad([out], [q, k, v], [dout]), paddle.grad([ref], [q, k, v], [dout])):
        assert rel_err(g, rg) <= FP32_GRAD_TOL
    assert rel_err(out, ref) <= FP32_FWD_TOL


def test_matches_plain_attention_without_mask():
    """No mask, no causal: same as softmax(QK^T)V computed by paddle's own sdpa math."""
    q, k, v = random_qkv(2, 48, 48, 2, 2, 32)
    out = pfm.flashmask_attention(q, k, v)
    qt, kt, vt = (t.transpose([0, 2, 1, 3]) for t in (q, k, v))
    probs = paddle.nn.functional.softmax(paddle.matmul(qt, kt, transpose_y=True) / np.sqrt(32), -1)
    ref = paddle.matmul(probs, vt).transpose([0, 2, 1, 3])
    assert float((out - ref).abs().max()) < 1e-5


def test_return_tuple_shapes():
    q, k, v = random_qkv(2, 20, 20, 4, 2, 16)
    out, lse, so = pfm.flashmask_attention(q, k, v, causal=True, return_softmax_lse=True,
                                           return_seed_offset=True)
    assert list(out.shape) == [2, 20, 4, 16] and out.dtype == q.dtype
    assert list(lse.shape) == [2, 4, 20] and lse.dtype == paddle.float32
    assert list(so.shape) == [2] and so.dtype == paddle.int64
