"""Stall breakdown per kernel, and the instructions with the most samples,
from an Nsight Compute source-page export (`run_device.sh` step ncusrc):

    ncu --import prof.ncu-rep --page source --print-source sass --csv > src.csv
    python tools/ncu_stalls.py src.csv [--kernel dkdv2] [--top 30] [--by stall_long_sb]

Runs anywhere (no GPU): this is how the sm80 forward's per-copy address
arithmetic and its ldmatrix -> mma waits were found (docs/design/sm80.md).
"""
import argparse
import csv

SAMPLES = "Warp Stall Sampling (All Samples)"


def number(text):
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return 0.0


def read_kernels(path):
    """[(kernel name, [row dict per SASS instruction])] from the CSV export."""
    kernels, header = [], None
    with open(path, newline="") as f:
        for row in csv.reader(f):
            if not row:
                continue
            if row[0] == "Kernel Name":
                kernels.append((row[1], []))
                header = None
            elif row[0] == "Address":
                header = row
            elif header and kernels:
                kernels[-1][1].append(dict(zip(header, row)))
    return kernels


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--kernel", default="", help="substring of the kernel name")
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--by", default=SAMPLES, help="column to rank instructions by, e.g. stall_long_sb")
    args = ap.parse_args()
    for name, rows in read_kernels(args.csv):
        if args.kernel not in name or not rows:
            continue
        reasons = [c for c in rows[0] if c.startswith("stall_") and "Not Issued" not in c]
        total = sum(number(r[SAMPLES]) for r in rows) or 1.0
        share = {c: sum(number(r[c]) for r in rows) / total for c in reasons}
        print(f"== {name[:120]}\n   samples {total:.0f}, {len(rows)} SASS instructions")
        print("   " + ", ".join(f"{c[6:]} {share[c]:.1%}" for c in sorted(reasons, key=lambda c: -share[c])[:9]))
        ranked = sorted(range(len(rows)), key=lambda i: -number(rows[i][args.by]))[: args.top]
        for i in sorted(ranked):
            r = rows[i]
            top = sorted(reasons, key=lambda c: -number(r[c]))[:3]
            print(f"   {i:5d} {number(r[args.by]):8.0f}  {r['Source'][:56]:56s} "
                  + " ".join(f"{c[6:]}:{number(r[c]):.0f}" for c in top))


if __name__ == "__main__":
    main()
