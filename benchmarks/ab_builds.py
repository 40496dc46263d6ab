"""Two builds of the torch extension timed in alternating rounds, each round
of a build in its own process: the check that a refactor (or a kernel change)
keeps the speed.

    python benchmarks/ab_builds.py run BASE.so NEW.so [--seqlen 8192] [--head-dim 128]
                                       [--rounds 3] [--masks ...] [--json PATH]
    python benchmarks/ab_builds.py report JSON --base NAME --new NAME
        (anywhere: the ab_builds section of RESULTS.md and its plot)

Each .so is a `_flashmask_torch` extension (custom_ops/torch/build.py); its
forward and backward are called directly, so the two builds may differ in their
Python layer. The kernel switches of the environment apply to both
(FLASHMASK_DISABLE_SM90=1: the sm80 kernels). A round runs both builds, BASE
first in even rounds and NEW first in odd ones (neither always follows the
other's heat), each in a child process (`_round`) that loads that build alone
and times every mask: per mask the median of `reps` CUDA-event timings of the
forward and of the backward (which reuses one forward's out and lse). Two
builds loaded into one process do not stay apart (ncu showed the second
build's calls running the first build's kernels), hence a process each. Printed: per
mask, the median over rounds of each build's forward and backward ms and NEW /
BASE. Both builds compute the same inputs; a fixed sample of 2^20 entries of
each output is compared: the forwards must agree bit for bit (same SASS
expected), the gradients to rounding (atomic dQ order).
"""
import argparse
import importlib.machinery
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from paddle_flashmask.paper_masks import PAPER_MASKS  # noqa: E402

SAMPLE = 1 << 20  # entries of each output compared across builds
OUTPUTS = ("out", "lse", "dq", "dk", "dv")


def load_extension(path):
    """The extension at `path` as a module object."""
    loader = importlib.machinery.ExtensionFileLoader("_flashmask_torch", path)
    spec = importlib.util.spec_from_loader("_flashmask_torch", loader, origin=path)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def _arity(fn):
    """Number of arguments of a pybind11 function, from its docstring signature."""
    sig = (fn.__doc__ or "").split("\n")[0]
    return sig.count(": ")


class Build:
    """forward / backward of one extension, with the trailing arguments its
    version takes (block_mask, sink, kernel options), so two versions of the
    door can be timed side by side. Arity -> defaults for what follows the
    common arguments."""

    def __init__(self, name, path):
        from paddle_flashmask.switches import kernel_options

        opts = kernel_options()  # FLASHMASK_DISABLE_SM90=1: both builds' sm80 kernels
        fwd_tail = {8: [], 9: [True], 11: [None, None, opts]}
        bwd_tail = {12: [], 14: [True, False], 15: [None, None, opts]}
        self.name, self.ext = name, load_extension(path)
        self.fwd_tail = fwd_tail[_arity(self.ext.forward)]
        self.bwd_tail = bwd_tail[_arity(self.ext.backward)]

    def forward(self, q, k, v, idx, causal, scale):
        return self.ext.forward(q, k, v, idx, None, 0.0, causal, scale, *self.fwd_tail)

    def backward(self, q, k, v, idx, out, lse, dout, causal, scale, deterministic=False):
        grads = self.ext.backward(q, k, v, idx, None, out, lse, dout, 0.0, causal, scale, deterministic,
                                  *self.bwd_tail)
        return grads[:3]


def one_round(args):
    """Child process: one build, every mask; times (and, with --samples, the
    output samples) to files."""
    import torch
    from gpu_common import cuda_times_ms, paper_case

    build = Build(args.name, args.path)
    dev, s, d, h = "cuda", args.seqlen, args.head_dim, args.heads
    batch = args.tokens // s
    scale = d ** -0.5
    times = {}
    for name in args.masks:
        spec, idx, _pairs = paper_case(name, batch, s, h, dev)
        torch.manual_seed(0)
        q, k, v, dout = (torch.randn(batch, s, h, d, device=dev, dtype=torch.bfloat16) for _ in range(4))
        out, lse = build.forward(q, k, v, idx, spec.causal, scale)
        det = args.deterministic
        grads = build.backward(q, k, v, idx, out, lse, dout, spec.causal, scale, det)
        if args.samples:
            gen = torch.Generator(device=dev).manual_seed(1)
            picked = {}
            for key, t in zip(OUTPUTS, (out, lse) + tuple(grads)):
                flat = t.reshape(-1)
                picked[key] = flat[torch.randint(flat.numel(), (SAMPLE,), device=dev, generator=gen)].float().cpu()
            torch.save(picked, os.path.join(args.samples, f"{args.name}_{name}.pt"))
        times[name] = {
            "fwd": statistics.median(cuda_times_ms(lambda: build.forward(q, k, v, idx, spec.causal, scale),
                                                   1, args.reps)),
            "bwd": statistics.median(cuda_times_ms(
                lambda: build.backward(q, k, v, idx, out, lse, dout, spec.causal, scale, det), 1, args.reps))}
        del q, k, v, dout, out, lse, grads
        torch.cuda.empty_cache()
    with open(args.out, "w") as f:
        json.dump(times, f)


def run(args):
    import torch
    from gpu_common import run_meta

    from paddle_flashmask.switches import DISABLE_SM90, kernel_options

    builds = {"base": args.base, "new": args.new}
    s, d, h = args.seqlen, args.head_dim, args.heads
    batch = args.tokens // s
    print(f"{torch.cuda.get_device_name()}, bf16, S={s}, d={d}, B={batch}, H={h}, "
          + ("deterministic backward, " if args.deterministic else "") +
          f"{args.rounds} alternating rounds x {args.reps} reps, one process per build and round", flush=True)
    times = {m: {n: {"fwd": [], "bwd": []} for n in builds} for m in args.masks}
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.rounds):
            for name, path in (list(builds.items()) if rnd % 2 == 0 else reversed(builds.items())):
                out = os.path.join(tmp, f"{name}_{rnd}.json")
                cmd = [sys.executable, os.path.abspath(__file__), "_round", path, name, "--out", out,
                       *case_argv(args)]
                if rnd == 0:
                    cmd += ["--samples", tmp]
                subprocess.run(cmd, check=True)
                for m, t in json.load(open(out)).items():
                    for p in ("fwd", "bwd"):
                        times[m][name][p].append(t[p])
        rows = []
        print(f"{'mask':24s} {'fwd base':>9s} {'fwd new':>9s} {'new/base':>8s}   {'bwd base':>9s} {'bwd new':>9s} {'new/base':>8s}")
        for m in args.masks:
            a, b = (torch.load(os.path.join(tmp, f"{n}_{m}.pt")) for n in builds)
            same_fwd = all(torch.equal(a[k], b[k]) for k in OUTPUTS[:2])
            grad_err = max(float((a[k] - b[k]).abs().max()) for k in OUTPUTS[2:])
            med = {n: {p: statistics.median(t[p]) for p in t} for n, t in times[m].items()}
            rows.append({"mask": m, "seqlen": s, "head_dim": d, "times_ms": times[m], "median_ms": med,
                         "fwd_bitwise_equal": same_fwd, "max_grad_diff": grad_err})
            rf, rb = med["new"]["fwd"] / med["base"]["fwd"], med["new"]["bwd"] / med["base"]["bwd"]
            print(f"{m:24s} {med['base']['fwd']:9.3f} {med['new']['fwd']:9.3f} {rf:8.3f}   "
                  f"{med['base']['bwd']:9.3f} {med['new']['bwd']:9.3f} {rb:8.3f}   "
                  f"fwd equal={same_fwd} grad diff={grad_err:.2e}", flush=True)
    fr = [r["median_ms"]["new"]["fwd"] / r["median_ms"]["base"]["fwd"] for r in rows]
    br = [r["median_ms"]["new"]["bwd"] / r["median_ms"]["base"]["bwd"] for r in rows]
    print(f"new/base over {len(rows)} masks: fwd {min(fr):.3f}-{max(fr):.3f} "
          f"(geomean {statistics.geometric_mean(fr):.3f}), bwd {min(br):.3f}-{max(br):.3f} "
          f"(geomean {statistics.geometric_mean(br):.3f})")
    meta = run_meta(seqlen=s, head_dim=d, batch=batch, heads=h, rounds=args.rounds, reps=args.reps,
                    kernels="sm80" if kernel_options() & DISABLE_SM90 else "default", isolated=True,
                    deterministic=args.deterministic)
    with open(args.json, "w") as f:
        json.dump({**meta, "rows": rows}, f, indent=1)


def report(args):
    """The ab_builds section of RESULTS.md (table + plot of NEW / BASE per mask)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from results import update_section

    data = json.load(open(args.json))
    rows = data["rows"]
    ratio = {p: [r["median_ms"]["new"][p] / r["median_ms"]["base"][p] for r in rows] for p in ("fwd", "bwd")}
    plot = os.path.join(ROOT, "benchmarks", "plots", "ab_builds.png")
    fig, ax = plt.subplots(figsize=(9, 3.2))
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], ratio["fwd"], 0.4, label="forward")
    ax.bar([x + 0.2 for x in xs], ratio["bwd"], 0.4, label="backward")
    for y in (0.97, 1.03):
        ax.axhline(y, color="gray", lw=0.8, ls="--")
    ax.set_ylim(0.9, 1.1)
    ax.set_xticks(list(xs), [r["mask"] for r in rows], rotation=35, ha="right", fontsize=8)
    ax.set_ylabel(f"time {args.new} / {args.base}")
    ax.set_title(f"{args.new} vs {args.base}, same run ({data['device']}, S={data['seqlen']}, d={data['head_dim']})",
                 fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(plot, dpi=110)
    lines = [f"## Same-run A/B of two builds: {args.new} vs {args.base}", "",
             f"- date: {data.get('date', '')}", f"- device: {data['device']}; torch {data.get('torch', '')}",
             f"- command: `{data.get('command', '')}`" + (" with FLASHMASK_DISABLE_SM90=1 (the sm80 kernels)"
                                                          if data.get("kernels") == "sm80" else ""),
             f"- B*S = {data['batch'] * data['seqlen']} tokens, H = {data['heads']}, bf16, D = {data['head_dim']}; "
             f"the paper's masks (seed 0); {data['rounds']} rounds alternating the two builds, each build's "
             f"round in its own process, per mask the median of {data['reps']} CUDA-event timings; the table "
             "gives the median over rounds.",
             "- fwd equal: the two forwards (out and lse) are bitwise equal on a fixed sample of 2^20 entries; "
             "grad diff: max |difference| of dq, dk, dv there (atomic dQ adds: rounding order).", "",
             f"| mask | fwd ms {args.base} | fwd ms {args.new} | fwd ratio | bwd ms {args.base} | "
             f"bwd ms {args.new} | bwd ratio | fwd equal | grad diff |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r, rf, rb in zip(rows, ratio["fwd"], ratio["bwd"]):
        m = r["median_ms"]
        lines.append(f"| {r['mask']} | {m['base']['fwd']:.3f} | {m['new']['fwd']:.3f} | {rf:.3f} | "
                     f"{m['base']['bwd']:.3f} | {m['new']['bwd']:.3f} | {rb:.3f} | {r['fwd_bitwise_equal']} | "
                     f"{r['max_grad_diff']:.1e} |")
    geo = {p: math.exp(statistics.fmean(math.log(x) for x in ratio[p])) for p in ratio}
    lines += ["", f"Ratios (time {args.new} / time {args.base}): forward {min(ratio['fwd']):.3f}-"
              f"{max(ratio['fwd']):.3f} (geometric mean {geo['fwd']:.3f}), backward {min(ratio['bwd']):.3f}-"
              f"{max(ratio['bwd']):.3f} (geometric mean {geo['bwd']:.3f})." + (f" {args.note}" if args.note else ""),
              "",
              f"![{args.new} / {args.base} time per mask](plots/ab_builds.png)", ""]
    update_section("ab_builds", "\n".join(lines))


CASE_INTS = (("--seqlen", 8192), ("--head-dim", 128), ("--tokens", 128 * 1024), ("--heads", 32), ("--reps", 8))


def case_args(parser):
    """What `run` passes on to each `_round`: the shapes, reps, masks and mode."""
    for flag, default in CASE_INTS:
        parser.add_argument(flag, type=int, default=default)
    parser.add_argument("--masks", nargs="+", default=list(PAPER_MASKS), choices=PAPER_MASKS)
    parser.add_argument("--deterministic", action="store_true", help="both builds' deterministic backward")


def case_argv(args):
    """The case_args of `args` as command-line arguments again (for a `_round`)."""
    argv = [x for flag, _ in CASE_INTS for x in (flag, str(getattr(args, flag[2:].replace("-", "_"))))]
    return argv + ["--masks", *args.masks] + (["--deterministic"] if args.deterministic else [])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("base")
    r.add_argument("new")
    case_args(r)
    r.add_argument("--rounds", type=int, default=3)
    r.add_argument("--json", default=os.path.join(os.environ.get("OUT", "/tmp"), "ab_builds.json"))
    c = sub.add_parser("_round")  # one build's round, in its own process (run starts these)
    c.add_argument("path")
    c.add_argument("name")
    c.add_argument("--out", required=True)
    c.add_argument("--samples")
    case_args(c)
    rep = sub.add_parser("report")
    rep.add_argument("json")
    rep.add_argument("--base", default="base")
    rep.add_argument("--new", default="new")
    rep.add_argument("--note", help="what the two builds differ in (appended under the table)")
    args = ap.parse_args()
    {"run": run, "_round": one_round, "report": report}[args.cmd](args)


if __name__ == "__main__":
    main()
