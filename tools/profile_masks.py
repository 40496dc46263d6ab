"""One forward per paper mask inside a cudaProfilerStart/Stop window, for ncu:

    ncu --profile-from-start off -k regex:fwd_kernel_sm90 --section SpeedOfLight ... \
        python tools/profile_masks.py --masks causal sliding_window --seqlen 8192

--kernel-times instead prints every kernel's device time per step (torch
profiler), to see where a step's time goes outside the attention kernels.
--clocks SECONDS instead runs each implementation's step back to back for that
long, twice in alternation, while nvidia-smi samples the SM clock and board
power, and prints per implementation the mean clock, power and step time: ncu
locks the clock, so a kernel that wins per cycle can still lose to one that
keeps a higher clock under the power limit.
--fmv3 BUILD_DIR also runs the official V3 (../shared/anchors/fmv3) on the same
inputs in the window, for a side-by-side profile of both kernels (#29):

    ncu --profile-from-start off --kernel-name-base demangled \
        -k regex:"bwd_kernel_sm90|FlashAttnBwdSm90" ... \
        python tools/profile_masks.py --backward --fmv3 .anchors/fmv3/build

B * S = 128K tokens, H = 32, D = 128, bf16 (the mask suite's shapes)."""
import argparse
import os
import subprocess
import sys
import threading
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
from gpu_common import cuda_time_ms, fmv3_indices, kernel_times_us, load_fmv3  # noqa: E402
from paddle_flashmask.paper_masks import PAPER_MASKS, make_paper_mask  # noqa: E402
from paddle_flashmask.torch import flashmask_attention  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--masks", nargs="+", default=["causal"], choices=PAPER_MASKS)
    ap.add_argument("--seqlen", type=int, default=8192)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--backward", action="store_true", help="profile forward + backward")
    ap.add_argument("--kernel-times", action="store_true", help="print per-kernel device times (no ncu)")
    ap.add_argument("--clocks", type=float, metavar="SECONDS",
                    help="clock and power of each implementation's step run back to back (no ncu)")
    ap.add_argument("--fmv3", help="the V3 kit's build dir: profile V3 on the same inputs too")
    args = ap.parse_args()
    v3 = load_fmv3(args.fmv3) if args.fmv3 else None
    s, h, d = args.seqlen, 32, args.head_dim
    b = 128 * 1024 // s
    for name in args.masks:
        spec = make_paper_mask(name, b, s, seed=0, num_heads=h)
        idx = None if name in ("full", "causal") else torch.from_numpy(spec.startend_row_indices).cuda()
        q, k, v = (torch.randn(b, s, h, d, device="cuda", dtype=torch.bfloat16, requires_grad=args.backward)
                   for _ in range(3))

        idx_v3 = fmv3_indices(spec, idx) if v3 is not None else None

        def step(attn=lambda: flashmask_attention(q, k, v, idx, causal=spec.causal)):
            out = attn()
            if args.backward:
                out.backward(torch.ones_like(out))

        steps = [step]
        if v3 is not None:
            steps.append(lambda: step(lambda: v3(q, k, v, idx_v3, causal=spec.causal)))
        for fn in steps:
            fn(), fn()
        torch.cuda.synchronize()
        if args.clocks:
            clocks_and_power(name, dict(zip(("ours", "fmv3"), steps)), args.clocks)
            continue
        if args.kernel_times:
            times = kernel_times_us(step)
            print(f"{name}: step {cuda_time_ms(step, 1, 3):.2f} ms (CUDA events), kernels:")
            for kname, t in sorted(times.items(), key=lambda kv: -kv[1]):
                print(f"  {t / 1000:9.3f} ms  {kname[:110]}")
            continue
        torch.cuda.cudart().cudaProfilerStart()
        for fn in steps:
            fn()
        torch.cuda.synchronize()
        torch.cuda.cudart().cudaProfilerStop()
        print("profiled", name, flush=True)


def clocks_and_power(mask, steps, seconds):
    """Each step back to back for `seconds`, two rounds in alternation, with
    nvidia-smi sampling every 50 ms; per implementation the mean SM clock
    (MHz), board power (W) and step time (ms) over the samples inside its
    phases (the first 20 % of a phase skipped: the clock settles)."""
    smi = subprocess.Popen(["nvidia-smi", "--query-gpu=clocks.sm,power.draw", "--format=csv,noheader,nounits",
                            "-lms", "50"], stdout=subprocess.PIPE, text=True)
    samples, phases = [], []

    def read_samples():  # (time, MHz, W) lines as they arrive, on a thread: the pipe must not fill
        for line in smi.stdout:
            try:
                mhz, watts = (float(x) for x in line.split(","))
            except ValueError:
                continue
            samples.append((time.monotonic(), mhz, watts))

    reader = threading.Thread(target=read_samples, daemon=True)
    reader.start()
    time.sleep(0.5)
    for _ in range(2):
        for impl, fn in steps.items():
            t0, n = time.monotonic(), 0
            while time.monotonic() - t0 < seconds:
                fn()
                n += 1
                if n % 4 == 0:
                    torch.cuda.synchronize()
            torch.cuda.synchronize()
            t1 = time.monotonic()
            phases.append((impl, t0 + 0.2 * (t1 - t0), t1, (t1 - t0) * 1000 / n))
    smi.terminate()
    reader.join(timeout=2)
    for impl in steps:
        mine = [p for p in phases if p[0] == impl]
        inside = [s for s in samples if any(a <= s[0] <= b for _, a, b, _ in mine)]
        if not inside:
            print(f"{mask} {impl}: no nvidia-smi samples")
            continue
        mhz = sum(s[1] for s in inside) / len(inside)
        watts = sum(s[2] for s in inside) / len(inside)
        ms = sum(p[3] for p in mine) / len(mine)
        print(f"{mask} {impl}: SM clock {mhz:.0f} MHz, power {watts:.0f} W, step {ms:.2f} ms "
              f"({len(inside)} samples)", flush=True)


if __name__ == "__main__":
    main()
