"""Sizes the kernels cannot index are refused up front with a ValueError naming
the argument; sizes they can are accepted. The checks are framework-neutral
(TensorFacts: shapes only), so no tensor of that size is ever made.

- seqlen (query or key) above checks.MAX_SEQLEN = 2**31 - 2**16, on every device:
  int32 row and key indices with room to round a length up to whole tiles.
- num_heads above 65535 on GPU: a CUDA grid dimension. A batch above 65535 is
  fine: the dispatcher launches it in slices of 65535 (GPU test:
  tests/gpu/test_long_sequences.py)."""
import pytest

from paddle_flashmask import checks


def facts(b, s, h, d=64, device="gpu:0", dtype="bfloat16", sk=None, hk=1):
    q = checks.TensorFacts((b, s, h, d), dtype, device)
    k = checks.TensorFacts((b, s if sk is None else sk, hk, d), dtype, device)
    return q, k, k


def cpu(q, k, v):
    return tuple(t._replace(device="cpu", dtype="float32") for t in (q, k, v))


def test_max_seqlen_is_two_to_the_31_less_two_to_the_16():
    assert checks.MAX_SEQLEN == 2**31 - 2**16 == 2147418112


@pytest.mark.parametrize("device", ["gpu:0", "cpu"])
@pytest.mark.parametrize("which,sq,sk", [("query seqlen", checks.MAX_SEQLEN + 1, 128),
                                         ("key seqlen", 128, checks.MAX_SEQLEN + 1),
                                         ("query seqlen", 2**31 - 1, 2**31 - 1)])
def test_too_long_seqlen_is_refused_naming_it(device, which, sq, sk):
    q, k, v = facts(1, sq, 2, sk=sk)
    if device == "cpu":
        q, k, v = cpu(q, k, v)
    with pytest.raises(ValueError, match=f"{which} must be at most {checks.MAX_SEQLEN}"):
        checks.check_qkv(q, k, v)


@pytest.mark.parametrize("s", [checks.MAX_SEQLEN, 4 * 2**20])
def test_longest_seqlen_is_accepted(s):
    checks.check_qkv(*facts(1, s, 2))
    checks.check_qkv(*facts(1, 16, 2, sk=s))


def test_seqlen_limit_reaches_the_public_check():
    q, k, v = facts(1, checks.MAX_SEQLEN + 64, 2)
    with pytest.raises(ValueError, match="query seqlen"):
        checks.check_attention_inputs(q, k, v, causal=True)


def test_seqlen_unknown_until_run_time_is_left_to_the_op():
    checks.check_qkv(*facts(1, -1, 2))  # a static graph's -1: the op checks it when it runs


@pytest.mark.parametrize("batch", [65535, 65536, 70000, 2**20])
def test_gpu_batch_beyond_a_grid_dimension_is_accepted(batch):
    checks.check_qkv(*facts(batch, 16, 2))


def test_gpu_num_heads_beyond_a_grid_dimension_is_refused():
    q, k, v = facts(1, 128, 65536)
    with pytest.raises(ValueError, match="query num_heads must be at most 65535 on GPU"):
        checks.check_qkv(q, k, v)
    checks.check_qkv(*facts(1, 128, 65535))
    checks.check_qkv(*cpu(q, k, v))  # the CPU kernels have no grid
