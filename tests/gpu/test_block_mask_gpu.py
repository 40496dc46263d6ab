"""Paddle's block_mask (#30) on the GPU, through the torch door, against the
dense fp32 reference (run_case: the column mask AND the expanded block mask,
tests/gpu/flashmask_ref.py dense_block_mask), forward, lse and dq / dk / dv, on
both kernel paths and in deterministic mode.

Every kernel drops a tile whose 128 x 128 block is 0 (never loaded): the sm80
tile lists, the sm90 forward's producer and the sm90 backward's walk."""
import pytest

torch = pytest.importorskip("torch")
from paddle_flashmask.torch import flashmask_attention  # noqa: E402

from flashmask_ref import random_startend  # noqa: E402
from test_flashmask_torch import DEVICE, kernel_path, run_case  # noqa: E402,F401 (fixture)

BLOCK = 128


@pytest.fixture(params=[False, True], ids=["atomic", "deterministic"])
def deterministic(request, monkeypatch):
    """The deterministic backward (sm80: the row kernel for dQ) as the door's switch sets it."""
    if request.param:
        monkeypatch.setenv("FLASHMASK_DETERMINISTIC", "1")
    return request.param


def random_block_mask(gen, b, heads, sq, sk, keep):
    shape = (b, heads, -(-sq // BLOCK), -(-sk // BLOCK))
    return (torch.rand(shape, generator=gen) < keep).to(torch.int32)


@pytest.mark.parametrize("keep", [0.0, 0.25, 0.5, 0.9])
@pytest.mark.parametrize("causal,ncols", [(False, 0), (True, 0), (True, 1), (True, 2), (False, 2), (False, 4)])
def test_kept_fractions_and_layouts(keep, causal, ncols, kernel_path, deterministic):
    gen = torch.Generator().manual_seed(int(keep * 100) + ncols)
    b, sq, sk, h, hk = 2, 390, 390, 4, 2
    idx = random_startend(gen, b, 1, sq, sk, causal, ncols)
    blocks = random_block_mask(gen, b, 1, sq, sk, keep)
    run_case(b, sq, sk, h, hk, 64, torch.bfloat16, causal, idx, block_mask=blocks, seed=ncols)


@pytest.mark.parametrize("sq,sk", [(129, 300), (300, 129), (257, 257), (1, 200), (200, 1), (513, 1000)])
@pytest.mark.parametrize("causal,ncols", [(True, 1), (False, 4), (True, 0)])
def test_lengths_gqa(sq, sk, causal, ncols, kernel_path):
    """Sq != Sk, odd lengths, partial edge blocks; 8 query heads on 2 key heads."""
    gen = torch.Generator().manual_seed(sq * 3 + sk)
    idx = random_startend(gen, 1, 1, sq, sk, causal, ncols)
    blocks = random_block_mask(gen, 1, 1, sq, sk, 0.5)
    run_case(1, sq, sk, 8, 2, 128, torch.bfloat16, causal, idx, block_mask=blocks, seed=sq)


@pytest.mark.parametrize("heads", ["one", "hk", "h"])
@pytest.mark.parametrize("with_indices", [False, True])
@pytest.mark.parametrize("d", [64, 128, 192, 256])
def test_per_head_block_masks(heads, with_indices, d, kernel_path, deterministic):
    """block_mask heads 1, Hk or H (as startend_row_indices' when both are given):
    the column kernels look each query head of a GQA group up by itself."""
    gen = torch.Generator().manual_seed(d + len(heads))
    b, s, h, hk = 2, 333, 6, 2
    hm = {"one": 1, "hk": hk, "h": h}[heads]
    idx = random_startend(gen, b, hm, s, s, True, 2) if with_indices else None
    blocks = random_block_mask(gen, b, hm, s, s, 0.5)
    run_case(b, s, s, h, hk, d, torch.bfloat16, True, idx, block_mask=blocks, seed=d)


@pytest.mark.parametrize("d", [64, 192])
def test_block_rows_over_one_word(d, kernel_path, deterministic):
    """More than 32 block rows (the sm90 backward walks packed 32-row words of
    each block-mask column): 36 block rows, per-head masks where one head drops
    block rows 2..33 (across the word boundary at 32) and keeps row 35, the
    other keeps a sparse random set (per-head startend_row_indices too: the
    two must have the same heads)."""
    gen = torch.Generator().manual_seed(d)
    b, s, h, hk = 1, 4500, 2, 1
    blocks = random_block_mask(gen, b, h, s, s, 0.15)
    blocks[:, 0, 2:34] = 0
    blocks[:, 0, 35] = 1
    idx = random_startend(gen, b, h, s, s, True, 1)
    run_case(b, s, s, h, hk, d, torch.bfloat16, True, idx, block_mask=blocks, seed=d)


@pytest.mark.parametrize("causal", [False, True])
def test_fully_masked_rows(causal):
    """Query block 1 (rows 128..255) has every block dropped: those rows give
    0, lse -inf and zero dq; their keys get no gradient from them."""
    b, s, h = 1, 300, 2
    blocks = torch.ones(b, 1, 3, 3, dtype=torch.int32)
    blocks[:, :, 1] = 0
    out, dq, _, _ = run_case(b, s, s, h, h, 64, torch.bfloat16, causal, None, block_mask=blocks)
    assert out[:, 128:256].abs().max().item() == 0.0
    assert dq[:, 128:256].abs().max().item() == 0.0


def test_dropped_blocks_are_never_read(kernel_path):
    """Keys 128..255 lie only in dropped blocks: NaN there reaches no output or
    gradient, so their tiles are skipped, not masked after the fact."""
    gen = torch.Generator().manual_seed(5)
    s, h, d = 384, 2, 64
    q, k, v, dout = (torch.randn(1, s, h, d, generator=gen).to(DEVICE, torch.bfloat16) for _ in range(4))
    k[:, 128:256] = float("nan")
    v[:, 128:256] = float("nan")
    for t in (q, k, v):
        t.requires_grad_()
    blocks = torch.ones(1, 1, 3, 3, dtype=torch.int32, device=DEVICE)
    blocks[:, :, :, 1] = 0
    out = flashmask_attention(q, k, v, block_mask=blocks)
    out.backward(dout)
    for name, t in (("out", out), ("dq", q.grad), ("dk", k.grad[:, 256:]), ("dv", v.grad[:, 256:]),
                    ("dk", k.grad[:, :128]), ("dv", v.grad[:, :128])):
        assert torch.isfinite(t).all(), name


def test_with_dropout():
    gen = torch.Generator().manual_seed(9)
    idx = random_startend(gen, 2, 1, 260, 260, True, 1)
    blocks = random_block_mask(gen, 2, 1, 260, 260, 0.6)
    run_case(2, 260, 260, 4, 2, 128, torch.bfloat16, True, idx, block_mask=blocks, dropout=0.2, seed=4)
