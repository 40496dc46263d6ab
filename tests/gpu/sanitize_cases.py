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


SM80 = {"FLASHMASK_DISABLE_SM90": "1"}  # the sm80 kernels on Hopper too


def case(sq, sk, h, hk, d, dtype, causal, ncols, dropout=0.0, deterministic=False, seed=0, env=None,
         dv=None, sink=False, blocks=False):
    """env: switches for this call; dv: value head dim; sink / blocks: a
    learnable sink / a random block_mask."""
    saved = {key: os.environ.get(key) for key in env or {}}
    os.environ.update(env or {})
    try:
        run(sq, sk, h, hk, d, dtype, causal, ncols, dropout, deterministic, seed, dv, sink, blocks)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key)
            else:
                os.environ[key] = value


def run(sq, sk, h, hk, d, dtype, causal, ncols, dropout, deterministic, seed, dv, sink, blocks):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(1, sq, h, d, generator=gen).cuda().to(dtype).requires_grad_()
    k = torch.randn(1, sk, hk, d, generator=gen).cuda().to(dtype).requires_grad_()
    v = torch.randn(1, sk, hk, dv or d, generator=gen).cuda().to(dtype).requires_grad_()
    idx = random_startend(gen, 1, 1, sq, sk, causal, ncols, kind="doc")
    idx = idx.cuda() if idx is not None else None
    extras = {}
    if sink:
        extras["learnable_sink"] = torch.linspace(-1, 2, h, device="cuda").requires_grad_()
    if blocks:
        nb = ((sq + 127) // 128, (sk + 127) // 128)
        extras["block_mask"] = (torch.rand(1, 1, *nb, generator=gen) < 0.6).to(torch.int32).cuda()
    out = flashmask_attention(q, k, v, idx, causal=causal, dropout=dropout,
                              deterministic=deterministic, **extras)
    out.backward(torch.randn_like(out))
    torch.cuda.synchronize()
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
            # the sm90 d192 backward (3 dQ slices) with a block mask of more than 32 block rows
            dict(sq=4200, sk=4200, h=2, hk=1, d=192, dtype=torch.bfloat16, causal=True, ncols=1, blocks=True),
            # > 512 key and query tiles of 64: the sm80 kernels' tile lists in two chunks
            dict(sq=33000, sk=33000, h=2, hk=1, d=64, dtype=torch.bfloat16, causal=True, ncols=1,
                 deterministic=True, env={"FLASHMASK_DISABLE_SM90": "1"}),
            dict(sq=33000, sk=33000, h=2, hk=1, d=128, dtype=torch.bfloat16, causal=True, ncols=1,
                 env={"FLASHMASK_DISABLE_SM90": "1", "FLASHMASK_FORCE_LOW_SMEM_BWD": "1"}),
        ]
    # sinks, block masks and Dv != D on both kernel families
    for env in (None, SM80):
        cases += [
            dict(sq=300, sk=270, h=4, hk=2, d=128, dtype=torch.bfloat16, causal=True, ncols=2, sink=True,
                 blocks=True, env=env),
            dict(sq=200, sk=150, h=2, hk=1, d=192, dtype=torch.bfloat16, causal=False, ncols=2, blocks=True,
                 env=env),
            dict(sq=260, sk=300, h=2, hk=1, d=64, dtype=torch.float16, causal=False, ncols=4, sink=True,
                 blocks=True, deterministic=True, env=env),
        ]
        if not quick:
            cases.append(dict(sq=140, sk=140, h=2, hk=2, d=192, dv=128, dtype=torch.bfloat16, causal=True,
                              ncols=1, sink=True, env=env))
    for i, c in enumerate(cases):
        case(seed=i, **c)
        print("ok", c, flush=True)


if __name__ == "__main__":
    main()
