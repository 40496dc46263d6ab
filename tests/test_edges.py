"""Extreme arguments and non-finite inputs: the right answer or a clear error,
never a dead process or a silently wrong result (issue #32, dygraph)."""
import numpy as np
import paddle
import pytest

import paddle_flashmask as pfm
from paddle_flashmask import checks, raw_ops
from attention_cases import random_qkv, rel_err
from reference import dense_allowed, dense_attention


D_EDGE = 8


def qkv(b=1, s=24, h=2, hk=1, d=D_EDGE, seed=0):
    return random_qkv(b, s, s, h, hk, d, seed=seed)


# ---- raw ops: C++ refusals are ValueErrors, never OSError or a signal ----------------------

def test_raw_backward_head_dim_0_is_a_value_error():
    q, k, v = (paddle.zeros([1, 4, 2, 0]) for _ in range(3))
    lse = paddle.zeros([1, 2, 4])
    with pytest.raises(ValueError, match="dims must lie in"):
        raw_ops.attention_backward(q, k, v, None, paddle.zeros([2], "int64"), q, lse, q,
                                   dropout_p=0.0, causal=False, softmax_scale=1.0)


@pytest.mark.parametrize("bad,words", [
    (dict(mask_batch=2), "shape[0]"),
    (dict(mask_heads=3), "shape[1]"),
    (dict(mask_len=5), "shape[2]"),
    (dict(mask_cols=4), "columns"),
    (dict(kv_heads=4), "multiple"),
    (dict(dropout=1 - 1e-9), "dropout"),
    (dict(scale=float("inf")), "softmax_scale"),
])
def test_raw_forward_refusals_are_value_errors_naming_the_argument(bad, words):
    b, s, h = 1, 16, 6
    q = paddle.randn([b, s, h, 8])
    k = paddle.randn([b, s, bad.get("kv_heads", 2), 8])
    idx = paddle.full([bad.get("mask_batch", b), bad.get("mask_heads", 1),
                       bad.get("mask_len", s), bad.get("mask_cols", 1)], s, "int32")
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
        raw_ops.attention_forward(q, k, k, idx, paddle.zeros([2], "int64"),
                                  dropout_p=bad.get("dropout", 0.0), causal=True,
                                  softmax_scale=bad.get("scale", None))


@pytest.mark.parametrize("what", ["float64 query", "int64 mask", "float16 lse"])
def test_raw_op_dtype_refusals_are_type_errors(what):
    q = paddle.randn([1, 8, 2, 4])
    seed = paddle.zeros([2], "int64")
    if what == "float64 query":
        with pytest.raises(TypeError, match="query dtype"):
            raw_ops.attention_forward(q.astype("float64"), q.astype("float64"), q.astype("float64"),
                                      None, seed, dropout_p=0.0, causal=False, softmax_scale=None)
    elif what == "int64 mask":
        with pytest.raises(TypeError, match="startend_row_indices must be int32"):
            raw_ops.attention_forward(q, q, q, paddle.full([1, 1, 8, 1], 8, "int64"), seed,
                                      dropout_p=0.0, causal=True, softmax_scale=None)
    else:
        with pytest.raises(TypeError, match="softmax_lse must be float32"):
            raw_ops.attention_backward(q, q, q, None, seed, q, paddle.zeros([1, 2, 8], "float16"),
                                       q, dropout_p=0.0, causal=False, softmax_scale=None)


def test_raw_ops_default_scale_is_head_dim_rsqrt():
    q, k, v = qkv(d=9)
    seed = paddle.zeros([2], "int64")
    default, _ = raw_ops.attention_forward(q, k, v, None, seed, dropout_p=0.0, causal=True,
                                           softmax_scale=None)
    explicit, _ = raw_ops.attention_forward(q, k, v, None, seed, dropout_p=0.0, causal=True,
                                            softmax_scale=9 ** -0.5)
    assert float((default - explicit).abs().max()) < 1e-6


# ---- window_size at and beyond int32 --------------------------------------------------------

@pytest.mark.parametrize("window", [2**31 - 1, 2**31, 2**40, (2**40, 3), (5, 2**63)])
def test_huge_window_means_no_limit(window):
    q, k, v = qkv()
    left, right = checks.normalize_window(window)
    got = pfm.flashmask_attention(q, k, v, window_size=window)
    want = pfm.flashmask_attention(q, k, v, window_size=(min(left, 24), min(right, 24)))
    assert float((got - want).abs().max()) == 0.0
    if window == 2**31 - 1:  # and a window longer than the sequence is plain attention
        plain = pfm.flashmask_attention(q, k, v, causal=True)
        assert float((pfm.flashmask_attention(q, k, v, causal=True, window_size=window)
                      - plain).abs().max()) == 0.0


# ---- double backward ------------------------------------------------------------------------

@pytest.mark.parametrize("wrt", [0, 1, 2])
def test_double_backward_is_refused_clearly(wrt):
    q, k, v = qkv()
    out = pfm.flashmask_attention(q, k, v, causal=True)
    first = paddle.grad([(out * out).sum()], [q, k, v], create_graph=True)
    with pytest.raises(NotImplementedError, match="double backward"):
        paddle.grad([first[wrt].sum()], [q, k, v], allow_unused=True)


# ---- index values: any int32 bound has a meaning --------------------------------------------

def test_out_of_range_and_reversed_bounds_follow_the_formula():
    q, k, v = random_qkv(2, 20, 20, 2, 1, 8)
    rng = np.random.default_rng(3)
    for causal, ncols in ((True, 1), (True, 2), (False, 2), (False, 4)):
        idx = paddle.to_tensor(rng.integers(-2**31, 2**31 - 1, size=(2, 1, 20, ncols))
                               .astype(np.int32))
        idx[..., 0:1] = paddle.to_tensor(rng.integers(-5, 26, size=(2, 1, 20, 1)).astype(np.int32))
        out = pfm.flashmask_attention(q, k, v, idx, causal=causal)
        ref, _ = dense_attention(q, k, v, dense_allowed(idx, causal, 20, 20))
        assert rel_err(out, ref) <= 1e-5, (causal, ncols)


def test_mask_means_the_same_however_it_was_written():
    """A fresh tensor, one rewritten by set_value() after a first call (which
    does not bump its in-place version), and an in-place add all follow the
    formula: nothing is cached, nothing is refused."""
    q, k, v = qkv()
    plain = pfm.flashmask_attention(q, k, v, causal=True)
    fresh = pfm.flashmask_attention(q, k, v, paddle.full([1, 1, 24, 1], 30, "int32"), causal=True)
    idx = paddle.full([1, 1, 24, 1], 12, "int32")
    first = pfm.flashmask_attention(q, k, v, idx, causal=True)
    idx.set_value(paddle.full([1, 1, 24, 1], 30, "int32"))  # LTS past Sq: nothing masked
    rewritten = pfm.flashmask_attention(q, k, v, idx, causal=True)
    idx.add_(paddle.full_like(idx, -40))  # LTS -10: every row masked for every key
    masked = pfm.flashmask_attention(q, k, v, idx, causal=True)
    assert float((first - plain).abs().max()) > 0
    assert float((fresh - plain).abs().max()) == 0 and float((rewritten - plain).abs().max()) == 0
    assert float(masked.abs().max()) == 0.0


# ---- NaN / Inf ------------------------------------------------------------------------------

def _doc_mask(s, doc):
    """Causal documents of length doc: [1, 1, s, 1]."""
    ends = np.minimum((np.arange(s) // doc + 1) * doc, s)
    return paddle.to_tensor(ends.reshape(1, 1, s, 1).astype(np.int32))


def test_nan_in_a_query_row_gives_nan_in_that_row_only():
    q, k, v = qkv(s=40)
    q = q.detach()
    q[0, 7, 1, 3] = float("nan")
    idx = _doc_mask(40, 10)
    out, lse = pfm.flashmask_attention(q, k, v, idx, causal=True, return_softmax_lse=True)
    bad = paddle.isnan(out).any(axis=-1)
    assert bool(bad[0, 7, 1]) and bool(paddle.isnan(lse[0, 1, 7]))
    assert int(bad.astype("int32").sum()) == 1
    assert int(paddle.isnan(lse).astype("int32").sum()) == 1


@pytest.mark.parametrize("poison", [float("nan"), float("inf")])
def test_non_finite_value_reaches_only_rows_that_see_its_key(poison):
    """Key 13 (document [10, 20)) is in a tile shared with rows of other
    documents and with fully masked rows; only rows 13..19 may see it."""
    s = 40
    q, k, v = qkv(s=s, h=1, hk=1)
    v = v.detach()
    v[0, 13, 0, 2] = poison
    idx = _doc_mask(s, 10).numpy()
    idx[0, 0, 30:, 0] = 30  # keys 30..39 masked for every row >= 30 ...
    idx = paddle.to_tensor(idx)
    dead = np.zeros([1, 1, s, 4], np.int32)  # ... and rows 0..3 see nothing (4-col, non-causal)
    dead[..., 0], dead[..., 1], dead[..., 2], dead[..., 3] = 0, 4, 0, 0
    out, lse = pfm.flashmask_attention(q, k, v, idx, causal=True, return_softmax_lse=True)
    rows_seeing = set(range(13, 20))
    finite_rows = [i for i in range(s) if i not in rows_seeing]
    out_np = out.numpy()[0, :, 0]
    assert np.isfinite(out_np[finite_rows]).all()
    assert not np.isfinite(out_np[sorted(rows_seeing)]).all(axis=-1).any()
    clean = v.clone()
    clean[0, 13, 0, 2] = 0.0
    ref, _ = dense_attention(q, k, clean, dense_allowed(idx, True, s, s))
    assert np.abs(out_np[finite_rows] - ref.numpy()[0, finite_rows, 0]).max() < 1e-5

    # Fully masked rows stay 0 with lse -inf, whatever V holds elsewhere.
    out2, lse2 = pfm.flashmask_attention(q, k, v, paddle.to_tensor(dead), causal=False,
                                         return_softmax_lse=True)
    assert float(out2[0, :4].abs().max()) == 0.0
    assert bool(paddle.isinf(lse2[0, :, :4]).all())


@pytest.mark.parametrize("where", ["query", "key", "value"])
def test_non_finite_input_travels_only_along_unmasked_pairs_in_gradients(where):
    """Documents [0, 10), [10, 20), [20, 30), [30, 40), causal: a NaN at position
    13 may reach rows 13..19 and, through them, the keys 10..19 they see;
    every other output and gradient equals the reference without the NaN."""
    s = 40
    q, k, v = qkv(s=s, h=2, hk=1)
    poisoned = {"query": q, "key": k, "value": v}[where].detach().clone()
    poisoned[0, 13, 0, 1] = float("nan")
    inputs = [poisoned if t is {"query": q, "key": k, "value": v}[where] else t.detach()
              for t in (q, k, v)]
    clean = [t.detach() for t in (q, k, v)]
    for t in inputs + clean:
        t.stop_gradient = False
    idx = _doc_mask(s, 10)
    dout = paddle.randn([1, s, 2, D_EDGE])
    got = pfm.flashmask_attention(*inputs, idx, causal=True)
    want = pfm.flashmask_attention(*clean, idx, causal=True)
    got_grads = paddle.grad([got], inputs, [dout])
    want_grads = paddle.grad([want], clean, [dout])
    outside = [i for i in range(s) if not 10 <= i < 20]
    rows = [i for i in range(s) if not 13 <= i < 20]
    for name, g, w, keep in (("out", got, want, rows), ("dq", got_grads[0], want_grads[0], rows),
                             ("dk", got_grads[1], want_grads[1], outside),
                             ("dv", got_grads[2], want_grads[2], outside)):
        g, w = g.numpy()[0, keep], w.numpy()[0, keep]
        assert np.isfinite(g).all(), f"{where}: non-finite {name} outside the poisoned pairs"
        assert np.abs(g - w).max() < 1e-5, name
    assert not np.isfinite(got.numpy()[0, 13:20, 0]).all()
