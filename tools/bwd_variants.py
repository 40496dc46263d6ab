"""sm80 backward variants side by side (one device call): FLASHMASK_FORCE_LOW_SMEM_BWD=1
(the 16-key warp-strip column kernel) vs the default (v2, FA2-style 2D warp
tiles) vs torch SDPA's flash backend, with the sm80 forward everywhere
(FLASHMASK_DISABLE_SM90=1).

    python tools/bwd_variants.py [--dims 128 64] [--masks causal full] [--seqlen 8192]

B * S = 128K tokens, H = 32, bf16. Prints fwd+bwd and bwd-only medians
(CUDA events; bwd-only = autograd.grad on a retained graph) and, as a quick
correctness signal, the max |grad difference| of v1 and v2 against SDPA's
grads (relative to max |SDPA grad|). The full proof is tests/gpu.
"""
import argparse
import os
import sys

os.environ["FLASHMASK_DISABLE_SM90"] = "1"  # read at every call: set before any launch

import torch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
from paddle_flashmask.torch import flashmask_attention  # noqa: E402

from gpu_common import cuda_time_ms  # noqa: E402


def set_variant(name):
    if name == "v1":
        os.environ["FLASHMASK_FORCE_LOW_SMEM_BWD"] = "1"
    else:
        os.environ.pop("FLASHMASK_FORCE_LOW_SMEM_BWD", None)


def run_case(d, mask, args):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    dev = "cuda"
    s, h = args.seqlen, args.heads
    b = args.tokens // s
    causal = mask == "causal"
    pairs = s * (s + 1) / 2 if causal else float(s) * s
    fwd_flops = 4.0 * d * h * b * pairs
    bwd_flops = 2.5 * fwd_flops
    torch.manual_seed(0)
    q, k, v, dout = (torch.randn(b, s, h, d, device=dev, dtype=torch.bfloat16) for _ in range(4))
    q.requires_grad_()
    k.requires_grad_()
    v.requires_grad_()

    rows = []
    grads = {}
    for variant in ("v1", "v2"):
        set_variant(variant)
        fwd = lambda: flashmask_attention(q, k, v, None, causal=causal)  # noqa: E731

        def fb():
            q.grad = k.grad = v.grad = None  # no grad accumulation kernels in the timing
            fwd().backward(dout)

        t_fb = cuda_time_ms(fb, args.warmup, args.reps)
        out = fwd()
        t_b = cuda_time_ms(lambda: torch.autograd.grad(out, (q, k, v), dout, retain_graph=True),
                           args.warmup, args.reps)
        grads[variant] = torch.autograd.grad(out, (q, k, v), dout)
        del out
        q.grad = k.grad = v.grad = None
        rows.append((variant, t_fb, t_b))
    set_variant("v2")

    # SDPA flash on [B, H, S, D] copies (layout change outside the timing)
    qt, kt, vt = (t.detach().transpose(1, 2).contiguous().requires_grad_() for t in (q, k, v))
    doutt = dout.transpose(1, 2).contiguous()

    def sdpa():
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return torch.nn.functional.scaled_dot_product_attention(qt, kt, vt, is_causal=causal)

    def sdpa_fb():
        qt.grad = kt.grad = vt.grad = None
        sdpa().backward(doutt)

    t_fb = cuda_time_ms(sdpa_fb, args.warmup, args.reps)
    out = sdpa()
    t_b = cuda_time_ms(lambda: torch.autograd.grad(out, (qt, kt, vt), doutt, retain_graph=True),
                       args.warmup, args.reps)
    ref = [g.transpose(1, 2) for g in torch.autograd.grad(out, (qt, kt, vt), doutt)]
    del out
    rows.append(("sdpa_flash", t_fb, t_b))

    errs = {}
    for variant in ("v1", "v2"):
        errs[variant] = [
            ((g.float() - r.float()).abs().max() / r.float().abs().max().clamp_min(1e-6)).item()
            for g, r in zip(grads[variant], ref)
        ]
    sdpa_b = rows[-1][2]
    for name, t_fb_, t_b_ in rows:
        err = errs.get(name)
        err_s = "" if err is None else " ".join(f"{e:.1e}" for e in err)
        print(f"| {d} | {mask} | {name} | {t_fb_:.2f} | {t_b_:.2f} | {bwd_flops / t_b_ / 1e9:.0f} | "
              f"{sdpa_b / t_b_:.2f} | {err_s} |", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dims", type=int, nargs="+", default=[128, 64])
    ap.add_argument("--masks", nargs="+", default=["causal", "full"])
    ap.add_argument("--seqlen", type=int, default=8192)
    ap.add_argument("--tokens", type=int, default=128 * 1024)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, "
          f"B*S = {args.tokens}, S = {args.seqlen}, H = {args.heads}, bf16, sm80 fwd")
    print("| D | mask | impl | fwd+bwd ms | bwd ms | bwd TFLOP/s | SDPA bwd / this bwd | "
          "max err dq dk dv vs SDPA (rel) |")
    print("|---|---|---|---|---|---|---|---|")
    for d in args.dims:
        for mask in args.masks:
            run_case(d, mask, args)
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
