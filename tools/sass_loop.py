"""Static SASS of a kernel's innermost wgmma loop, by opcode class, for
comparing two builds (or ours against the official V3) without a GPU:

    python tools/sass_loop.py OBJ_OR_CUBIN [--kernel bwd_kernel_sm90] [OTHER [--other-kernel NAME]]

OBJ_OR_CUBIN: a host object with an embedded sm_90a cubin (.device_build/core/*.o)
or a cubin (nvcc -cubin). Needs cuobjdump on PATH (the CUDA toolkit, or the
`nvidia-cuda-cuobjdump` wheel: nvidia/cu13/bin/cuobjdump). One column per
innermost loop that issues wgmma (ours: the backward consumers' per-block
body; V3: one loop per block kind); the counts are static (every path
through the loop), not instructions executed per block.
"""
import argparse
import collections
import re
import subprocess
import sys

CLASSES = (
    ("HGMMA", ("HGMMA",)),
    ("wgmma sync", ("WARPGROUP", "WARPSYNC")),
    ("MUFU", ("MUFU",)),
    ("fp math", ("FMUL", "FFMA", "FADD", "FMNMX", "FSEL", "FSETP")),
    ("convert", ("F2FP", "F2F", "I2F", "F2I")),
    ("smem", ("LDS", "STS", "LDSM", "STSM")),
    ("gmem / local", ("LDG", "STG", "LD", "ST", "LDL", "STL", "RED", "ATOM", "UBLKRED", "UBLKCP", "UTMALDG")),
    ("barrier", ("BAR", "SYNCS", "MEMBAR", "FENCE", "DEPBAR")),
    ("vector to uniform", ("R2UR",)),
    ("moves", ("MOV", "UMOV", "CS2R", "S2R", "S2UR")),
    ("branch", ("BRA", "BSSY", "BSYNC", "EXIT", "RET", "CALL")),
    ("predicate", ("PLOP3", "UPLOP3", "P2R", "R2P", "VOTE", "VOTEU")),
)


def sass(path):
    return subprocess.run(["cuobjdump", "-sass", path], check=True, capture_output=True, text=True).stdout


def kernel_instructions(text, name):
    """[(address, opcode, text)] of the first function whose name contains `name`."""
    for part in re.split(r"\n\s*Function : ", text)[1:]:
        if name in part.split("\n", 1)[0]:
            out = []
            for addr, ins in re.findall(r"/\*([0-9a-f]{4,})\*/\s+([^;]*);", part):
                words = ins.split()
                op = words[1] if words[0].startswith("@") else words[0]
                out.append((int(addr, 16), op, ins))
            return out
    sys.exit(f"no function containing {name!r}")


def wgmma_loops(ins):
    """The innermost loops that issue wgmma, in address order: backward-branch
    spans holding an HGMMA, smallest first, each keeping only HGMMAs that no
    smaller span took (ours: the one per-block body; V3: one per block kind)."""
    spans = []
    for addr, op, text in ins:
        m = re.search(r"BRA (?:`\(\.L_x_\d+\) )?0x([0-9a-f]+)", text)
        if op == "BRA" and m and int(m.group(1), 16) < addr:
            body = [i for i in ins if int(m.group(1), 16) <= i[0] <= addr]
            mma = {a for a, o, _ in body if o.startswith("HGMMA")}
            if mma:
                spans.append((len(body), body, mma))
    taken, loops = set(), []
    for _, body, mma in sorted(spans, key=lambda t: t[0]):
        if not mma & taken:
            taken |= mma
            loops.append(body)
    return sorted(loops, key=lambda body: body[0][0])


def classify(op):
    base = op.split(".")[0]
    for cls, names in CLASSES:
        if base in names:
            return cls
    return "integer / other"


def histogram(body):
    return collections.Counter(classify(op) for _, op, _ in body)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("obj")
    ap.add_argument("other", nargs="?")
    ap.add_argument("--kernel", default="bwd_kernel_sm90")
    ap.add_argument("--other-kernel", help="the second object's kernel (default: --kernel)")
    args = ap.parse_args()
    runs = [(args.obj, args.kernel)] + ([(args.other, args.other_kernel or args.kernel)] if args.other else [])
    cols = []
    for path, name in runs:
        ins = kernel_instructions(sass(path), name)
        for i, body in enumerate(wgmma_loops(ins)):
            cols.append((f"{path.split('/')[-1][:24]} loop {i + 1}", len(ins), body, histogram(body)))
    print("class".ljust(20) + "".join(f"{c[0]:>34s}" for c in cols))
    print("kernel instructions".ljust(20) + "".join(f"{c[1]:>34d}" for c in cols))
    print("loop instructions".ljust(20) + "".join(f"{len(c[2]):>34d}" for c in cols))
    for cls in [c for c, _ in CLASSES] + ["integer / other"]:
        print(f"  {cls}".ljust(20) + "".join(f"{c[3][cls]:>34d}" for c in cols))


if __name__ == "__main__":
    main()
