"""Small forward + backward calls for compute-sanitizer (memcheck, racecheck):

    compute-sanitizer --tool memcheck python tests/gpu/sanitize_cases.py
    compute-sanitizer --tool racecheck python tests/gpu/sanitize_cases.py --quick
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from flashmask_ref import random_startend  # noqa: E402
from paddle_flashmask.torch import flashmask_attention  # noqa: E402


def case(sq, sk, h, hk, d, dtype, causal, ncols, dropout=0.0, deterministic=False, seed=0,
         dv=None, sink=False, sm80=False):
    """sink: a learnable sink; dv: value head dim; sm80: the sm80 kernels on Hopper too."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(1, sq, h, d, generator=gen).cuda().to(dtype).requires_grad_()
    k = torch.randn(1, sk, hk, d, generator=gen).cuda().to(dtype).requires_grad_()
    v = torch.randn(1, sk, hk, dv or d, generator=gen).cuda().to(dtype).requires_grad_()
    idx = random_startend(gen, 1, 1, sq, sk, causal, ncols, kind="doc")
    idx = idx.cuda() if idx is not None else None
    extras = {}
    if sink:
        extras["learnable_sink"] = torch.linspace(-1, 2, h, device="cuda").requires_grad_()
    if sm80:
        os.environ["FLASHMASK_DISABLE_SM90"] = "1"
    try:
        out = flashmask_attention(q, k, v, idx, causal=causal, dropout=dropout,
                                  deterministic=deterministic, **extras)
        out.backward(torch.randn_like(out))
        torch.cuda.synchronize()
    finally:
        os.environ.pop("FLASHMASK_DISABLE_SM90", None)
    assert torch.isfinite(q.grad.float()).all() and torch.isfinite(k.grad.float()).all()


def main():
    quick = "--quick" in sys.argv
    cases = [
        dict(sq=130, sk=77, h=2, hk=1, d=64, dtype=torch.bfloat16, causal=True, ncols=1),
        dict(sq=70, sk=131, h=2, hk=2, d=128, dtype=torch.float16, causal=False, ncols=4, deterministic=True),
    ]
    if not quick:
        cases += [
            dict(sq=129, sk=129, h=2, hk=1, d=96, dtype=torch.bfloat16, causal=False, ncols=2, dropout=0.2),
            dict(sq=65, sk=200, h=1, hk=1, d=256, dtype=torch.float16, causal=True, ncols=2),
            dict(sq=100, sk=100, h=2, hk=2, d=192, dtype=torch.bfloat16, causal=True, ncols=0, deterministic=True),
        ]
    # sinks and Dv != D on both kernel families
    for sm80 in (False, True):
        cases += [
            dict(sq=300, sk=270, h=4, hk=2, d=128, dtype=torch.bfloat16, causal=True, ncols=2, sink=True,
                 sm80=sm80),
            dict(sq=260, sk=300, h=2, hk=1, d=64, dtype=torch.float16, causal=False, ncols=4, sink=True,
                 deterministic=True, sm80=sm80),
        ]
        if not quick:
            cases.append(dict(sq=140, sk=140, h=2, hk=2, d=192, dv=128, dtype=torch.bfloat16, causal=True,
                              ncols=1, sink=True, sm80=sm80))
    for i, c in enumerate(cases):
        case(seed=i, **c)
        print("ok", c, flush=True)


if __name__ == "__main__":
    main()
