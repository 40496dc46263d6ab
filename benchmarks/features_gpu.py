"""What the new kernel features cost on the GPU, in one run with alternating
rounds (issue #30's speed targets):

  sink        forward and forward+backward with a learnable_sink against the
              same call without one (target: at most 3 % more);
  block_mask  a random Paddle block_mask keeping a fraction f of the 128 x 128
              blocks, against the same call with every block kept (target:
              time(f) within 1.25 x f x time(1)); f = 0 measures the cost
              that does not scale with the kept blocks (the O(S) passes);
  mla         q/k head dim 192 with value head dim 128 (DeepSeek MLA): ours
              (v zero-padded to 192, the door's default: the Hopper d192
              forward and backward) against torch.compile'd FlexAttention,
              which takes Dv != D natively (target: total >= 1.4 x Flex).

    python benchmarks/features_gpu.py run [--seqlens 8192 32768] [--parts sink mla block_mask]
                                          [--masks causal ...] [--json PATH]
    python benchmarks/features_gpu.py report PATH.json [PATH.json ...]

--parts picks the parts to run (default: all three), --masks cuts each
part's masks to those named.
B*S = 128K tokens, H = 32, d = 128, bf16, the paper's masks (seed 0); each
timing is the median of --reps CUDA-event timings, each figure the median
over --rounds rounds that alternate the variants of one case.
"""
import argparse
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

SINK_MASKS = ("causal", "causal_document", "sliding_window", "share_question")
BLOCK_MASKS = ("full", "causal")
FRACTIONS = (1.0, 0.5, 0.25, 0.1, 0.0)  # f = 0: the fixed O(S) cost (every block dropped)
MLA_MASKS = ("causal", "causal_document")
MLA_HEADS = 16  # 192/128 at H = 32 would not fit Flex's backward at 32K on an 80 GB card with ours alongside


def _time_variants(variants, rounds, reps):
    """variants = {name: (fwd, total)} -> {name: {"fwd": ms, "total": ms}}, the
    medians over alternating rounds (gpu_common.alternating_rounds)."""
    from gpu_common import alternating_rounds

    times = alternating_rounds({n: {"fwd": fwd, "total": total} for n, (fwd, total) in variants.items()},
                               rounds, reps)
    return {n: {p: statistics.median(t[p]) for p in t} for n, t in times.items()}


def _calls(q, k, v, dout, idx, causal, **kwargs):
    import torch

    from paddle_flashmask.torch import flashmask_attention

    def fwd():
        flashmask_attention(q, k, v, idx, causal=causal, **kwargs)

    def total():  # autograd.grad: no .grad accumulation inside the timing
        out = flashmask_attention(q, k, v, idx, causal=causal, **kwargs)
        torch.autograd.grad(out, (q, k, v), dout)

    return fwd, total


def _mla_variants(s, batch, name, gen):
    """{variant: (fwd, total)} for the MLA shapes: ours at 192/128 (the door
    pads v to 192) and Flex at 192/128."""
    import torch
    from gpu_common import four_column_bounds, mla_inputs, paper_case
    from mask_suite import _flex_block_mask
    from torch.nn.attention.flex_attention import flex_attention

    from paddle_flashmask.torch import flashmask_attention

    dev, h = "cuda", MLA_HEADS
    spec, idx, _ = paper_case(name, batch, s, h, dev)
    q, k, v, dout = mla_inputs(batch, s, h, gen)

    def ours():
        return flashmask_attention(q, k, v, idx, causal=spec.causal)

    qt, kt, vt = (t.detach().transpose(1, 2).contiguous().requires_grad_() for t in (q, k, v))
    block_mask, _ = _flex_block_mask(four_column_bounds(spec.startend_row_indices, spec.causal, s), batch, s, dev)
    flex = torch.compile(flex_attention, dynamic=False)
    variants = {}
    for label, (attn, grad_out), leaves in (
            ("ours 192/128", (ours, dout), (q, k, v)),
            ("flex 192/128", (lambda: flex(qt, kt, vt, block_mask=block_mask), dout.transpose(1, 2).contiguous()),
             (qt, kt, vt))):
        def fwd(attn=attn):
            attn()

        def total(attn=attn, grad_out=grad_out, leaves=leaves):
            torch.autograd.grad(attn(), leaves, grad_out)

        variants[label] = (fwd, total)
    return variants


def _masks(names, part, args):
    """The masks a part runs: its own list, cut to --masks when given."""
    if part not in args.parts:
        return ()
    return tuple(n for n in names if not args.masks or n in args.masks)


def run(args):
    import torch
    from gpu_common import paper_case, random_block_mask, run_meta

    dev, d, h = "cuda", 128, 32
    rows = []
    meta = run_meta(tokens=args.tokens, heads=h, head_dim=d, rounds=args.rounds, reps=args.reps)

    start = time.monotonic()

    def done(row, line):  # the JSON is rewritten after every case: a time limit keeps what ran
        rows.append(row)
        with open(args.json, "w") as f:
            json.dump({**meta, "rows": rows}, f, indent=1)
        print(f"[{time.monotonic() - start:5.0f} s] {row['kind']:5s} S={row['seqlen']:6d} {row['mask']:18s} {line}",
              flush=True)

    for s in args.seqlens:
        batch = args.tokens // s
        gen = torch.Generator(device=dev).manual_seed(0)

        def leaf(shape):
            return torch.randn(*shape, device=dev, dtype=torch.bfloat16, generator=gen).requires_grad_()

        q, k, v = (leaf((batch, s, h, d)) for _ in range(3))
        dout = torch.randn(batch, s, h, d, device=dev, dtype=torch.bfloat16, generator=gen)
        sink = torch.linspace(-1, 1, h, device=dev).requires_grad_()
        for name in _masks(SINK_MASKS, "sink", args):
            spec, idx, _ = paper_case(name, batch, s, h, dev)
            med = _time_variants({"plain": _calls(q, k, v, dout, idx, spec.causal),
                                  "sink": _calls(q, k, v, dout, idx, spec.causal, learnable_sink=sink)},
                                 args.rounds, args.reps)
            done({"kind": "sink", "mask": name, "seqlen": s, "ms": med},
                 f"fwd {med['sink']['fwd'] / med['plain']['fwd']:.3f} "
                 f"total {med['sink']['total'] / med['plain']['total']:.3f}")
        for name in _masks(BLOCK_MASKS, "block_mask", args):
            spec, idx, _ = paper_case(name, batch, s, h, dev)
            variants = {f"f={f:g}": _calls(q, k, v, dout, idx, spec.causal,
                                           block_mask=random_block_mask(batch, s, f, gen)) for f in FRACTIONS}
            med = _time_variants(variants, args.rounds, args.reps)
            base = med["f=1"]
            done({"kind": "block_mask", "mask": name, "seqlen": s, "ms": med}, " ".join(
                f"{v}: fwd {med[v]['fwd'] / base['fwd']:.3f} total {med[v]['total'] / base['total']:.3f}"
                for v in med))
        del q, k, v, dout
        torch.cuda.empty_cache()
        for name in _masks(MLA_MASKS, "mla", args):
            med = _time_variants(_mla_variants(s, batch, name, gen), args.rounds, args.reps)
            flex = med["flex 192/128"]
            done({"kind": "mla", "mask": name, "seqlen": s, "ms": med}, " ".join(
                f"{v}: fwd x flex {flex['fwd'] / m['fwd']:.2f} total x flex {flex['total'] / m['total']:.2f}"
                for v, m in med.items() if not v.startswith("flex")))
            torch.cuda.empty_cache()


def _fraction(key):
    """0.25 for the block_mask variant "f=0.25"."""
    return float(key.split("=")[1])


def block_mask_floor_note(block_rows, meta):
    """Why a small f misses the target at short lengths: the memory traffic
    every forward + backward pays, against the 0.25 x f x time(1) the target
    leaves for all that does not shrink with f."""
    # q, k, v, o, dO read or written once, o and dO read again (delta), dq, dk, dv written
    gbytes = 9 * meta["tokens"] * meta["heads"] * meta["head_dim"] * 2 / 1e9
    card, tbps = ("H200", 4.8) if "H200" in meta["device"] else ("H100", 3.35)  # HBM peak, TB/s
    floor_ms = gbytes / tbps
    allowance = {(r["seqlen"], r["mask"], v): 0.25 * _fraction(v) * r["ms"]["f=1"]["total"]
                 for r in block_rows for v in r["ms"] if 0 < _fraction(v) < 1}
    under = [f"{s // 1024}K {mask} f = {_fraction(v):g}: {ms:.1f} ms"
             for (s, mask, v), ms in allowance.items() if ms < floor_ms]
    return (f"A forward + backward reads or writes at least nine B*S*H*d tensors whatever f: {gbytes:.1f} GB here, "
            f"{floor_ms:.1f} ms at an {card}'s {tbps} TB/s. The target leaves 0.25 x f x time(1) for all that does not "
            "shrink with f" + (f", less than that where it is missed ({'; '.join(under)})" if under else "")
            + ": only traffic hidden under the kept blocks' math fits, and the backward's delta and dQ-conversion "
            "passes (separate kernels) and each CTA's K / V loads and dK / dV stores around its few blocks are not.")


def report(args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from results import update_section

    datas = [json.load(open(p)) for p in args.json]
    rows = [r for d in datas for r in d["rows"]]
    meta = datas[0]
    sink_rows = [r for r in rows if r["kind"] == "sink"]
    block_rows = [r for r in rows if r["kind"] == "block_mask"]
    runs = []
    for d in datas:  # one line per run: the parts it measured, when, how
        parts = sorted({r["kind"] for r in d["rows"]})
        runs.append(f"- {', '.join(parts)}: {d['date']}, {d['device']}, torch {d['torch']}, `{d['command']}` "
                    f"({d['rounds']} rounds of {d['reps']} timings)")
    lines = ["## GPU features: learnable sink, block_mask, MLA shapes", ""] + runs + [
             f"- B*S = {meta['tokens']} tokens, H = {meta['heads']}, d = {meta['head_dim']}, bf16, the paper's "
             "masks (seed 0); rounds alternate the variants of a case, each figure the median over rounds "
             "of the median CUDA-event timing; total = forward + backward.", "",
             "Sink: time with a learnable_sink / time without (target <= 1.03).", "",
             "| S | mask | fwd ms | fwd ms, sink | fwd ratio | total ms | total ms, sink | total ratio |",
             "|---|---|---|---|---|---|---|---|"]
    for r in sink_rows:
        p, s = r["ms"]["plain"], r["ms"]["sink"]
        lines.append(f"| {r['seqlen']} | {r['mask']} | {p['fwd']:.2f} | {s['fwd']:.2f} | {s['fwd'] / p['fwd']:.3f} | "
                     f"{p['total']:.2f} | {s['total']:.2f} | {s['total'] / p['total']:.3f} |")
    with_zero = any("f=0" in r["ms"] for r in block_rows)  # runs before f = 0 was measured have none
    if block_rows:
        lines += ["", "block_mask: random blocks kept with probability f; time(f) / (f x time(1)) (target <= 1.25; "
                  "below 1 where the kept share came out under f)."
                  + (" f = 0 drops every block: what is left is the work that does not scale with the kept "
                     "blocks; net = (time(f) - time(0)) / (f x (time(1) - time(0))), the scaling of the rest."
                     if with_zero else ""), "",
                  "| S | mask | f | fwd ms | fwd time(f) / (f time(1)) | total ms | total time(f) / (f time(1)) |"
                  + (" total net |" if with_zero else ""),
                  "|---|---|---|---|---|---|---|" + ("---|" if with_zero else "")]
    for r in block_rows:
        base, zero = r["ms"]["f=1"], r["ms"].get("f=0")
        for v, m in r["ms"].items():
            f = _fraction(v)
            if f == 0:
                lines.append(f"| {r['seqlen']} | {r['mask']} | 0 | {m['fwd']:.2f} | | {m['total']:.2f} | | |")
                continue
            row = (f"| {r['seqlen']} | {r['mask']} | {f:g} | {m['fwd']:.2f} | {m['fwd'] / (f * base['fwd']):.2f} | "
                   f"{m['total']:.2f} | {m['total'] / (f * base['total']):.2f} |")
            if with_zero:
                row += (f" {(m['total'] - zero['total']) / (f * (base['total'] - zero['total'])):.2f} |"
                        if zero else " |")
            lines.append(row)
    if block_rows:
        lines += ["", block_mask_floor_note(block_rows, meta)]
    plot = os.path.join(ROOT, "benchmarks", "plots", "features_gpu.png")
    fig, axes = plt.subplots(1, 2 if block_rows else 1, figsize=(10 if block_rows else 5.5, 3.4), squeeze=False)
    axes = axes[0]
    labels = [f"{r['mask']} {r['seqlen'] // 1024}K" for r in sink_rows]
    xs = range(len(sink_rows))
    for off, part in ((-0.2, "fwd"), (0.2, "total")):
        axes[0].bar([x + off for x in xs], [r["ms"]["sink"][part] / r["ms"]["plain"][part] for r in sink_rows],
                    0.4, label=part)
    axes[0].axhline(1.03, color="gray", ls="--", lw=0.8)
    axes[0].set_ylim(0.9, 1.1)
    axes[0].set_xticks(list(xs), labels, fontsize=6, rotation=40, ha="right")
    axes[0].set_ylabel("time with sink / without")
    axes[0].legend(fontsize=7)
    for r in block_rows:
        fs = [_fraction(v) for v in r["ms"]]
        axes[1].plot(fs, [m["total"] / r["ms"]["f=1"]["total"] for m in r["ms"].values()], "o-",
                     label=f"{r['mask']} {r['seqlen'] // 1024}K")
    if block_rows:
        axes[1].plot([0, 1], [0, 1], color="gray", lw=0.8, ls="--")
        axes[1].set_xlabel("fraction f of blocks kept")
        axes[1].set_ylabel("total time / time at f = 1")
        axes[1].legend(fontsize=7)
    fig.suptitle(f"learnable_sink cost and block_mask scaling ({meta['device']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(plot, dpi=110)
    mla_rows = [r for r in rows if r["kind"] == "mla"]
    if mla_rows:
        lines += ["", f"MLA shapes (q/k 192, v 128, H = {MLA_HEADS}): Flex's time / ours (our speed-up; "
                  "target total >= 1.4). Ours pads v to 192 (the door's default) and runs the Hopper d192 "
                  "kernels both ways.", "",
                  "| S | mask | flex fwd ms | flex total ms | variant | fwd ms | fwd x flex | total ms | total x flex |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in mla_rows:
            fl = r["ms"]["flex 192/128"]
            for v, m in r["ms"].items():
                if v.startswith("flex"):
                    continue
                lines.append(f"| {r['seqlen']} | {r['mask']} | {fl['fwd']:.2f} | {fl['total']:.2f} | {v} | "
                             f"{m['fwd']:.2f} | {fl['fwd'] / m['fwd']:.2f} | {m['total']:.2f} | "
                             f"{fl['total'] / m['total']:.2f} |")
        lines.append("")
    lines += ["", "![sink cost and block_mask scaling](plots/features_gpu.png)", ""]
    update_section("features_gpu", "\n".join(lines))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--seqlens", type=int, nargs="+", default=[8192, 32768])
    r.add_argument("--tokens", type=int, default=128 * 1024)
    parts = ["sink", "block_mask", "mla"]
    r.add_argument("--parts", nargs="+", default=parts, choices=parts)
    r.add_argument("--masks", nargs="+", help="only these of each part's masks (e.g. causal)")
    r.add_argument("--rounds", type=int, default=3)
    r.add_argument("--reps", type=int, default=5)
    r.add_argument("--json", default=os.path.join(os.environ.get("OUT", "/tmp"), "features_gpu.json"))
    rep = sub.add_parser("report")
    rep.add_argument("json", nargs="+")
    args = ap.parse_args()
    run(args) if args.cmd == "run" else report(args)


if __name__ == "__main__":
    main()
