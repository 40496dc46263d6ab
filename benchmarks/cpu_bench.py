"""CPU benchmark: the FlashMask op against the dense-masked reference
(matmul + mask + softmax from plain Paddle ops) on causal, causal-document and
share-question masks. Each measurement runs in a fresh process so its peak
memory is its own.

    python benchmarks/cpu_bench.py [--seqlens 1024 2048 4096 8192]

Reports forward and forward+backward time (median of --repeat) and the peak
extra resident memory of one forward+backward over the inputs' footprint.
"""
import argparse
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from results import machine, update_section

MASKS = ("causal", "causal_document", "share_question")


def build_mask(name, seqlen):
    import numpy as np

    from paddle_flashmask import masks

    if name == "causal":
        return None, True
    if name == "causal_document":  # 8 documents of random lengths
        rng = np.random.default_rng(0)
        cuts = np.sort(rng.choice(np.arange(1, seqlen), size=7, replace=False))
        lens = np.diff(np.concatenate([[0], cuts, [seqlen]])).tolist()
        spec = masks.causal_document_mask([lens])
    else:  # one question of S/4, three answers sharing the rest
        q = seqlen // 4
        a = (seqlen - q) // 3
        spec = masks.share_question_mask([[(q, [a, a, seqlen - q - 2 * a])]])
    return spec.to_paddle().startend_row_indices, spec.causal


def worker(impl, mask_name, seqlen, heads, head_dim, repeat):
    import paddle

    import paddle_flashmask as pfm
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    from reference import dense_allowed, dense_attention  # the tests' dense reference

    paddle.seed(0)
    q, k, v = (paddle.randn([1, seqlen, heads, head_dim]) for _ in range(3))
    for t in (q, k, v):
        t.stop_gradient = False
    idx, causal = build_mask(mask_name, seqlen)
    dout = paddle.randn(q.shape)

    if impl == "flashmask":
        def forward():
            return pfm.flashmask_attention(q, k, v, idx, causal=causal)
    else:
        def forward():  # the dense mask is built inside: it is part of that method's cost
            return dense_attention(q, k, v, dense_allowed(idx, causal, seqlen, seqlen))[0]

    def fwd_bwd():
        return paddle.grad([forward()], [q, k, v], [dout])

    base_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fwd_bwd()
    peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_kib) / 1024

    def median_time(fn):
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    with paddle.no_grad():
        t_fwd = median_time(forward)
    t_total = median_time(fwd_bwd)
    print(json.dumps(dict(impl=impl, mask=mask_name, seqlen=seqlen, fwd_ms=t_fwd * 1e3,
                          fwd_bwd_ms=t_total * 1e3, peak_extra_mib=peak_mib)))


def run_one(args, impl, mask_name, seqlen):
    cmd = [sys.executable, __file__, "--worker", impl, mask_name, str(seqlen),
           "--heads", str(args.heads), "--head_dim", str(args.head_dim), "--repeat", str(args.repeat)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    lines = [l for l in res.stdout.splitlines() if l.startswith("{")]
    if res.returncode != 0 or not lines:
        raise RuntimeError(f"{impl} {mask_name} S={seqlen} failed:\n{res.stderr[-2000:]}")
    return json.loads(lines[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seqlens", type=int, nargs="+", default=[1024, 2048, 4096, 8192])
    ap.add_argument("--masks", nargs="+", default=list(MASKS), choices=MASKS)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--head_dim", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", help="also write the markdown here (it always goes to RESULTS.md)")
    ap.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        impl, mask_name, seqlen = args.worker
        return worker(impl, mask_name, int(seqlen), args.heads, args.head_dim, args.repeat)

    rows, load_before = [], os.getloadavg()[0]
    for mask_name in args.masks:
        for seqlen in args.seqlens:
            fm = run_one(args, "flashmask", mask_name, seqlen)
            dn = run_one(args, "dense", mask_name, seqlen)
            rows.append((mask_name, seqlen, fm, dn))
            print(f"{mask_name:16s} S={seqlen:5d}  fwd {fm['fwd_ms']:9.1f} ms vs {dn['fwd_ms']:9.1f} ms  "
                  f"fwd+bwd {fm['fwd_bwd_ms']:9.1f} vs {dn['fwd_bwd_ms']:9.1f} ms  "
                  f"mem {fm['peak_extra_mib']:7.1f} vs {dn['peak_extra_mib']:8.1f} MiB", flush=True)

    cmd = "python benchmarks/cpu_bench.py " + " ".join(sys.argv[1:])
    lines = [
        f"## CPU: FlashMask op vs dense-masked reference ({datetime.date.today()})",
        "",
        f"Machine: {machine()}; "
        f"B=1, H={args.heads}, D={args.head_dim}, fp32; median of {args.repeat}; load average "
        f"{load_before:.1f} before / {os.getloadavg()[0]:.1f} after (other jobs skew times, not memory). "
        f"Command: `{cmd.strip()}`",
        "",
        "| mask | S | fwd ms (ours / dense) | fwd speedup | fwd+bwd ms (ours / dense) | fwd+bwd speedup "
        "| peak extra MiB (ours / dense) |",
        "|---|---|---|---|---|---|---|",
    ]
    for mask_name, seqlen, fm, dn in rows:
        lines.append(
            f"| {mask_name} | {seqlen} | {fm['fwd_ms']:.1f} / {dn['fwd_ms']:.1f} | "
            f"{dn['fwd_ms'] / fm['fwd_ms']:.1f}x | {fm['fwd_bwd_ms']:.1f} / {dn['fwd_bwd_ms']:.1f} | "
            f"{dn['fwd_bwd_ms'] / fm['fwd_bwd_ms']:.1f}x | {fm['peak_extra_mib']:.1f} / "
            f"{dn['peak_extra_mib']:.1f} |")
    table = "\n".join(lines) + "\n"
    print(table)
    update_section("cpu_op", table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table)


if __name__ == "__main__":
    main()
