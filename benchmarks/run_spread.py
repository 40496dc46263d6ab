"""Why single benchmark runs of the same build differ: each forward timed 40 times in a row (one
CUDA-event timing per call, synchronized), with the SM clock read from NVML after every call.
On the H100 here the clock follows the power limit, so it moves between runs and within one.

    python benchmarks/run_spread.py [--cases 8192:causal_blockwise 8192:causal ...] [--calls 40]

GPU only (the torch door); B*S = 128K tokens, H = 32, D = 128, bf16, masks of paper_masks (seed 0).
Prints per case the median / min / max time, the clock range, and every time and clock.
"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

DEFAULT_CASES = ["8192:causal_blockwise", "8192:document", "8192:causal", "8192:prefix_lm_causal",
                 "32768:global_sliding_window"]


def sm_clock_reader():
    """() -> current SM clock in MHz, or 0 where NVML is missing."""
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        return lambda: pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM)
    except Exception as err:  # noqa: BLE001 - any NVML failure only loses the clock column
        print(f"no NVML clock ({err})")
        return lambda: 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", nargs="+", default=DEFAULT_CASES, help="SEQLEN:MASK")
    ap.add_argument("--calls", type=int, default=40)
    args = ap.parse_args()

    import torch

    from gpu_common import cuda_times_ms, paper_case
    from paddle_flashmask.torch import flashmask_attention

    clock = sm_clock_reader()
    for case in args.cases:
        s, name = case.split(":")
        s = int(s)
        b, h, d = 128 * 1024 // s, 32, 128
        spec, idx, _ = paper_case(name, b, s, h)
        q, k, v = (torch.randn(b, s, h, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))

        clocks = []
        times = cuda_times_ms(lambda: flashmask_attention(q, k, v, idx, causal=spec.causal), 3, args.calls,
                              after=lambda: clocks.append(clock()))
        print(f"{name} S={s}: median {statistics.median(times):.2f} min {min(times):.2f} "
              f"max {max(times):.2f} ms; clocks {min(clocks)}-{max(clocks)} MHz")
        print("  " + " ".join(f"{t:.2f}" for t in times))
        print("  " + " ".join(str(c) for c in clocks))
        del q, k, v
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
