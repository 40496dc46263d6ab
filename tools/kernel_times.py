"""Where a forward+backward's GPU time goes, kernel by kernel (torch.profiler),
for the cases whose time does not shrink as expected:

    python tools/kernel_times.py [--seqlen 8192] [--fractions 1 0.1 0] [--mla]

block_mask: the full mask with random 128 x 128 blocks kept with probability
f (benchmarks/features_gpu.py's case); --mla: q/k head dim 192 with v 128
(zero-padded to 192 by the door). B*S = 128K tokens, H = 32 (MLA: 16),
bf16. Prints each kernel's milliseconds per call (gpu_common.kernel_times_us,
the benchmarks' profiler helper, summed by short kernel name).
"""
import argparse
import collections
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
from gpu_common import kernel_times_us, mla_inputs, random_block_mask  # noqa: E402

from paddle_flashmask.torch import flashmask_attention  # noqa: E402


def short(name):
    for cut in ("<", "("):
        name = name.split(cut)[0]
    return name.split("::")[-1][:48]


def show(label, call, reps):
    ms = collections.Counter()
    for name, us in kernel_times_us(call, reps).items():
        ms[short(name)] += us / 1e3
    print(f"== {label}: {sum(ms.values()):.2f} ms of kernels per call")
    for name, t in ms.most_common():
        if t >= 0.005:
            print(f"   {t:8.3f} ms  {name}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seqlen", type=int, default=8192)
    ap.add_argument("--tokens", type=int, default=131072)
    ap.add_argument("--fractions", type=float, nargs="*", default=[1.0, 0.1, 0.0])
    ap.add_argument("--mla", action="store_true")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    s, dev = args.seqlen, "cuda"
    batch = args.tokens // s
    gen = torch.Generator(device=dev).manual_seed(0)
    h, d = 32, 128
    q, k, v = (torch.randn(batch, s, h, d, device=dev, dtype=torch.bfloat16, generator=gen).requires_grad_()
               for _ in range(3))
    dout = torch.randn(batch, s, h, d, device=dev, dtype=torch.bfloat16, generator=gen)
    for f in args.fractions:
        blocks = random_block_mask(batch, s, f, gen)

        def call(blocks=blocks):
            out = flashmask_attention(q, k, v, None, causal=False, block_mask=blocks)
            torch.autograd.grad(out, (q, k, v), dout)

        show(f"block_mask full S={s} f={f:g} (kept {blocks.float().mean().item():.3f})", call, args.reps)
    del q, k, v, dout
    if args.mla:
        h = 16
        q, k, v, do = mla_inputs(batch, s, h, gen)

        def mla():
            torch.autograd.grad(flashmask_attention(q, k, v, None, causal=True), (q, k, v), do)

        show(f"MLA 192/128 causal S={s} H={h}", mla, args.reps)


if __name__ == "__main__":
    main()
