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
    ("index > Sq", lambda: dict(startend=idx(value=17), causal=True), ValueError, "[0, seqlen_q=16]"),
    ("index < 0", lambda: dict(startend=idx(value=-1), causal=True), ValueError, "[0, seqlen_q=16]"),
]


def _start_after_end(causal, ncols, s_col, e_col):
    t = np.zeros([2, 1, 16, ncols], np.int32)
    t[..., s_col] = 9
    t[..., e_col] = 4
    return dict(startend=paddle.to_tensor(t), causal=causal)


CASES += [
    ("LTS > LTE causal", lambda: _start_after_end(True, 2, 0, 1), ValueError, "LTS <= LTE"),
    ("LTS > LTE", lambda: _start_after_end(False, 4, 0, 1), ValueError, "LTS <= LTE"),
    ("UTS > UTE", lambda: _start_after_end(False, 4, 2, 3), ValueError, "UTS <= UTE"),
]


@pytest.mark.parametrize("desc,build,error,words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused(desc, build, error, words):
    with pytest.raises(error) as info:
        call(**build())
    assert words in str(info.value), str(info.value)


def test_valid_edge_values_accepted():
    """Bounds equal to 0 and Sq, and start == end, are valid."""
    t = np.zeros([2, 1, 16, 4], np.int32)
    t[..., 0], t[..., 1], t[..., 2], t[..., 3] = 16, 16, 0, 0
    out = call(startend=paddle.to_tensor(t), causal=False)
    assert list(out.shape) == [2, 16, 4, 16]


def test_index_values_checked_once_per_tensor_version(monkeypatch):
    """A mask reused by every layer is value-checked (one device sync) once;
    an in-place change or another tensor is checked again."""
    from paddle_flashmask import validation

    calls = []
    real = validation.check_index_values
    monkeypatch.setattr(validation, "check_index_values", lambda *a: calls.append(1) or real(*a))
    mask = idx(value=8)
    for _ in range(3):
        call(startend=mask, causal=True)
    assert len(calls) == 1
    mask.add_(paddle.full_like(mask, 9))  # in place: values now 17 > seqlen_q
    with pytest.raises(ValueError, match=r"\[0, seqlen_q=16\]"):
        call(startend=mask, causal=True)
    assert len(calls) == 2
    fresh = idx(value=8)
    call(startend=fresh, causal=True)
    call(startend=fresh.tile([1, 1, 1, 2]), causal=False)  # another tensor: checked
    assert len(calls) == 4
