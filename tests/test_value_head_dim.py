"""Value head dim unlike the query/key one (Dv != D, e.g. MLA's 192 / 128): out is
[B, Sq, H, Dv]; forward, lse and all grads against the float64 dense reference."""
import numpy as np
import paddle
import pytest

import paddle_flashmask as pfm
from attention_cases import (LAYOUTS, assert_close, layout_case, random_qkv, random_startend, rel_err,
                             run_both)
from paddle_flashmask.checks import TensorFacts, check_attention_inputs, check_qkv
from philox import dropout_keep_mask
from reference import dense_allowed, dense_attention

FWD_TOL, GRAD_TOL = 1e-5, 1e-4
DIMS = [(32, 16), (24, 40), (8, 72)]  # (D, Dv): smaller, larger, padded both ways


@pytest.mark.parametrize("causal,ncols", LAYOUTS)
@pytest.mark.parametrize("dim,dim_v", DIMS)
@pytest.mark.parametrize("sq,sk,heads_k", [(67, 67, 4), (50, 131, 2), (130, 45, 1)])
def test_dv_matches_float64_reference(causal, ncols, dim, dim_v, sq, sk, heads_k):
    q, k, v, startend = layout_case(causal, ncols, sq, sk, 4, heads_k, dim=dim, dim_v=dim_v)
    mine, ref = run_both(q, k, v, startend, causal, compute_dtype="float64")
    out, _, (dq, dk, dv) = mine
    assert list(out.shape) == [2, sq, 4, dim_v]
    assert dq.shape == q.shape and dk.shape == k.shape and dv.shape == v.shape
    assert_close(mine, ref, FWD_TOL, GRAD_TOL, f"{causal=} {ncols=} {dim=} {dim_v=}")


@pytest.mark.parametrize("dim,dim_v", [(192, 128), (128, 64)])
def test_mla_and_half_value_dims(dim, dim_v):
    q, k, v = random_qkv(1, 70, 70, 2, 1, dim, seed=dim, dim_v=dim_v)
    startend = random_startend(np.random.default_rng(dim), 1, 1, 70, 70, True, 1)
    assert_close(*run_both(q, k, v, startend, True, compute_dtype="float64"), FWD_TOL, GRAD_TOL)


@pytest.mark.parametrize("mask_heads", [1, 2, 6])
def test_dv_per_head_masks_with_sink(mask_heads):
    q, k, v = random_qkv(2, 90, 90, 6, 2, 48, dim_v=20)
    startend = random_startend(np.random.default_rng(mask_heads), 2, mask_heads, 90, 90, True, 2)
    sink = paddle.to_tensor(np.linspace(-1, 2, 6).astype("float32"))
    sink.stop_gradient = False
    mine, ref = run_both(q, k, v, startend, True, sink=sink, compute_dtype="float64")
    assert_close(mine, ref, FWD_TOL, GRAD_TOL)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_dv_half_dtypes(dtype):
    q, k, v = random_qkv(2, 100, 100, 4, 2, 64, dtype=dtype, seed=5, dim_v=32)
    startend = random_startend(np.random.default_rng(3), 2, 1, 100, 100, False, 4)
    tol = 1e-2 if dtype == "bfloat16" else 2e-3
    assert_close(*run_both(q, k, v, startend, False, compute_dtype="float64"), tol, 2 * tol, dtype)


def test_dv_fully_masked_rows():
    q, k, v = random_qkv(1, 64, 64, 2, 2, 16, dim_v=40)
    idx = np.zeros([1, 1, 64, 4], np.int32)
    idx[..., 0], idx[..., 1] = 10, 30
    mine, ref = run_both(q, k, v, paddle.to_tensor(idx), False, compute_dtype="float64")
    assert_close(mine, ref, FWD_TOL, GRAD_TOL)
    assert float(mine[0][:, 10:30].abs().max()) == 0.0


def test_dv_with_dropout_matches_reference():
    b, s, h, hk, p = 2, 77, 4, 2, 0.3
    q, k, v = random_qkv(b, s, s, h, hk, 32, dim_v=48)
    startend = random_startend(np.random.default_rng(0), b, 1, s, s, True, 2)
    so = paddle.to_tensor(np.array([77, 5], np.int64))
    out = pfm.flashmask_attention(q, k, v, startend, causal=True, dropout=p, fixed_seed_offset=so)
    keep = paddle.to_tensor(dropout_keep_mask(77, 5, b, h, s, s, p))
    ref, _ = dense_attention(q, k, v, dense_allowed(startend, True, s, s), dropout_keep=keep,
                             dropout=p, compute_dtype="float64")
    assert rel_err(out, ref) <= FWD_TOL
    dout = paddle.randn(out.shape)
    for g, rg in zip(paddle.grad([out], [q, k, v], [dout]), paddle.grad([ref], [q, k, v], [dout])):
        assert rel_err(g, rg, floor=1.0) <= GRAD_TOL


def test_value_shape_checks():
    q, k, _ = random_qkv(2, 16, 16, 4, 2, 16)
    with pytest.raises(ValueError, match="value"):  # seqlen differs, not just the head dim
        pfm.flashmask_attention(q, k, paddle.randn([2, 15, 2, 16]))
    with pytest.raises(ValueError, match="value head_dim"):
        pfm.flashmask_attention(q, k, paddle.randn([2, 16, 2, 600]))
    # On GPU, Dv != D runs zero-padded to the next compiled size holding both; above 256 it is refused.
    with pytest.raises(ValueError, match="value head_dim 320 is not supported on GPU"):
        check_qkv(*(TensorFacts(shape, "bfloat16", "gpu:0")
                    for shape in ((2, 16, 4, 128), (2, 16, 2, 128), (2, 16, 2, 320))))


@pytest.mark.parametrize("d,dv,padded", [(192, 128, 192), (128, 64, 128), (64, 128, 128), (96, 40, 96),
                                         (40, 72, 96), (128, 128, None)])
def test_gpu_pads_unlike_value_head_dim(d, dv, padded):
    facts = [TensorFacts(shape, "bfloat16", "gpu:0")
             for shape in ((2, 16, 4, d), (2, 16, 2, d), (2, 16, 2, dv))]
    assert check_attention_inputs(*facts, causal=True).pad_head_dim_to == padded
