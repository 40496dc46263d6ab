"""Property test: thousands of small random problems against the float64 dense
reference (out, lse, dq, dk, dv).

Each run draws new cases (shapes, GQA/MQA, every column layout, per-head
masks, Sq != Sk, out-of-range and start > end bounds, dropout, windows,
softmax_scale, learnable sinks, a value head dim unlike the query/key one,
block masks on longer sequences); a failure prints the seed that replays it:
PFM_PROPERTY_SEED=<seed> PFM_PROPERTY_CASES=<n> python -P -m pytest tests/test_property.py
"""
import os
import random

import numpy as np
import paddle

import paddle_flashmask as pfm
from attention_cases import LAYOUTS, rel_err
from philox import dropout_keep_mask
from reference import dense_allowed, dense_attention

CASES = int(os.environ.get("PFM_PROPERTY_CASES", "2000"))
FWD_TOL, GRAD_TOL, LSE_TOL = 1e-5, 1e-4, 1e-5


DIMS = [1, 3, 8, 16, 33, 64]


def draw_case(rng):
    heads_k = int(rng.choice([1, 2, 3]))
    heads = heads_k * int(rng.choice([1, 2, 3]))
    blocks = rng.random() < 0.05  # a block_mask needs more than one 128-block to mean much
    hi = 300 if blocks else 41
    sq, sk = int(rng.integers(1, hi)), int(rng.integers(1, hi))
    causal, ncols = LAYOUTS[rng.integers(len(LAYOUTS))]
    window = None
    if ncols == 0 and rng.random() < 0.4:
        sk = sq
        window = (int(rng.integers(0, sq + 2)), int(rng.integers(0, sq + 2)))
    dim = int(rng.choice(DIMS))
    return dict(batch=int(rng.integers(1, 3)), sq=sq, sk=sk, heads=heads, heads_k=heads_k,
                dim=dim, dim_v=dim if rng.random() < 0.7 else int(rng.choice(DIMS)),
                sink=rng.random() < 0.3, blocks=blocks, causal=bool(causal), ncols=int(ncols),
                mask_heads=int(rng.choice(sorted({1, heads_k, heads}))), window=window,
                dropout=float(rng.choice([0.0, 0.0, 0.0, 0.25, 0.6])),
                scale=None if rng.random() < 0.7 else float(rng.uniform(0.05, 1.0)),
                seed=int(rng.integers(0, 2**62)))


def draw_indices(rng, c):
    """Bounds anywhere in [-3, sq + 3]: any int32 is a valid bound (clamped
    into [0, sq]; start > end is an empty band)."""
    if c["ncols"] == 0:
        return None
    shape = (c["batch"], c["mask_heads"], c["sk"], c["ncols"])
    if rng.random() < 0.7:  # mostly well-formed bands
        a, b = (rng.integers(0, c["sq"] + 1, size=shape) for _ in range(2))
        idx = np.where(np.arange(c["ncols"]) % 2 == 0, np.minimum(a, b), np.maximum(a, b))
        if c["causal"] is False and c["ncols"] == 2:  # [LTS, UTE]: independent bounds
            idx = a
    else:
        idx = rng.integers(-3, c["sq"] + 4, size=shape)
    return paddle.to_tensor(idx.astype(np.int32))


def draw_block_mask(rng, c):
    """int32 [B, heads, ceil(Sq/128), ceil(Sk/128)] of 0/1 (heads: the mask's, or
    any of 1 / Hk / H without one) and its dense bool [B, heads, Sq, Sk] (for
    windows; dense_allowed takes the block mask itself)."""
    if not c["blocks"]:
        return None, None
    heads = c["mask_heads"] if c["ncols"] > 0 else int(rng.choice(sorted({1, c["heads_k"], c["heads"]})))
    nq, nk = -(-c["sq"] // 128), -(-c["sk"] // 128)
    bm = (rng.random((c["batch"], heads, nq, nk)) < 0.6).astype(np.int32)
    dense = bm.repeat(128, axis=2).repeat(128, axis=3)[:, :, :c["sq"], :c["sk"]].astype(bool)
    return paddle.to_tensor(bm), paddle.to_tensor(dense)


def window_allowed(c):
    """bool [1, 1, S, S]: key j seen by rows [j - right, j + left] (and causal)."""
    left, right = c["window"]
    i = np.arange(c["sq"]).reshape(-1, 1)
    j = np.arange(c["sk"]).reshape(1, -1)
    ok = (j >= i - left) & (j <= i + right)
    if c["causal"]:
        ok &= j <= i
    return paddle.to_tensor(ok.reshape(1, 1, c["sq"], c["sk"]))


def run_case(c, rng):
    paddle.seed(c["seed"] % 2**31)
    q = paddle.randn([c["batch"], c["sq"], c["heads"], c["dim"]])
    k = paddle.randn([c["batch"], c["sk"], c["heads_k"], c["dim"]])
    v = paddle.randn([c["batch"], c["sk"], c["heads_k"], c["dim_v"]])
    sink = paddle.to_tensor(rng.uniform(-3, 3, c["heads"]).astype(np.float32)) if c["sink"] else None
    leaves = [q, k, v] + ([sink] if sink is not None else [])
    for t in leaves:
        t.stop_gradient = False
    idx = draw_indices(rng, c)
    block_mask, block_allowed = draw_block_mask(rng, c)
    seed_offset = paddle.to_tensor(np.array([c["seed"], 3], dtype=np.int64))
    out, lse = pfm.flashmask_attention(
        q, k, v, idx, causal=c["causal"], window_size=c["window"], dropout=c["dropout"],
        fixed_seed_offset=seed_offset, softmax_scale=c["scale"], return_softmax_lse=True,
        block_mask=block_mask, learnable_sink=sink)

    if c["window"] is None:
        allowed = dense_allowed(idx, c["causal"], c["sq"], c["sk"], block_mask)
    else:
        allowed = window_allowed(c)
        if block_allowed is not None:  # [1, 1, S, S] & [B, heads, S, S]
            allowed = allowed & block_allowed
    keep = None
    if c["dropout"] > 0:
        keep = paddle.to_tensor(dropout_keep_mask(c["seed"], 3, c["batch"], c["heads"], c["sq"],
                                                  c["sk"], c["dropout"]))
    ref, ref_lse = dense_attention(q, k, v, allowed, softmax_scale=c["scale"], dropout_keep=keep,
                                   dropout=c["dropout"], sink=sink)
    dout = paddle.randn(out.shape)
    grads = paddle.grad([out], leaves, [dout])
    ref_grads = paddle.grad([ref], leaves, [dout])

    problems = []
    if not bool(paddle.isfinite(out).all()):
        problems.append("non-finite out")
    if rel_err(out, ref) > FWD_TOL:
        problems.append(f"out {rel_err(out, ref):.2e}")
    finite = paddle.isfinite(ref_lse)
    if not bool((paddle.isfinite(lse) == finite).all()):
        problems.append("lse -inf pattern")
    elif bool(finite.any()):  # float32 lse: relative to its size (long rows, scale ~1: |lse| ~ 30)
        err = ((lse - ref_lse).abs() / ref_lse.abs().clip(min=1.0)).masked_select(finite).max()
        if float(err) > LSE_TOL:
            problems.append(f"lse {float(err):.2e}")
    for name, g, rg in zip(("dq", "dk", "dv", "dsink"), grads, ref_grads):
        if not bool(paddle.isfinite(g).all()) or rel_err(g, rg, floor=1.0) > GRAD_TOL:
            problems.append(f"{name} {rel_err(g, rg, floor=1.0):.2e}")
    return problems


def test_random_problems_match_float64_reference():
    seed = int(os.environ.get("PFM_PROPERTY_SEED", random.SystemRandom().randrange(2**32)))
    rng = np.random.default_rng(seed)
    failures = []
    for n in range(CASES):
        c = draw_case(rng)
        problems = run_case(c, rng)
        if problems:
            failures.append(f"case {n}: {problems} {c}")
    assert not failures, (f"PFM_PROPERTY_SEED={seed}: {len(failures)} of {CASES} cases failed:\n"
                          + "\n".join(failures[:10]))
