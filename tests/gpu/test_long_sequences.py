"""Long sequences (#32) through the torch door, on both kernel paths (default:
sm90 on Hopper; sm80: FLASHMASK_DISABLE_SM90=1): B = 1, H = 2, bf16, causal
documents of a few K tokens and causal sliding windows at 128K, 1M and 4M
tokens, forward and backward.

The dense reference does not fit at these lengths; block_ref.py computes fp32
references on blocks that hold every key (and every query) the checked rows
(and keys) see: whole documents, or a query chunk with its window's reach.
At each length a few documents / chunks are checked (first, middle, last);
the whole output and every gradient are checked to be finite. Also: a batch
over the grid limit (65535) runs in slices and matches the dense reference,
dropout included, and a too long sequence is refused with a ValueError.

Also the sm80 kernels' tile lists past one chunk (512 tiles) against the
dense reference: 40000 query rows against 256 keys and the reverse, on every
backward path.

Each long case prints its kernel time (forward + backward) and peak memory
as a `[long]` line (`pytest -rP`)."""
import os
import time

import pytest

torch = pytest.importorskip("torch")
from paddle_flashmask.checks import MAX_SEQLEN  # noqa: E402
from paddle_flashmask.torch import flashmask_attention  # noqa: E402

from block_ref import assert_close_to_ref, block_reference  # noqa: E402
from flashmask_ref import random_startend  # noqa: E402
from test_flashmask_torch import DEVICE, kernel_path, run_case  # noqa: E402,F401 (fixture)
from test_sink_gpu import run_sink_case  # noqa: E402

if DEVICE != "cuda":
    pytest.skip("long sequences: GPU only", allow_module_level=True)

K, M = 1024, 1024 * 1024
CHUNK = 2048  # query rows per checked window chunk


def document_lengths(s, gen):
    """Lengths of documents of 2K-6K tokens filling s tokens."""
    lens = []
    while sum(lens) < s:
        lens.append(int(torch.randint(2 * K, 6 * K + 1, (1,), generator=gen)))
    lens[-1] -= sum(lens) - s
    return torch.tensor([n for n in lens if n > 0])


def causal_documents(s, gen):
    """startend_row_indices [1, 1, s, 1] (key j masked from its document's end
    on), the documents' (start, end), and the rule on global indices."""
    lens = document_lengths(s, gen)
    ends = torch.cumsum(lens, 0)
    starts = ends - lens
    idx = torch.repeat_interleave(ends, lens).to(torch.int32).view(1, 1, s, 1).cuda()
    row_start = torch.repeat_interleave(starts, lens).cuda()
    return idx, list(zip(starts.tolist(), ends.tolist())), \
        lambda r, c: (c <= r) & (c >= row_start[r])


def run_long(s, mask, d, hk, *, deterministic=False, seed=0):
    h, dtype, scale = 2, torch.bfloat16, d ** -0.5
    gen = torch.Generator().manual_seed(seed + s)
    cuda_gen = torch.Generator(device="cuda").manual_seed(seed + s)

    def randn(*shape):
        return torch.randn(*shape, generator=cuda_gen, device="cuda", dtype=dtype)

    q, k, v = randn(1, s, h, d), randn(1, s, hk, d), randn(1, s, hk, d)
    dout = randn(1, s, h, d)
    for t in (q, k, v):
        t.requires_grad_()
    torch.cuda.reset_peak_memory_stats()
    if mask == "doc":
        idx, docs, rule = causal_documents(s, gen)
        n = len(docs)
        checked = [0, n // 2, n - 1] if s > M else [0, n // 3, 2 * n // 3, n - 1]
        # blocks (rows, keys, checked rows, checked keys): whole documents
        blocks = [(a, b, a, b, (a, b), (a, b)) for a, b in (docs[i] for i in checked)]
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out, lse = flashmask_attention(q, k, v, idx, causal=True, return_softmax_lse=True,
                                       deterministic=deterministic)
    else:
        w = {128 * K: 4 * K, M: 2 * K}.get(s, K)
        rule = lambda r, c: (c <= r) & (c >= r - w)  # noqa: E731  window (w, 0): keys [i - w, i]
        blocks = []
        for a in (0, s // 2 - CHUNK // 2, s - CHUNK):
            q1 = min(s, a + CHUNK + w)
            # rows [a, q1) see keys in [a - w, q1); keys [a, a + CHUNK) are seen by rows in [a, q1)
            blocks.append((a, q1, max(0, a - w), q1, (a, q1), (a, a + CHUNK)))
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out, lse = flashmask_attention(q, k, v, causal=True, window_size=(w, 0),
                                       return_softmax_lse=True, deterministic=deterministic)
    out.backward(dout)
    torch.cuda.synchronize()
    path = "sm80" if os.environ.get("FLASHMASK_DISABLE_SM90") == "1" else "default"
    if os.environ.get("FLASHMASK_FORCE_LOW_SMEM_BWD") == "1":
        path += " low-smem"
    print(f"[long] S={s} {mask} d={d} hk={hk} {path}{' deterministic' if deterministic else ''}: "
          f"fwd+bwd {time.perf_counter() - t0:.2f} s, peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    for name, t in (("out", out), ("dq", q.grad), ("dk", k.grad), ("dv", v.grad)):
        assert torch.isfinite(t).all(), f"non-finite {name}"

    for q0, q1, k0, k1, (r0, r1), (c0, c1) in blocks:
        ref, pt = block_reference(q, k, v, dout, rule, q0, q1, k0, k1, scale)
        rows, keys = slice(r0 - q0, r1 - q0), slice(c0 - k0, c1 - k0)
        where = f"rows [{r0}, {r1}) keys [{c0}, {c1})"
        assert_close_to_ref(f"out {where}", out[:, r0:r1], ref["out"][:, rows], pt["out"][:, rows],
                            dtype, 1e-5)
        assert (lse[:, :, r0:r1] - ref["lse"][:, :, rows]).abs().max().item() < 1e-2, where
        for name, ours, sl, lo, hi in (("dq", q.grad, rows, r0, r1), ("dk", k.grad, keys, c0, c1),
                                       ("dv", v.grad, keys, c0, c1)):
            assert_close_to_ref(f"{name} {where}", ours[:, lo:hi], ref[name][:, sl], pt[name][:, sl],
                                dtype, 1e-4)


@pytest.mark.parametrize("hk", [1, 2])
@pytest.mark.parametrize("d", [64, 128])
@pytest.mark.parametrize("mask", ["doc", "window"])
def test_128k(mask, d, hk, kernel_path):
    run_long(128 * K, mask, d, hk)


@pytest.mark.parametrize("s", [M, 4 * M], ids=["1M", "4M"])
@pytest.mark.parametrize("mask,d,hk", [("doc", 128, 1), ("window", 64, 2)])
def test_long(s, mask, d, hk, kernel_path):
    run_long(s, mask, d, hk)


@pytest.mark.parametrize("mask,d,hk", [("doc", 64, 2), ("window", 128, 1)])
def test_1m_deterministic(mask, d, hk, kernel_path):
    """Deterministic backward: the sm80 row (dQ) kernel's key-tile chunks."""
    run_long(M, mask, d, hk, deterministic=True, seed=1)


def test_1m_low_smem_column_kernel(monkeypatch):
    """The A100 fallback column kernel (sm80) over many query-tile chunks."""
    monkeypatch.setenv("FLASHMASK_DISABLE_SM90", "1")
    monkeypatch.setenv("FLASHMASK_FORCE_LOW_SMEM_BWD", "1")
    run_long(M, "doc", 128, 1, seed=2)


@pytest.mark.parametrize("deterministic", [False, True])
def test_batch_over_grid_limit(deterministic, kernel_path):
    """70000 batches (grid dim z holds 65535): two launches; a different mask
    per batch checks that the second slice reads its own mask, q, k, v, lse."""
    gen = torch.Generator().manual_seed(70)
    idx = random_startend(gen, 70000, 1, 16, 16, True, 2)
    blocks = (torch.rand(70000, 1, 1, 1, generator=gen) < 0.7).to(torch.int32)  # one block per batch
    run_case(70000, 16, 16, 1, 1, 64, torch.bfloat16, True, idx, deterministic=deterministic,
             block_mask=blocks)


@pytest.mark.parametrize("deterministic", [False, True])
def test_batch_over_grid_limit_sink(deterministic, kernel_path):
    """dsink sums over the batch slices: the second launch adds to the first's."""
    gen = torch.Generator().manual_seed(72)
    idx = random_startend(gen, 70000, 1, 16, 16, True, 1)
    run_sink_case(70000, 16, 16, 1, 1, 64, torch.bfloat16, True, idx, [0.5], deterministic=deterministic)


@pytest.fixture(params=["default", "sm80", "sm80-low-smem"])
def any_backward_path(request, monkeypatch):
    if request.param != "default":
        monkeypatch.setenv("FLASHMASK_DISABLE_SM90", "1")
    if request.param == "sm80-low-smem":
        monkeypatch.setenv("FLASHMASK_FORCE_LOW_SMEM_BWD", "1")
    return request.param


@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize("bands", [False, True], ids=["plain", "bands"])
@pytest.mark.parametrize("sq,sk", [(40000, 256), (128, 40000)])
def test_tile_lists_over_one_chunk(sq, sk, bands, deterministic, any_backward_path):
    """625 tiles of 64 in one CTA's list (a list holds 512): the sm80 forward
    and dQ kernels walk 625 key tiles, the column kernels 625 query tiles, in
    two chunks; against the dense reference (the long cases above never put
    more than one chunk in a CTA)."""
    gen = torch.Generator().manual_seed(sq + sk + bands)
    idx = random_startend(gen, 1, 1, sq, sk, False, 4) if bands else None
    run_case(1, sq, sk, 2, 1, 64, torch.bfloat16, False, idx, deterministic=deterministic)


def test_batch_over_grid_limit_dropout(monkeypatch):
    """Dropout's row ids count batches of the whole call: the second slice's
    pattern is the reference's (sm80: the kernels with dropout)."""
    monkeypatch.setenv("FLASHMASK_DISABLE_SM90", "1")
    gen = torch.Generator().manual_seed(71)
    idx = random_startend(gen, 70000, 1, 16, 16, True, 1)
    run_case(70000, 16, 16, 1, 1, 64, torch.bfloat16, True, idx, dropout=0.17, seed=3)


def test_too_long_sequence_is_refused():
    """Beyond 2**31 - 2**16 tokens: a ValueError naming the argument (stride-0
    views: no memory behind them, the check reads shapes only)."""
    one_row = torch.zeros(1, 1, 2, 64, device="cuda", dtype=torch.bfloat16)
    big = one_row.expand(1, MAX_SEQLEN + 1, 2, 64)
    small = torch.zeros(1, 128, 2, 64, device="cuda", dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="query seqlen must be at most 2147418112"):
        flashmask_attention(big, small, small)
    with pytest.raises(ValueError, match="key seqlen must be at most 2147418112"):
        flashmask_attention(small, big, big)
