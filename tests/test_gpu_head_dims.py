"""Head dims the CUDA kernels are not compiled for run on GPU at the next compiled
size with q, k, v zero-padded: which size serves which head dim, what the checks
refuse, and (on the CPU, by forcing the padded path) that padding is exact for the
output and every gradient."""
import numpy as np
import paddle
import pytest

import paddle_flashmask as pfm
from paddle_flashmask import api
from paddle_flashmask.checks import TensorFacts, check_attention_inputs, gpu_head_dim
from paddle_flashmask.kernel_table import CUDA_HEAD_DIMS


def test_each_head_dim_up_to_256_has_the_next_compiled_size():
    for d in range(1, CUDA_HEAD_DIMS[-1] + 1):
        served = gpu_head_dim(d)
        assert served in CUDA_HEAD_DIMS and served >= d
        assert all(c < d for c in CUDA_HEAD_DIMS if c < served)  # the smallest that fits
    assert gpu_head_dim(CUDA_HEAD_DIMS[-1] + 1) is None


def _facts(d, device):
    return [TensorFacts((2, 128, 4, d), "bfloat16", device), TensorFacts((2, 128, 2, d), "bfloat16", device),
            TensorFacts((2, 128, 2, d), "bfloat16", device)]


@pytest.mark.parametrize("d,padded", [(32, 64), (80, 96), (128, None), (160, 192), (200, 256), (1, 64)])
def test_checks_ask_for_padding_on_gpu_only(d, padded):
    assert check_attention_inputs(*_facts(d, "gpu:0"), causal=True).pad_head_dim_to == padded
    assert check_attention_inputs(*_facts(d, "cpu"), causal=True).pad_head_dim_to is None


def test_gpu_refuses_head_dims_above_256():
    with pytest.raises(ValueError, match="head_dim 320 is not supported on GPU: at most 256"):
        check_attention_inputs(*_facts(320, "gpu:0"), causal=True)


@pytest.mark.parametrize("d,causal,softmax_scale", [(40, True, None), (72, False, 0.3)])
def test_zero_padding_is_exact(d, causal, softmax_scale, monkeypatch):
    """The padded path (forced here on the CPU) against the plain one: out, lse and
    the gradients of q, k and v, with the default scale (from the real head dim)
    and an explicit one."""
    rng = np.random.default_rng(d)
    q, k, v = (paddle.to_tensor(rng.standard_normal([2, 70, n, d]).astype("float32")) for n in (4, 2, 2))
    for t in (q, k, v):
        t.stop_gradient = False
    idx = paddle.to_tensor(rng.integers(0, 71, [2, 1, 70, 1 if causal else 2]).astype("int32"))

    def run():
        out, lse = pfm.flashmask_attention(q, k, v, idx, causal=causal, softmax_scale=softmax_scale,
                                           return_softmax_lse=True)
        return [out, lse] + paddle.grad([out], [q, k, v], [paddle.ones_like(out)])

    plain = run()
    real = api.check_inputs
    monkeypatch.setattr(api, "check_inputs",
                        lambda *a, **kw: real(*a, **kw)._replace(pad_head_dim_to=128))
    padded = run()
    assert padded[0].shape == [2, 70, 4, d] and padded[2].shape == [2, 70, 4, d]
    for a, b in zip(plain, padded):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5)
