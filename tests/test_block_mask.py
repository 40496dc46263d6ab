"""Paddle 3.x's block_mask (int32 [B, heads, ceil(Sq/128), ceil(Sk/128)], 0 masks a
128 x 128 block on top of startend_row_indices): against the float64 dense reference
over the mask matrix; masked blocks are never read; bad input is refused."""
import numpy as np
import paddle
import pytest

import paddle_flashmask as pfm
from attention_cases import LAYOUTS, assert_close, random_qkv, random_startend, rel_err, run_both
from paddle_flashmask.checks import TensorFacts, check_attention_inputs
from philox import dropout_keep_mask
from reference import dense_allowed, dense_attention

FWD_TOL, GRAD_TOL = 1e-5, 1e-4


def random_block_mask(rng, batch, heads, sq, sk, keep=0.6):
    shape = (batch, heads, -(-sq // 128), -(-sk // 128))
    return paddle.to_tensor((rng.random(shape) < keep).astype(np.int32))


@pytest.mark.parametrize("causal,ncols", LAYOUTS)
@pytest.mark.parametrize("sq,sk,heads_k", [(300, 300, 4), (200, 390, 2), (390, 130, 1)])
def test_block_mask_matches_float64_reference(causal, ncols, sq, sk, heads_k):
    rng = np.random.default_rng(hash((causal, ncols, sq, sk)) % 2**32)
    q, k, v = random_qkv(2, sq, sk, 4, heads_k, 16, seed=sq + ncols)
    startend = random_startend(rng, 2, 1, sq, sk, causal, ncols)
    block_mask = random_block_mask(rng, 2, 1, sq, sk)
    mine, ref = run_both(q, k, v, startend, causal, block_mask=block_mask, compute_dtype="float64")
    assert_close(mine, ref, FWD_TOL, GRAD_TOL, f"{causal=} {ncols=} {sq=} {sk=}")


@pytest.mark.parametrize("mask_heads", [1, 2, 6])
def test_block_mask_per_head(mask_heads):
    """block_mask.shape[1] equals startend_row_indices.shape[1] (1, Hk or H)."""
    rng = np.random.default_rng(mask_heads)
    q, k, v = random_qkv(2, 257, 257, 6, 2, 16)
    startend = random_startend(rng, 2, mask_heads, 257, 257, True, 2)
    block_mask = random_block_mask(rng, 2, mask_heads, 257, 257)
    assert_close(*run_both(q, k, v, startend, True, block_mask=block_mask, compute_dtype="float64"),
                 FWD_TOL, GRAD_TOL)


def test_block_mask_with_sink_and_value_head_dim():
    rng = np.random.default_rng(11)
    q, k, v = random_qkv(1, 260, 260, 4, 2, 24, dim_v=40)
    sink = paddle.to_tensor(np.linspace(-1, 1, 4).astype("float32"))
    sink.stop_gradient = False
    startend = random_startend(rng, 1, 2, 260, 260, False, 4)
    block_mask = random_block_mask(rng, 1, 2, 260, 260, keep=0.5)
    assert_close(*run_both(q, k, v, startend, False, block_mask=block_mask, sink=sink,
                           compute_dtype="float64"), FWD_TOL, GRAD_TOL)


def test_block_mask_alone():
    """Paddle requires startend_row_indices with block_mask; we also take it alone."""
    rng = np.random.default_rng(2)
    q, k, v = random_qkv(1, 256, 256, 2, 2, 16)
    block_mask = random_block_mask(rng, 1, 2, 256, 256)
    assert_close(*run_both(q, k, v, None, True, block_mask=block_mask, compute_dtype="float64"),
                 FWD_TOL, GRAD_TOL)


def test_all_blocks_masked_give_zero():
    q, k, v = random_qkv(1, 200, 200, 2, 2, 16)
    startend = paddle.full([1, 1, 200, 1], 200, "int32")
    out, lse = pfm.flashmask_attention(q, k, v, startend, causal=True, return_softmax_lse=True,
                                       block_mask=paddle.zeros([1, 1, 2, 2], "int32"))
    grads = paddle.grad([out], [q, k, v], [paddle.ones_like(out)])
    assert float(out.abs().max()) == 0.0 and bool(paddle.isinf(lse).all())
    for g in grads:
        assert float(g.abs().max()) == 0.0


def test_masked_blocks_are_never_read():
    """Keys 128..255 sit in masked blocks for every query block: NaN there must not
    reach any output or gradient, so the kernels skip those tiles (no load, no work)."""
    s = 384
    q, k, v = random_qkv(1, s, s, 2, 2, 16)
    poisoned_k, poisoned_v = k.numpy(), v.numpy()
    poisoned_k[:, 128:256] = np.nan
    poisoned_v[:, 128:256] = np.nan
    kp, vp = paddle.to_tensor(poisoned_k), paddle.to_tensor(poisoned_v)
    for t in (kp, vp):
        t.stop_gradient = False
    block_mask = np.ones([1, 1, 3, 3], np.int32)
    block_mask[:, :, :, 1] = 0
    startend = paddle.to_tensor(np.tile(np.array([s, 0], np.int32), [1, 1, s, 1]))  # no band
    out = pfm.flashmask_attention(q, kp, vp, startend, causal=False,
                                  block_mask=paddle.to_tensor(block_mask))
    dq, dk, dv = paddle.grad([out], [q, kp, vp], [paddle.ones_like(out)])
    for t in (out, dq, dk[:, :128], dk[:, 256:], dv[:, :128], dv[:, 256:]):
        assert bool(paddle.isfinite(t).all())
    keep = np.r_[0:128, 256:s]
    ref, _ = dense_attention(q, paddle.to_tensor(k.numpy()[:, keep]), paddle.to_tensor(v.numpy()[:, keep]))
    assert rel_err(out, ref) <= FWD_TOL


def test_block_mask_with_dropout_matches_reference():
    b, s, h, p = 1, 260, 2, 0.25
    rng = np.random.default_rng(4)
    q, k, v = random_qkv(b, s, s, h, h, 16)
    startend = random_startend(rng, b, 1, s, s, True, 1)
    block_mask = random_block_mask(rng, b, 1, s, s)
    so = paddle.to_tensor(np.array([9, 1], np.int64))
    out = pfm.flashmask_attention(q, k, v, startend, causal=True, dropout=p, fixed_seed_offset=so,
                                  block_mask=block_mask)
    keep = paddle.to_tensor(dropout_keep_mask(9, 1, b, h, s, s, p))
    ref, _ = dense_attention(q, k, v, dense_allowed(startend, True, s, s, block_mask=block_mask),
                             dropout_keep=keep, dropout=p, compute_dtype="float64")
    assert rel_err(out, ref) <= FWD_TOL
    dout = paddle.randn(out.shape)
    for g, rg in zip(paddle.grad([out], [q, k, v], [dout]), paddle.grad([ref], [q, k, v], [dout])):
        assert rel_err(g, rg, floor=1.0) <= GRAD_TOL


def test_block_mask_any_nonzero_value_keeps():
    """Values are never read on the host: 0 masks a block, any other value keeps it."""
    rng = np.random.default_rng(5)
    q, k, v = random_qkv(1, 256, 256, 2, 2, 16)
    ones = random_block_mask(rng, 1, 2, 256, 256)
    odd = ones * paddle.to_tensor(np.array([[[[2, -1], [7, -2**31]]]], np.int32))
    a = pfm.flashmask_attention(q, k, v, causal=True, block_mask=ones)
    b = pfm.flashmask_attention(q, k, v, causal=True, block_mask=odd)
    assert np.array_equal(a.numpy(), b.numpy())


def _call(block_mask, startend_heads=1, sink=None, dtype="float32"):
    q, k, v = random_qkv(2, 200, 130, 4, 2, 16, dtype=dtype)
    startend = paddle.full([2, startend_heads, 130, 1], 200, "int32")
    return pfm.flashmask_attention(q, k, v, startend, causal=True, block_mask=block_mask,
                                   learnable_sink=sink)


BAD = [
    ("not a tensor", lambda: dict(block_mask=np.ones([2, 1, 2, 2], np.int32)), TypeError, "block_mask"),
    ("int64", lambda: dict(block_mask=paddle.ones([2, 1, 2, 2], "int64")), TypeError, "block_mask"),
    ("rank 3", lambda: dict(block_mask=paddle.ones([2, 2, 2], "int32")), ValueError, "block_mask"),
    ("batch", lambda: dict(block_mask=paddle.ones([1, 1, 2, 2], "int32")), ValueError, "block_mask.shape[0]"),
    ("heads vs startend", lambda: dict(block_mask=paddle.ones([2, 2, 2, 2], "int32")), ValueError,
     "block_mask.shape[1]"),
    ("query blocks", lambda: dict(block_mask=paddle.ones([2, 1, 1, 2], "int32")), ValueError,
     "block_mask.shape[2]"),
    ("key blocks", lambda: dict(block_mask=paddle.ones([2, 1, 2, 1], "int32")), ValueError,
     "block_mask.shape[3]"),
    ("sink shape", lambda: dict(block_mask=None, sink=paddle.zeros([2])), ValueError, "learnable_sink"),
    ("sink rank", lambda: dict(block_mask=None, sink=paddle.zeros([4, 1])), ValueError, "learnable_sink"),
    ("sink dtype", lambda: dict(block_mask=None, sink=paddle.zeros([4], "float64")), TypeError, "learnable_sink"),
    ("sink not tensor", lambda: dict(block_mask=None, sink=np.zeros([4], np.float32)), TypeError, "learnable_sink"),
]


@pytest.mark.parametrize("what,kwargs,error,words", BAD, ids=[c[0] for c in BAD])
def test_bad_block_mask_and_sink_are_refused(what, kwargs, error, words):
    with pytest.raises(error) as info:
        _call(**kwargs())
    assert words in str(info.value), str(info.value)


def test_gpu_takes_block_mask_and_sink_and_checks_them():
    """Both run on the GPU kernels now; the checks still apply there."""
    gpu = [TensorFacts((1, 128, 2, 64), "float16", "gpu:0")] * 3
    check_attention_inputs(*gpu, causal=False, block_mask=TensorFacts((1, 1, 1, 1), "int32", "gpu:0"),
                           learnable_sink=TensorFacts((2,), "float32", "gpu:0"))
    with pytest.raises(ValueError, match="block_mask is on cpu but query is on gpu:0"):
        check_attention_inputs(*gpu, causal=False, block_mask=TensorFacts((1, 1, 1, 1), "int32", "cpu"))
    with pytest.raises(ValueError, match=r"learnable_sink must have shape \[num_heads\]"):
        check_attention_inputs(*gpu, causal=False, learnable_sink=TensorFacts((3,), "float32", "gpu:0"))
