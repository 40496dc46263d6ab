"""Property test: on random shapes, layouts and valid masks, the op equals the
dense reference (fwd, lse, dq, dk, dv)."""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attention_cases import LAYOUTS, assert_close, random_qkv, random_startend, run_both


@st.composite
def problems(draw):
    causal, ncols = draw(st.sampled_from(LAYOUTS))
    heads_k = draw(st.sampled_from([1, 2]))
    heads = heads_k * draw(st.sampled_from([1, 2]))
    return dict(
        causal=causal, ncols=ncols, heads=heads, heads_k=heads_k,
        mask_heads=draw(st.sampled_from(sorted({1, heads_k, heads}))),
        batch=draw(st.integers(1, 2)), sq=draw(st.integers(1, 150)), sk=draw(st.integers(1, 150)),
        dim=draw(st.sampled_from([4, 16, 24, 64])), seed=draw(st.integers(0, 2**31 - 1)),
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_random_problems_match_reference(p):
    rng = np.random.default_rng(p["seed"])
    q, k, v = random_qkv(p["batch"], p["sq"], p["sk"], p["heads"], p["heads_k"], p["dim"],
                         seed=p["seed"] % 1000)
    startend = random_startend(rng, p["batch"], p["mask_heads"], p["sq"], p["sk"], p["causal"],
                               p["ncols"])
    assert_close(*run_both(q, k, v, startend, p["causal"], seed=p["seed"] % 1000), 1e-5, 1e-4,
                 str(p))
