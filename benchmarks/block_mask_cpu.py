"""CPU timing note: with Paddle's block_mask keeping a fraction f of the 128 x 128
blocks, the op takes about f of the full-mask time (masked blocks are skipped
in the tile walk, forward and backward).

    python benchmarks/block_mask_cpu.py [--seqlen 4096] [--fractions 1 0.5 0.25 0.125]

Each fraction keeps a random f of the blocks (seeded, the same count in every
head); the mask underneath is a no-op startend_row_indices, as Paddle requires
one. Writes the table to its section of RESULTS.md.
"""
import argparse
import datetime
import os
import sys
import time

import numpy as np
import paddle

import paddle_flashmask as pfm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results import machine, update_section  # noqa: E402


def block_mask(batch, heads, blocks, fraction, seed=0):
    """Exactly round(fraction * blocks^2) kept blocks per head, at random places."""
    rng = np.random.default_rng(seed)
    keep = round(fraction * blocks * blocks)
    out = np.zeros([batch, heads, blocks * blocks], np.int32)
    for b in range(batch):
        for h in range(heads):
            out[b, h, rng.choice(blocks * blocks, keep, replace=False)] = 1
    return paddle.to_tensor(out.reshape(batch, heads, blocks, blocks))


def cpu_ms(fn):
    """CPU time of the process (all threads): the work done, which load from other
    jobs on a shared machine disturbs far less than wall time."""
    start = time.process_time()
    fn()
    return (time.process_time() - start) * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seqlen", type=int, default=4096)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--head_dim", type=int, default=64)
    ap.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.5, 0.25, 0.125])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    s, blocks = args.seqlen, -(-args.seqlen // 128)
    paddle.seed(0)
    q, k, v = (paddle.randn([1, s, args.heads, args.head_dim]) for _ in range(3))
    for t in (q, k, v):
        t.stop_gradient = False
    dout = paddle.randn(q.shape)
    no_band = paddle.to_tensor(np.tile(np.array([s, 0], np.int32), [1, 1, s, 1]))
    load_before = os.getloadavg()[0]
    # Rounds interleave the fractions and each keeps its best time, so drift in
    # the machine's load skews every fraction alike.
    cases = [(f, block_mask(1, 1, blocks, f)) for f in args.fractions]
    best = {f: [float("inf"), float("inf")] for f in args.fractions}
    for _ in range(args.repeat + 1):  # the first round also warms up
        for f, bm in cases:
            def forward(bm=bm):
                return pfm.flashmask_attention(q, k, v, no_band, block_mask=bm)

            with paddle.no_grad():
                best[f][0] = min(best[f][0], cpu_ms(forward))
            best[f][1] = min(best[f][1], cpu_ms(lambda: paddle.grad([forward()], [q, k, v], [dout])))
    rows = [(f, *best[f]) for f in args.fractions]
    for f, fwd, total in rows:
        print(f"f={f:5.3f}  fwd {fwd:8.1f} ms  fwd+bwd {total:8.1f} ms", flush=True)

    full_fwd, full_total = rows[0][1], rows[0][2]
    cmd = "python benchmarks/block_mask_cpu.py " + " ".join(sys.argv[1:])
    lines = [
        f"## CPU: block_mask keeping a fraction f of the blocks ({datetime.date.today()})",
        "",
        f"Machine: {machine()}; "
        f"B=1, S={s}, H={args.heads}, D={args.head_dim}, fp32, non-causal; process CPU time "
        f"(all threads), best of {args.repeat} interleaved rounds; load average "
        f"{load_before:.1f} before / {os.getloadavg()[0]:.1f} after. Times relative to "
        f"f = {rows[0][0]:g}. Command: `{cmd.strip()}`",
        "",
        "| f | fwd CPU ms | fwd / full | fwd+bwd CPU ms | fwd+bwd / full |",
        "|---|---|---|---|---|",
    ]
    for f, fwd, total in rows:
        lines.append(f"| {f:g} | {fwd:.1f} | {fwd / full_fwd:.3f} | {total:.1f} | "
                     f"{total / full_total:.3f} |")
    update_section("block_mask_cpu", "\n".join(lines))


if __name__ == "__main__":
    main()
