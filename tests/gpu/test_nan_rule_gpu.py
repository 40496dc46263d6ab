"""The GPU side of the README's NaN rule, on both kernel paths: a NaN score
is never hidden as a masked row, a non-finite value reaches the rows that see
its key, rows in tiles that never load the key are untouched (bitwise), and
fully masked rows stay exactly 0 with lse -inf."""
import pytest

torch = pytest.importorskip("torch")
from paddle_flashmask.torch import _ext, flashmask_attention  # noqa: E402

from test_flashmask_torch import kernel_path  # noqa: E402,F401 (fixture)

if not torch.cuda.is_available():
    pytest.skip("no CUDA GPU", allow_module_level=True)
if not _ext.is_available() or not _ext.has_cuda():
    pytest.skip("extension not built with CUDA kernels", allow_module_level=True)


def inputs(s=512, h=2, d=128, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(1, s, h, d, generator=gen).cuda().bfloat16() for _ in range(3)]


@pytest.mark.parametrize("d", [64, 128])
def test_nan_in_query_row_gives_nan_row(d, kernel_path):
    q, k, v = inputs(d=d)
    out0, lse0 = flashmask_attention(q, k, v, causal=True, return_softmax_lse=True)
    q[0, 37, 1, 5] = float("nan")
    out, lse = flashmask_attention(q, k, v, causal=True, return_softmax_lse=True)
    assert torch.isnan(out[0, 37, 1]).all()
    assert torch.isnan(lse[0, 1, 37])
    poisoned = torch.zeros_like(out, dtype=torch.bool)
    poisoned[0, 37, 1] = True
    assert torch.equal(out[~poisoned], out0[~poisoned])  # rows are independent
    lse_poisoned = torch.zeros_like(lse, dtype=torch.bool)
    lse_poisoned[0, 1, 37] = True
    assert torch.equal(lse[~lse_poisoned], lse0[~lse_poisoned])


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_value_reaches_rows_that_see_it(bad, kernel_path):
    """Causal, key 300 poisoned in head 0, column 3: every row >= 300 sees it;
    rows < 256 never load its key tile (256..383) and stay bitwise the same."""
    q, k, v = inputs()
    out0 = flashmask_attention(q, k, v, causal=True)
    v[0, 300, 0, 3] = bad
    out = flashmask_attention(q, k, v, causal=True)
    assert not torch.isfinite(out[0, 300:, 0, 3]).any()
    assert torch.equal(out[0, :256], out0[0, :256])
    assert torch.equal(out[0, :, 1], out0[0, :, 1])  # the other head
    assert torch.isfinite(out[0, :, 0, :3]).all() and torch.isfinite(out[0, :, 0, 4:]).all()


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_fully_masked_rows_stay_zero_next_to_nonfinite_value(bad, kernel_path):
    """Rows [64, 128) see no key and share every key tile with the poisoned key
    5: their output is exactly 0 and their lse -inf all the same."""
    q, k, v = inputs(s=384)
    idx = torch.zeros(1, 1, 384, 4, dtype=torch.int32, device="cuda")
    idx[..., 0], idx[..., 1] = 64, 128
    v[0, 5, :, :] = bad
    out, lse = flashmask_attention(q, k, v, idx, causal=False, return_softmax_lse=True)
    assert torch.count_nonzero(out[0, 64:128]) == 0
    assert torch.isneginf(lse[0, :, 64:128]).all()
    assert not torch.isfinite(out[0, :64]).any() and not torch.isfinite(out[0, 128:]).any()
