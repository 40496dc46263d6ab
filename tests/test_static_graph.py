"""The op under paddle.jit.to_static with static and dynamic dims, and after
jit.save / jit.load: run-time refusals are Python exceptions (never a dead
process), and window_size, softmax_scale=None and any mask values give the
dygraph answer (issue #32)."""
import os

import numpy as np
import paddle
import pytest

import paddle_flashmask as pfm
from reference import dense_allowed, dense_attention

D = 8
DYNAMIC = None  # an InputSpec dim known only at run time


def spec(shape, dtype="float32"):
    return paddle.static.InputSpec(shape, dtype)


def compile_attention(q_shape, kv_shape, idx_shape=None, **kw):
    """to_static of flashmask_attention over the given (partly dynamic) shapes."""
    if idx_shape is None:
        def fn(q, k, v):
            return pfm.flashmask_attention(q, k, v, **kw)
        specs = [spec(q_shape), spec(kv_shape), spec(kv_shape)]
    else:
        def fn(q, k, v, idx):
            return pfm.flashmask_attention(q, k, v, idx, **kw)
        specs = [spec(q_shape), spec(kv_shape), spec(kv_shape), spec(idx_shape, "int32")]
    return paddle.jit.to_static(fn, input_spec=specs, full_graph=True)


def tensors(b=2, s=16, h=4, hk=2, d=D, seed=0):
    paddle.seed(seed)
    return (paddle.randn([b, s, h, d]), paddle.randn([b, s, hk, d]), paddle.randn([b, s, hk, d]))


def full_mask(b, h, s, ncols, value):
    return paddle.full([b, h, s, ncols], value, "int32")


ALL_DYNAMIC = dict(q_shape=[DYNAMIC] * 3 + [D], kv_shape=[DYNAMIC] * 3 + [D],
                   idx_shape=[DYNAMIC] * 3 + [1])

# (name, inputs that fail a C++ check only at run time, words of the message)
RUNTIME_REFUSALS = [
    ("mask batch != query batch", lambda: (*tensors(b=2), full_mask(3, 1, 16, 1, 16)), "shape[0]"),
    ("num_heads % num_heads_k", lambda: (*tensors(h=3, hk=2), full_mask(2, 1, 16, 1, 16)),
     "multiple"),
    ("mask heads = 3", lambda: (*tensors(), full_mask(2, 3, 16, 1, 16)), "shape[1]"),
    ("mask Sk != key length", lambda: (*tensors(), full_mask(2, 1, 15, 1, 16)), "shape[2]"),
]


def saved_and_loaded(fn, tmp_path):
    path = os.path.join(str(tmp_path), "attention")
    paddle.jit.save(fn, path)
    return paddle.jit.load(path)


@pytest.fixture(scope="module")
def dynamic_causal():
    return compile_attention(**ALL_DYNAMIC, causal=True)


@pytest.mark.parametrize("name,build,words", RUNTIME_REFUSALS, ids=[c[0] for c in RUNTIME_REFUSALS])
def test_runtime_refusal_is_a_python_error_under_to_static(dynamic_causal, name, build, words):
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
        dynamic_causal(*build())
    q, k, v = tensors()  # and the compiled function still works afterwards
    good = full_mask(2, 1, 16, 1, 16)
    assert float((dynamic_causal(q, k, v, good)
                  - pfm.flashmask_attention(q, k, v, good, causal=True)).abs().max()) < 1e-6


def test_dynamic_column_count_checked_at_run_time():
    fn = compile_attention([DYNAMIC] * 3 + [D], [DYNAMIC] * 3 + [D], [DYNAMIC] * 4, causal=True)
    with pytest.raises(ValueError, match="1 or 2 columns"):
        fn(*tensors(), full_mask(2, 1, 16, 4, 16))
    q, k, v = tensors()
    good = full_mask(2, 1, 16, 2, 16)
    assert float((fn(q, k, v, good)
                  - pfm.flashmask_attention(q, k, v, good, causal=True)).abs().max()) < 1e-6


def test_runtime_refusal_after_jit_load(tmp_path):
    loaded = saved_and_loaded(compile_attention(**ALL_DYNAMIC, causal=True), tmp_path)
    q, k, v = tensors()
    good = full_mask(2, 1, 16, 1, 9)
    assert float((loaded(q, k, v, good)
                  - pfm.flashmask_attention(q, k, v, good, causal=True)).abs().max()) < 1e-6
    for name, build, words in RUNTIME_REFUSALS:
        with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
            loaded(*build())


@pytest.mark.parametrize("dims", ["static", "dynamic"])
@pytest.mark.parametrize("causal,window", [(True, 3), (False, (2, 5)), (True, 2**31 - 1),
                                           (False, 2**40)])
def test_window_under_to_static(dims, causal, window):
    shape = [2, 16, 4, D] if dims == "static" else [DYNAMIC, DYNAMIC, 4, D]
    kv = [2, 16, 2, D] if dims == "static" else [DYNAMIC, DYNAMIC, 2, D]
    fn = compile_attention(shape, kv, causal=causal, window_size=window)
    q, k, v = tensors()
    want = pfm.flashmask_attention(q, k, v, causal=causal, window_size=window)
    assert float((fn(q, k, v) - want).abs().max()) < 1e-6
    if dims == "dynamic":  # another length through the same program
        q, k, v = tensors(b=1, s=23, seed=1)
        want = pfm.flashmask_attention(q, k, v, causal=causal, window_size=window)
        assert float((fn(q, k, v) - want).abs().max()) < 1e-6


def test_window_and_default_scale_after_jit_load(tmp_path):
    fn = compile_attention([DYNAMIC] * 4, [DYNAMIC] * 4, causal=True, window_size=(4, 0))
    loaded = saved_and_loaded(fn, tmp_path)
    for s, d in ((16, 8), (29, 12)):
        q, k, v = tensors(b=1, s=s, d=d)
        want = pfm.flashmask_attention(q, k, v, causal=True, window_size=(4, 0))
        assert float((loaded(q, k, v) - want).abs().max()) < 1e-6


def test_default_scale_with_dynamic_head_dim():
    fn = compile_attention([DYNAMIC] * 4, [DYNAMIC] * 4, causal=True)
    for d in (8, 20):
        q, k, v = tensors(d=d)
        want = pfm.flashmask_attention(q, k, v, causal=True)
        assert float((fn(q, k, v) - want).abs().max()) < 1e-6


def test_any_mask_values_follow_the_formula_in_static_graphs(tmp_path):
    fn = compile_attention([DYNAMIC] * 4, [DYNAMIC] * 4, [DYNAMIC] * 3 + [4], causal=False)
    loaded = saved_and_loaded(fn, tmp_path)
    q, k, v = tensors()
    rng = np.random.default_rng(0)
    idx = paddle.to_tensor(rng.integers(-40, 60, size=(2, 1, 16, 4)).astype(np.int32))
    ref, _ = dense_attention(q, k, v, dense_allowed(idx, False, 16, 16))
    for run in (fn, loaded):
        assert float((run(q, k, v, idx) - ref).abs().max()) < 1e-5


def test_static_dims_refused_at_trace_time():
    with pytest.raises(ValueError, match="shape\\[2\\]"):
        compile_attention([2, 16, 4, D], [2, 16, 2, D], [2, 1, 15, 1], causal=True)(
            *tensors(), full_mask(2, 1, 15, 1, 16))
