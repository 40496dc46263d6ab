"""Whether two builds' kernel objects hold the same machine code, unit by unit:
the check that a source rewritten after its A/B (a change narrowed to one
kernel family, a helper moved) still compiles to exactly what was measured.

    python tools/sass_same.py DIR_A DIR_B [--glob '*_sm90_*.o']

DIR_A, DIR_B: object folders (.device_build/core, a variant's
.device_build/ab/NAME/.device_build/core, a copy kept aside). For each object
of DIR_A matching --glob that DIR_B has too: its SASS (cuobjdump -sass,
addresses and encodings dropped) against DIR_B's, one line per unit, "same"
or the number of differing lines. Exit status 1 when any unit differs. Needs
cuobjdump on PATH (see tools/sass_loop.py).
"""
import argparse
import difflib
import glob
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sass_loop import sass  # noqa: E402


def instructions(path):
    """The object's instructions in order, without addresses or encodings."""
    return [ins.strip() for ins in re.findall(r"/\*[0-9a-f]{4,}\*/\s+([^;]*);", sass(path))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir_a")
    ap.add_argument("dir_b")
    ap.add_argument("--glob", default="*_sm90_*.o")
    args = ap.parse_args()
    differ = 0
    for a in sorted(glob.glob(os.path.join(args.dir_a, args.glob))):
        b = os.path.join(args.dir_b, os.path.basename(a))
        if not os.path.exists(b):
            print(f"{os.path.basename(a)}: not in {args.dir_b}")
            continue
        ia, ib = instructions(a), instructions(b)
        changed = sum(1 for line in difflib.unified_diff(ia, ib, lineterm="", n=0)
                      if line[:1] in "+-" and not line.startswith(("+++", "---")))
        differ += changed > 0
        print(f"{os.path.basename(a)}: {len(ia)} instructions, " + (f"{changed} lines differ" if changed else "same"))
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
