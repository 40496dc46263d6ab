"""Shared by the GPU benchmarks: CUDA-event timing, per-kernel times from the
profiler, and the sparsity-aware FLOP count (unmasked (row, key) pairs,
computed column-wise in O(S) from startend_row_indices); the official
FlashMask V3 as an optional baseline."""
import datetime
import os
import statistics
import sys
import types

import numpy as np


def cuda_times_ms(fn, warmup, reps, after=None):
    """`reps` CUDA-event timings of fn() (each call synchronized) after `warmup`
    calls; after() runs once after each timed call (e.g. to read the clock)."""
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
        if after is not None:
            after()
    return times


def alternating_rounds(variants, rounds, reps):
    """Same-run comparison: variants = {name: {part: fn}}; each round times every
    (name, part) in turn (the median of `reps` CUDA-event timings after one
    warm-up call). Returns {name: {part: [one median per round]}}."""
    times = {n: {p: [] for p in parts} for n, parts in variants.items()}
    for _ in range(rounds):
        for n, parts in variants.items():
            for p, fn in parts.items():
                times[n][p].append(statistics.median(cuda_times_ms(fn, 1, reps)))
    return times


def cuda_time_ms(fn, warmup, reps):
    """Median of `reps` CUDA-event timings of fn() after `warmup` calls."""
    return statistics.median(cuda_times_ms(fn, warmup, reps))


def kernel_times_us(fn, reps=3):
    """{kernel name: mean device time in us per fn() call} from the torch profiler."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            fn()
        torch.cuda.synchronize()
    out = {}
    for evt in prof.key_averages():
        t = getattr(evt, "device_time_total", None)
        if t is None:
            t = evt.cuda_time_total
        if t > 0:
            out[evt.key] = out.get(evt.key, 0.0) + t / reps
    return out


def _overlap(a0, a1, b0, b1):
    return np.maximum(0, np.minimum(a1, b1) - np.maximum(a0, b0))


def unmasked_pairs(idx, causal, sq, sk, batch=1):
    """Visible (row, key) pairs summed over batch rows and mask heads.

    idx: int [B, Hm, Sk, ncols] (the FlashMask column layout) or None (then
    `batch` rows of plain or causal attention). Multiply by H / Hm for the
    pairs of all query heads."""
    j = np.arange(sk)
    lo = np.maximum(0, j - (sk - sq)) if causal else np.zeros(sk, dtype=np.int64)
    if idx is None:
        return int(np.sum(sq - lo)) * batch
    idx = np.asarray(idx).astype(np.int64)
    n = idx.shape[-1]
    lts = idx[..., 0]
    full, zero = np.full_like(lts, sq), np.zeros_like(lts)
    if causal:
        lte, uts, ute = (idx[..., 1] if n == 2 else full), zero, zero
    elif n == 2:
        lte, uts, ute = full, zero, idx[..., 1]
    else:
        lte, uts, ute = idx[..., 1], idx[..., 2], idx[..., 3]
    hi = np.full_like(lts, sq)
    m_low = _overlap(lts, lte, lo, hi)
    m_up = _overlap(uts, ute, lo, hi)
    both = _overlap(np.maximum(lts, uts), np.minimum(lte, ute), lo, hi)
    return int(((sq - lo) - (m_low + m_up - both)).sum())


def four_column_bounds(idx, causal, sq):
    """Any layout -> non-causal [LTS, LTE, UTS, UTE] int32 [B, Hm, Sk, 4] with
    the same mask (Sq == Sk): causal becomes the upper band [0, j)."""
    idx = np.asarray(idx).astype(np.int64)
    n = idx.shape[-1]
    lts = idx[..., 0]
    j = np.broadcast_to(np.arange(idx.shape[2]), lts.shape)
    full, zero = np.full_like(lts, sq), np.zeros_like(lts)
    if causal:
        lte = idx[..., 1] if n == 2 else full
        uts, ute = zero, j
    elif n == 2:
        lte, uts, ute = full, zero, idx[..., 1]
    else:
        lte, uts, ute = idx[..., 1], idx[..., 2], idx[..., 3]
    return np.stack([lts, lte, uts, ute], axis=-1).astype(np.int32)


DENSE_MASKS = ("full", "causal")  # no mask tensor (as users pass them); SDPA expresses them too


def paper_case(name, batch, seqlen, heads, device="cuda"):
    """The paper's mask `name` (seed 0) as the benchmarks feed it to our kernels:
    (spec, mask tensor on `device` or None for DENSE_MASKS, visible (row, key)
    pairs over all batch rows and heads)."""
    import torch

    from paddle_flashmask.paper_masks import make_paper_mask

    spec = make_paper_mask(name, batch, seqlen, seed=0, num_heads=heads)
    idx_np = spec.startend_row_indices
    pairs = unmasked_pairs(idx_np, spec.causal, seqlen, seqlen) * (heads // idx_np.shape[1])
    idx = None if name in DENSE_MASKS else torch.from_numpy(np.ascontiguousarray(idx_np)).to(device)
    return spec, idx, pairs


FMV3_ENV = "FLASHMASK_FMV3_BUILD"


def run_meta(**fields):
    """What a GPU benchmark's JSON says about its run: the card, torch, the UTC
    time and the command (as run from the repository root), then `fields`."""
    import torch

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = os.path.relpath(os.path.abspath(sys.argv[0]), root)
    return {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": " ".join(["python", script, *sys.argv[1:]]), **fields}


def random_block_mask(batch, seqlen, f, gen):
    """Paddle's block_mask for [batch, seqlen] self-attention, one mask head,
    each 128 x 128 block kept with probability f (int32, on gen's device)."""
    import torch

    nb = (seqlen + 127) // 128
    return (torch.rand(batch, 1, nb, nb, device=gen.device, generator=gen) < f).to(torch.int32)


def mla_inputs(batch, seqlen, heads, gen):
    """DeepSeek-MLA-shaped inputs, bf16 on gen's device: q, k with head dim 192
    and v with 128 (requiring grad), and an output gradient of v's shape."""
    import torch

    def randn(d):
        return torch.randn(batch, seqlen, heads, d, device=gen.device, dtype=torch.bfloat16, generator=gen)

    q, k, v = (randn(d).requires_grad_() for d in (192, 192, 128))
    return q, k, v, randn(128)


def load_fmv3(build_dir):
    """flashmask_attention of the official FlashMask V3 built by the kit in
    ../shared/anchors/fmv3 (its README, step 4): the library registers
    torch.ops.flashmask; the repo's interface imports flashmask._C only for that,
    so empty modules stand in for its package."""
    import torch

    build_dir = os.path.abspath(build_dir)
    torch.ops.load_library(os.path.join(build_dir, "flashmask_C.so"))
    for name in ("flashmask", "flashmask._C"):
        sys.modules[name] = types.ModuleType(name)
    sys.path.insert(0, build_dir)
    from interface_torch import flashmask_attention

    return flashmask_attention


def fmv3_indices(spec, idx, device="cuda"):
    """The mask tensor V3 gets for a paper_case: its interface takes no None, so
    full and causal (idx None for ours) pass the paper's no-op columns."""
    import torch

    return idx if idx is not None else torch.from_numpy(np.ascontiguousarray(spec.startend_row_indices)).to(device)


def fmv3_applies(head_dim, heads, kv_heads):
    """The kit builds V3 for bf16, head dim 128, MHA only (the benchmarks run bf16)."""
    return head_dim == 128 and heads == kv_heads
