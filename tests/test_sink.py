"""Learnable attention sink (FlashMask V4's `learnable_sink`, paddleformers' `sink=`):
forward, lse and every gradient including the sink's, against the float64 dense
reference over the mask matrix; and against paddleformers' own eager sink path."""
import types

import numpy as np
import paddle
import pytest

import paddle_flashmask as pfm
from attention_cases import (LAYOUTS, assert_close, layout_case, random_qkv, random_startend, rel_err,
                             run_both)
from philox import dropout_keep_mask
from reference import dense_allowed, dense_attention

FWD_TOL, GRAD_TOL = 1e-5, 1e-4
SHAPES = [(67, 67), (50, 131), (130, 45)]  # (Sq, Sk): odd, Sq < Sk, Sq > Sk
HEADS = [(4, 4), (4, 2), (4, 1)]  # MHA, GQA, MQA


def random_sink(heads, dtype="float32", seed=0):
    """Logits around the scores' range, so the sink takes a real share of each row."""
    rng = np.random.default_rng(seed)
    sink = paddle.to_tensor(rng.normal(1.0, 1.5, size=[heads]).astype("float32")).astype(dtype)
    sink.stop_gradient = False
    return sink


@pytest.mark.parametrize("causal,ncols", LAYOUTS)
@pytest.mark.parametrize("sq,sk", SHAPES)
@pytest.mark.parametrize("heads,heads_k", HEADS)
def test_sink_matches_float64_reference(causal, ncols, sq, sk, heads, heads_k):
    q, k, v, startend = layout_case(causal, ncols, sq, sk, heads, heads_k)
    mine, ref = run_both(q, k, v, startend, causal, sink=random_sink(heads, seed=sq),
                         compute_dtype="float64")
    assert len(mine[2]) == 4  # dq, dk, dv, dsink
    assert_close(mine, ref, FWD_TOL, GRAD_TOL, f"{causal=} {ncols=} {sq=} {sk=}")


@pytest.mark.parametrize("mask_heads", [1, 2, 6])
def test_sink_with_per_head_masks(mask_heads):
    q, k, v = random_qkv(2, 90, 90, 6, 2, 32)
    startend = random_startend(np.random.default_rng(mask_heads), 2, mask_heads, 90, 90, False, 4)
    mine, ref = run_both(q, k, v, startend, False, sink=random_sink(6), compute_dtype="float64")
    assert_close(mine, ref, FWD_TOL, GRAD_TOL)


def test_sink_is_not_scaled_by_softmax_scale():
    """V4 adds exp(sink) unscaled: a softmax_scale change moves the scores, not the sink."""
    q, k, v = random_qkv(1, 40, 40, 2, 2, 16)
    mine, ref = run_both(q, k, v, None, True, softmax_scale=0.05, sink=random_sink(2),
                         compute_dtype="float64")
    assert_close(mine, ref, FWD_TOL, GRAD_TOL)


def test_fully_masked_rows_give_zero_and_lse_equals_sink():
    """Rows 10..29 see no key: out 0, lse = the sink's logit, no NaN anywhere."""
    sq = 64
    q, k, v = random_qkv(1, sq, sq, 2, 2, 16)
    idx = np.zeros([1, 1, sq, 4], np.int32)
    idx[..., 0], idx[..., 1] = 10, 30
    sink = random_sink(2)
    mine, ref = run_both(q, k, v, paddle.to_tensor(idx), False, sink=sink, compute_dtype="float64")
    assert_close(mine, ref, FWD_TOL, GRAD_TOL)
    out, lse, (dq, _, _, dsink) = mine
    assert float(out[:, 10:30].abs().max()) == 0.0
    expected = sink.reshape([1, 2, 1]).expand([1, 2, 20])
    assert float((lse[:, :, 10:30] - expected).abs().max()) < 1e-6
    assert float(dq[:, 10:30].abs().max()) == 0.0
    assert bool(paddle.isfinite(dsink).all())


def test_everything_masked_with_sink():
    q, k, v = random_qkv(1, 33, 33, 2, 1, 16)
    sink = random_sink(2)
    out, lse = pfm.flashmask_attention(q, k, v, paddle.zeros([1, 1, 33, 1], "int32"), causal=True,
                                       learnable_sink=sink, return_softmax_lse=True)
    grads = paddle.grad([out], [q, k, v, sink], [paddle.ones_like(out)])
    assert float(out.abs().max()) == 0.0
    assert float((lse - sink.reshape([1, 2, 1])).abs().max()) < 1e-6
    for g in grads:
        assert float(g.abs().max()) == 0.0


def test_sink_with_dropout_matches_reference():
    """Dropout drops key weights only (as paddleformers' eager path); the sink still
    takes its share of the denominator."""
    b, s, h, hk, d, p = 2, 77, 4, 2, 32, 0.3
    q, k, v = random_qkv(b, s, s, h, hk, d)
    sink = random_sink(h)
    startend = random_startend(np.random.default_rng(0), b, 1, s, s, True, 2)
    so = paddle.to_tensor(np.array([4242, 3], np.int64))
    out = pfm.flashmask_attention(q, k, v, startend, causal=True, dropout=p, fixed_seed_offset=so,
                                  learnable_sink=sink)
    keep = paddle.to_tensor(dropout_keep_mask(4242, 3, b, h, s, s, p))
    ref, _ = dense_attention(q, k, v, dense_allowed(startend, True, s, s), dropout_keep=keep,
                             dropout=p, sink=sink, compute_dtype="float64")
    assert rel_err(out, ref) <= FWD_TOL
    dout = paddle.randn(out.shape)
    for g, rg in zip(paddle.grad([out], [q, k, v, sink], [dout]),
                     paddle.grad([ref], [q, k, v, sink], [dout])):
        assert rel_err(g, rg, floor=1.0) <= GRAD_TOL


@pytest.mark.parametrize("sink_dtype", ["float32", "bfloat16"])
def test_sink_dtype_float32_or_query_dtype(sink_dtype):
    q, k, v = random_qkv(1, 70, 70, 2, 1, 32, dtype="bfloat16")
    sink = random_sink(2, dtype=sink_dtype)
    (out, lse, grads), ref = run_both(q, k, v, None, True, sink=sink, compute_dtype="float64")
    assert grads[3].dtype == sink.dtype and out.dtype == paddle.bfloat16
    assert_close((out, lse, grads), ref, 1e-2, 2e-2, sink_dtype)


def test_sink_matches_paddleformers_eager_path():
    """paddleformers 1.2.0's eager_attention_forward with sink= (GPT-OSS): the same
    out and the same gradients, sink's included."""
    eager_attention_forward = pytest.importorskip(
        "paddleformers.nn.attention.eager_attention").eager_attention_forward

    b, s, h, hk, d = 2, 48, 4, 2, 16
    q, k, v = random_qkv(b, s, s, h, hk, d)
    sink = random_sink(h)
    startend = random_startend(np.random.default_rng(5), b, 1, s, s, True, 1)
    allowed = dense_allowed(startend, True, s, s)
    additive = paddle.where(allowed, paddle.zeros(allowed.shape), paddle.full(allowed.shape, -np.inf))
    module = types.SimpleNamespace(num_key_value_groups=h // hk, training=False)
    ref, _ = eager_attention_forward(module, q.transpose([0, 2, 1, 3]), k.transpose([0, 2, 1, 3]),
                                     v.transpose([0, 2, 1, 3]), attention_mask=additive, sink=sink,
                                     scaling=d ** -0.5)
    ref = ref.reshape([b, s, h, d])
    out = pfm.flashmask_attention(q, k, v, startend, causal=True, learnable_sink=sink)
    assert rel_err(out, ref) <= FWD_TOL
    dout = paddle.randn(out.shape)
    for g, rg in zip(paddle.grad([out], [q, k, v, sink], [dout]),
                     paddle.grad([ref], [q, k, v, sink], [dout])):
        assert rel_err(g, rg, floor=1.0) <= GRAD_TOL


def test_minus_infinity_sink_is_no_sink():
    """A -inf logit takes no share: the plain op's output, and no NaN even in rows
    that see no key (where lse is then -inf)."""
    q, k, v = random_qkv(1, 64, 64, 2, 2, 16)
    idx = np.zeros([1, 1, 64, 4], np.int32)
    idx[..., 0], idx[..., 1] = 10, 30
    idx = paddle.to_tensor(idx)
    sink = paddle.to_tensor(np.array([-np.inf, -np.inf], np.float32))
    sink.stop_gradient = False
    out = pfm.flashmask_attention(q, k, v, idx, learnable_sink=sink)
    plain = pfm.flashmask_attention(q, k, v, idx)
    assert float((out - plain).abs().max()) == 0.0
    grads = paddle.grad([out], [q, k, v, sink], [paddle.ones_like(out)])
    assert all(bool(paddle.isfinite(g).all()) for g in grads)
    assert float(grads[3].abs().max()) == 0.0
