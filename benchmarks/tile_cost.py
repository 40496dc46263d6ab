"""Per-tile cost of the forward: time vs causal sliding-window size.

A window of w keys gives each 128-row work tile about (w + 127) / 128 key
blocks, so timing w = 128 .. S and dividing by the tiles each SM runs
separates a fixed cost per tile (tile start, first block, last P V, epilogue)
from the cost per key block:  time per tile = a + b * blocks per tile.
The fit uses w >= 1024 (full key blocks dominate); the short windows then
show how much of their tile is not block work (docs/design/sm90_forward.md, "Per-tile cost").

    python benchmarks/tile_cost.py [--seqlen 8192] [--head-dim 128] [--section tile_cost]

Prints a markdown table; with --section it also replaces that section of
benchmarks/RESULTS.md.

GPU only (the torch door); B*S = 128K tokens, H = 32, bf16.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

BLOCK_M = BLOCK_N = 128  # the sm90 forward's work tile and key block (d64 / d128)


def blocks_per_tile(seqlen, window):
    """Mean number of key blocks a causal window of `window` keys leaves per query tile."""
    m = np.arange((seqlen + BLOCK_M - 1) // BLOCK_M)
    first_row, last_row = m * BLOCK_M, np.minimum(m * BLOCK_M + BLOCK_M, seqlen) - 1
    first_key = np.maximum(0, first_row - window + 1)
    return float(np.mean(last_row // BLOCK_N - first_key // BLOCK_N + 1))


def fit_tile_cost(blocks, us_per_tile):
    """Least squares of us_per_tile = a + b * blocks -> (a, b)."""
    a_mat = np.stack([np.ones(len(blocks)), np.asarray(blocks, dtype=float)], axis=1)
    (a, b), *_ = np.linalg.lstsq(a_mat, np.asarray(us_per_tile, dtype=float), rcond=None)
    return float(a), float(b)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seqlen", type=int, default=8192)
    ap.add_argument("--head-dim", type=int, default=128, choices=(64, 128),
                    help="d256 uses 64-key blocks, which blocks_per_tile does not model")
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--section", help="write the table into this section of benchmarks/RESULTS.md")
    args = ap.parse_args()

    import torch

    from gpu_common import cuda_time_ms
    from paddle_flashmask.torch import flashmask_attention, window_startend_row_indices

    s, d, h = args.seqlen, args.head_dim, args.heads
    b = max(1, 128 * 1024 // s)
    torch.manual_seed(0)
    q, k, v = (torch.randn(b, s, h, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    tiles_per_sm = b * h * ((s + BLOCK_M - 1) // BLOCK_M) / sms

    windows = [w for w in (128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768) if w <= s]
    rows = []
    for w in windows:
        lts = window_startend_row_indices(b, s, (w - 1, 0), causal=True, device="cuda")  # min(j + w, S)
        ms = cuda_time_ms(lambda: flashmask_attention(q, k, v, lts, causal=True), 3, 10)
        rows.append((w, blocks_per_tile(s, w), ms, ms * 1000.0 / tiles_per_sm))

    long_rows = [r for r in rows if r[0] >= 1024]
    a, b_cost = fit_tile_cost([r[1] for r in long_rows], [r[3] for r in long_rows])
    lines = [
        f"## Per-tile cost of the forward (sliding-window sweep), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"- device: {torch.cuda.get_device_name(0)}; torch {torch.__version__}",
        f"- command: `python benchmarks/tile_cost.py --seqlen {s} --head-dim {d} --heads {h}`",
        f"- B = {b}, bf16, causal sliding windows (startend_row_indices = min(j + w, S)); "
        f"us/tile = time x {sms} SMs / tiles; {tiles_per_sm:.1f} tiles per SM",
        f"- fit over w >= 1024: **{a:.2f} us per tile + {b_cost:.2f} us per key block**",
        "",
        "| window | blocks/tile | ms | us/tile | not block work (us) |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {w} | {nb:.2f} | {ms:.3f} | {us:.2f} | {us - b_cost * nb:.2f} |" for w, nb, ms, us in rows]
    markdown = "\n".join(lines)
    print(markdown)
    if args.section:
        from results import update_section

        update_section(args.section, markdown)


if __name__ == "__main__":
    main()
