"""Every bad input is refused with a ValueError/TypeError naming the argument."""
import numpy as np
import paddle
import pytest

import paddle_flashmask as pfm


def qkv(b=2, sq=16, sk=16, h=4, hk=2, d=16, dtype="float32"):
    return (paddle.randn([b, sq, h, d]).astype(dtype), paddle.randn([b, sk, hk, d]).astype(dtype),
            paddle.randn([b, sk, hk, d]).astype(dtype))


def idx(b=2, h=1, s=16, ncols=1, value=16):
    return paddle.full([b, h, s, ncols], value, dtype="int32")


def call(**kw):
    q, k, v = kw.pop("qkv", None) or qkv()
    return pfm.flashmask_attention(q, k, v, kw.pop("startend", None), **kw)


CASES = [
    # (description, kwargs builder, error type, words the message must contain)
    ("query not a tensor", lambda: dict(qkv=(np.zeros([2, 16, 4, 16]),) + qkv()[1:]), TypeError, "query"),
    ("query rank 3", lambda: dict(qkv=(paddle.randn([2, 16, 64]),) + qkv()[1:]), ValueError, "query"),
    ("int dtype", lambda: dict(qkv=tuple(t.astype("int32") for t in qkv())), TypeError, "query"),
    ("float64", lambda: dict(qkv=qkv(dtype="float64")), TypeError, "query"),
    ("mixed dtypes", lambda: dict(qkv=(qkv()[0].astype("float16"),) + qkv()[1:]), TypeError, "dtype"),
    ("value shape", lambda: dict(qkv=qkv()[:2] + (paddle.randn([2, 15, 2, 16]),)), ValueError, "value"),
    ("batch", lambda: dict(qkv=(paddle.randn([3, 16, 4, 16]),) + qkv()[1:]), ValueError, "batch"),
    ("head_dim", lambda: dict(qkv=(paddle.randn([2, 16, 4, 8]),) + qkv()[1:]), ValueError, "head_dim"),
    ("heads not multiple", lambda: dict(qkv=qkv(h=3, hk=2)), ValueError, "num_heads"),
    ("head_dim too large", lambda: dict(qkv=qkv(d=1024)), ValueError, "head_dim"),
    ("zero seqlen", lambda: dict(qkv=qkv(sq=0)), ValueError, "seqlen"),
    ("causal not bool", lambda: dict(causal=1), TypeError, "causal"),
    ("dropout 1", lambda: dict(dropout=1.0), ValueError, "dropout"),
    ("dropout negative", lambda: dict(dropout=-0.1), ValueError, "dropout"),
    ("dropout str", lambda: dict(dropout="0.1"), TypeError, "dropout"),
    ("softmax_scale 0", lambda: dict(softmax_scale=0.0), ValueError, "softmax_scale"),
    ("softmax_scale nan", lambda: dict(softmax_scale=float("nan")), ValueError, "softmax_scale"),
    ("rng_name", lambda: dict(rng_name=3), TypeError, "rng_name"),
    ("seed_offset dtype", lambda: dict(fixed_seed_offset=paddle.zeros([2], "int32")), ValueError, "fixed_seed_offset"),
    ("seed_offset shape", lambda: dict(fixed_seed_offset=paddle.zeros([3], "int64")), ValueError, "fixed_seed_offset"),
    ("window negative", lambda: dict(window_size=-1), ValueError, "window_size"),
    ("window triple", lambda: dict(window_size=(1, 2, 3)), TypeError, "window_size"),
    ("window + mask", lambda: dict(window_size=4, startend=idx(), causal=True), ValueError, "window_size"),
    ("window Sq != Sk", lambda: dict(qkv=qkv(sq=8), window_size=4), ValueError, "window_size"),
    ("mask not tensor", lambda: dict(startend=np.zeros([2, 1, 16, 1], np.int32), causal=True), TypeError, "startend_row_indices"),
    ("mask int64", lambda: dict(startend=idx().astype("int64"), causal=True), TypeError, "startend_row_indices"),
    ("mask rank", lambda: dict(startend=paddle.zeros([2, 16, 1], "int32"), causal=True), ValueError, "startend_row_indices"),
    ("mask batch", lambda: dict(startend=idx(b=1), causal=True), ValueError, "shape[0]"),
    ("mask seqlen", lambda: dict(startend=idx(s=15), causal=True), ValueError, "shape[2]"),
    ("mask heads", lambda: dict(startend=idx(h=3), causal=True), ValueError, "shape[1]"),
    ("causal 4 cols", lambda: dict(startend=idx(ncols=4), causal=True), ValueError, "columns"),
    ("non-causal 1 col", lambda: dict(startend=idx(ncols=1), causal=False), ValueError, "columns"),
    ("non-causal 3 cols", lambda: dict(startend=idx(ncols=3), causal=False), ValueError, "columns"),
    ("softmax_scale overflows float32", lambda: dict(softmax_scale=1e39), ValueError, "softmax_scale"),
    ("softmax_scale underflows float32", lambda: dict(softmax_scale=1e-50), ValueError, "softmax_scale"),
    ("dropout rounds to 1 in float32", lambda: dict(dropout=1 - 1e-9), ValueError, "dropout"),
    ("causal np.int64", lambda: dict(causal=np.int64(1)), TypeError, "causal"),
    ("window float", lambda: dict(window_size=np.float32(4)), TypeError, "window_size"),
]


@pytest.mark.parametrize("desc,build,error,words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused(desc, build, error, words):
    with pytest.raises(error) as info:
        call(**build())
    assert words in str(info.value), str(info.value)


def test_numpy_scalars_accepted_like_python_ones():
    q, k, v = qkv()
    mask = idx(value=8)
    want = pfm.flashmask_attention(q, k, v, mask, causal=True, softmax_scale=0.3, dropout=0.0)
    got = pfm.flashmask_attention(q, k, v, mask, causal=np.bool_(True),
                                  softmax_scale=np.float32(0.3), dropout=np.float32(0.0))
    assert float((got - want).abs().max()) < 1e-6
    win = pfm.flashmask_attention(q, k, v, causal=True, window_size=np.int64(3))
    assert float((win - pfm.flashmask_attention(q, k, v, causal=True, window_size=3)).abs().max()) == 0
    pair = pfm.flashmask_attention(q, k, v, window_size=(np.int32(2), np.int64(1)))
    assert float((pair - pfm.flashmask_attention(q, k, v, window_size=(2, 1))).abs().max()) == 0
