"""Forward-only check of the sm90 path through the torch binding, once the
dispatch hook (docs/design/sm90_forward.md) is in dispatch/dispatch.cu: for each case, out/lse of
flashmask_attention against the dense fp32 reference of tests/gpu, with the
error budget of FlashAttention's tests (at most 2x the error of the same math
done in the inputs' dtype, + a small absolute slack), then sm90 vs the sm80
path (FLASHMASK_DISABLE_SM90=1) and a timing of both.

    PYTHONPATH=$PWD python custom_ops/core/cuda/sm90/test/torch_fwd_check.py
"""
import os
import sys
import time

import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 5))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "gpu"))
from flashmask_ref import attention_ref, dense_allowed, random_startend  # noqa: E402

from paddle_flashmask.torch import flashmask_attention  # noqa: E402

CASES = [  # b, sq, sk, h, hk, d, causal, ncols, mask_heads, kind, dtype
    (2, 300, 300, 2, 2, 128, True, 0, 1, "random", torch.bfloat16),
    (1, 257, 513, 4, 2, 128, True, 0, 1, "random", torch.bfloat16),
    (1, 513, 257, 2, 1, 128, True, 1, 1, "random", torch.bfloat16),
    (2, 384, 384, 4, 2, 128, True, 2, 4, "doc", torch.bfloat16),
    (1, 500, 500, 4, 2, 128, False, 2, 2, "doc", torch.bfloat16),
    (1, 448, 448, 2, 2, 128, False, 4, 2, "random", torch.bfloat16),
    (1, 384, 384, 2, 2, 128, True, 1, 1, "random", torch.float16),
    (1, 333, 333, 2, 2, 64, True, 2, 1, "doc", torch.bfloat16),
    (1, 300, 300, 2, 2, 256, False, 4, 1, "random", torch.float16),
]


def run(q, k, v, idx, causal, sm80=False):
    if sm80:
        os.environ["FLASHMASK_DISABLE_SM90"] = "1"
    try:
        return flashmask_attention(q, k, v, idx, causal=causal, return_softmax_lse=True, training=False)
    finally:
        os.environ.pop("FLASHMASK_DISABLE_SM90", None)


def main():
    gen = torch.Generator().manual_seed(0)
    fails = 0
    for b, sq, sk, h, hk, d, causal, ncols, mh, kind, dt in CASES:
        q = torch.randn(b, sq, h, d, generator=gen).to("cuda", dt)
        k = torch.randn(b, sk, hk, d, generator=gen).to("cuda", dt)
        v = torch.randn(b, sk, hk, d, generator=gen).to("cuda", dt)
        idx = random_startend(gen, b, mh, sq, sk, causal, ncols, kind)
        idx = idx.cuda() if idx is not None else None
        allowed = dense_allowed(idx, causal, sq, sk, "cuda")
        scale = d ** -0.5
        ref, ref_lse = attention_ref(q, k, v, allowed, scale)
        base, _ = attention_ref(q, k, v, allowed, scale, upcast=False)
        out, lse = run(q, k, v, idx, causal)
        out80, lse80 = run(q, k, v, idx, causal, sm80=True)
        err = (out.float() - ref).abs().max().item()
        base_err = (base.float() - ref).abs().max().item()
        fin = torch.isfinite(ref_lse)
        lse_err = (lse - ref_lse)[fin].abs().max().item() if fin.any() else 0.0
        lse_inf_ok = bool(torch.isneginf(lse[~fin]).all())
        vs80 = (out.float() - out80.float()).abs().max().item()
        ok = err <= 2 * base_err + 1e-3 and lse_err <= 1e-3 and lse_inf_ok and torch.isfinite(out).all()
        fails += not ok
        print(f"{'PASS' if ok else 'FAIL'} b{b} sq{sq} sk{sk} h{h}/{hk} d{d} causal={causal} ncols={ncols} "
              f"mh={mh} {kind} {dt}: err {err:.2e} (base {base_err:.2e}) lse {lse_err:.2e} "
              f"masked-rows-ok {lse_inf_ok} |sm90-sm80| {vs80:.2e}", flush=True)
    # timing, sm90 vs sm80
    for causal, ncols, kind in [(True, 0, "random"), (False, 0, "random"), (True, 2, "doc"), (False, 4, "random")]:
        b, s, h, d = 4, 8192, 16, 128
        q, k, v = (torch.randn(b, s, h, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        idx = random_startend(gen, b, 1, s, s, causal, ncols, kind)
        idx = idx.cuda() if idx is not None else None
        for sm80 in (False, True):
            for _ in range(3):
                run(q, k, v, idx, causal, sm80)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(10):
                run(q, k, v, idx, causal, sm80)
            torch.cuda.synchronize()
            ms = (time.perf_counter() - t0) * 100
            flops = 4 * b * h * d * s * s * (0.5 if causal else 1.0)
            print(f"BENCH {'sm80' if sm80 else 'sm90'} causal={causal} ncols={ncols} {kind}: {ms:.3f} ms, "
                  f"{flops / ms / 1e9:.0f} TFLOP/s (dense-equivalent)", flush=True)
    print(f"{fails} failures")
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
