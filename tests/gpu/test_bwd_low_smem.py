"""Keeps the sm80 backward's low-shared-memory column kernel (the fallback on
devices with less shared memory, e.g. A100 at long Sq; forced here with
FLASHMASK_FORCE_LOW_SMEM_BWD=1 and no sm90 kernels) covered: a slice of the
main matrix (head dims, layouts, GQA, odd lengths, dropout)."""
import pytest

torch = pytest.importorskip("torch")
from test_flashmask_torch import run_case  # noqa: E402  (skips here too without GPU / extension)

from flashmask_ref import random_startend  # noqa: E402


@pytest.fixture(autouse=True)
def force_low_smem(monkeypatch):
    monkeypatch.setenv("FLASHMASK_FORCE_LOW_SMEM_BWD", "1")
    monkeypatch.setenv("FLASHMASK_DISABLE_SM90", "1")  # on Hopper the sm90 kernels would take d64/d128


@pytest.mark.parametrize("d", [64, 96, 128, 192, 256])
@pytest.mark.parametrize("causal,ncols", [(True, 0), (True, 2), (False, 4)])
def test_low_smem_layouts_head_dims(d, causal, ncols):
    gen = torch.Generator().manual_seed(d + ncols)
    b, sq, sk, h, hk = 2, 197, 197, 4, 2
    idx = random_startend(gen, b, 1 + (ncols % 2) * (hk - 1), sq, sk, causal, ncols)
    run_case(b, sq, sk, h, hk, d, torch.bfloat16, causal, idx, seed=d)


@pytest.mark.parametrize("sq,sk", [(129, 65), (333, 77), (64, 300)])
def test_low_smem_lengths_gqa(sq, sk):
    gen = torch.Generator().manual_seed(sq + sk)
    idx = random_startend(gen, 1, 2, sq, sk, True, 2)
    run_case(1, sq, sk, 8, 2, 128, torch.float16, True, idx, seed=sq)


def test_low_smem_dropout():
    run_case(2, 150, 150, 4, 2, 128, torch.bfloat16, True, None, dropout=0.17, seed=3)
