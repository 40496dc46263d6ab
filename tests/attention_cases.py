"""Shared helpers for the CPU attention tests: random inputs, random valid
masks for every column layout, and comparison against the dense reference."""
import numpy as np
import paddle

import paddle_flashmask as pfm
from reference import dense_allowed, dense_attention

# (causal, ncols): every layout the API accepts; ncols 0 = no mask tensor.
LAYOUTS = [(True, 0), (True, 1), (True, 2), (False, 0), (False, 2), (False, 4)]


def random_qkv(batch, sq, sk, heads, heads_k, dim, dtype="float32", seed=0, dim_v=None):
    """dim_v: value head dim (default dim)."""
    paddle.seed(seed)
    q = paddle.randn([batch, sq, heads, dim]).astype(dtype)
    k = paddle.randn([batch, sk, heads_k, dim]).astype(dtype)
    v = paddle.randn([batch, sk, heads_k, dim_v or dim]).astype(dtype)
    for t in (q, k, v):
        t.stop_gradient = False
    return q, k, v


def random_startend(rng, batch, mask_heads, sq, sk, causal, ncols):
    """Random valid indices: bands [start, end) with 0 <= start <= end <= sq."""
    if ncols == 0:
        return None
    shape = (batch, mask_heads, sk)

    def band():
        a = rng.integers(0, sq + 1, size=shape)
        b = rng.integers(0, sq + 1, size=shape)
        return np.minimum(a, b), np.maximum(a, b)

    if causal and ncols == 1:
        cols = [rng.integers(0, sq + 1, size=shape)]
    elif causal or ncols == 2:  # [LTS, LTE] or [LTS, UTE]
        cols = list(band()) if causal else [rng.integers(0, sq + 1, size=shape),
                                            rng.integers(0, sq + 1, size=shape)]
    else:
        cols = [*band(), *band()]
    return paddle.to_tensor(np.stack(cols, axis=-1).astype(np.int32))


def layout_case(causal, ncols, sq, sk, heads, heads_k, dim=32, dim_v=None):
    """Seeded inputs and a random one-head mask for one (layout, lengths, heads) case."""
    rng = np.random.default_rng(hash((causal, ncols, sq, sk, heads_k)) % 2**32)
    q, k, v = random_qkv(2, sq, sk, heads, heads_k, dim, seed=sq + heads_k, dim_v=dim_v)
    return q, k, v, random_startend(rng, 2, 1, sq, sk, causal, ncols)


def rel_err(a, b, floor=1e-2):
    """max|a - b| / max|b|. The floor keeps exact zeros (e.g. the gradients of a
    one-key softmax, which are pure rounding noise) from dividing by ~0."""
    a = a.astype("float32")
    b = b.astype("float32")
    denom = max(float(b.abs().max()), floor)
    return float((a - b).abs().max()) / denom


def run_both(q, k, v, startend, causal, softmax_scale=None, seed=0, *, block_mask=None, sink=None,
             compute_dtype="float32"):
    """FlashMask and dense reference outputs, lse and grads (dq, dk, dv, and dsink with a
    sink) for one random dout; the reference computes in compute_dtype."""
    out, lse = pfm.flashmask_attention(q, k, v, startend, causal=causal, return_softmax_lse=True,
                                       softmax_scale=softmax_scale, block_mask=block_mask,
                                       learnable_sink=sink)
    allowed = dense_allowed(startend, causal, q.shape[1], k.shape[1], block_mask=block_mask)
    ref, ref_lse = dense_attention(q, k, v, allowed, softmax_scale=softmax_scale, sink=sink,
                                   compute_dtype=compute_dtype)
    paddle.seed(seed + 1)
    dout = paddle.randn(out.shape).astype(out.dtype)
    inputs = [q, k, v] + ([sink] if sink is not None else [])
    grads = paddle.grad([out], inputs, [dout])
    ref_grads = paddle.grad([ref], inputs, [dout])
    return (out, lse, grads), (ref, ref_lse.astype("float32"), ref_grads)


def assert_close(mine, ref, fwd_tol, grad_tol, what=""):
    (out, lse, grads), (ref_out, ref_lse, ref_grads) = mine, ref
    assert not bool(paddle.isnan(out.astype("float32")).any()), f"NaN in out {what}"
    assert rel_err(out, ref_out) <= fwd_tol, f"out {what}: {rel_err(out, ref_out)}"
    finite = paddle.isfinite(ref_lse)
    assert bool((paddle.isfinite(lse) == finite).all()), f"lse -inf pattern {what}"
    if bool(finite.any()):
        err = float((lse - ref_lse).abs().masked_select(finite).max())
        assert err <= 1e-4, f"lse {what}: {err}"
    for name, g, rg in zip(("dq", "dk", "dv", "dsink"), grads, ref_grads):
        assert not bool(paddle.isnan(g.astype("float32")).any()), f"NaN in {name} {what}"
        # Gradients of inputs drawn from N(0, 1) are O(1): judge them against at least 1.
        assert rel_err(g, rg, floor=1.0) <= grad_tol, f"{name} {what}: {rel_err(g, rg, 1.0)}"
