"""The FlashMask paper's twelve masks on the GPU: our kernels (the sm90a
forward where the device has it, and the sm80 path) against FlexAttention and
cuDNN SDPA, in one run.

    python benchmarks/mask_suite.py run [--seqlens 8192 32768 131072] [--masks ...]
                                        [--head-dims 128] [--kv-heads 8]
                                        [--fmv3 BUILD_DIR] [--json PATH]
    python benchmarks/mask_suite.py report PATH.json [PATH.json ...]

`run` (on the device) times every (mask, S, head_dim) with B*S = 128K tokens,
H = 32 (--kv-heads: GQA with fewer KV heads), bf16, and writes JSON. `report`
(anywhere) merges JSON files into the gpu_suite section of
benchmarks/RESULTS.md and a PNG per S (and per GQA run) under benchmarks/plots/.

Masks: paddle_flashmask.paper_masks (the paper's parameters, fixed seed 0).
FLOPs are sparsity-aware: fwd = 4 * D * (unmasked (row, key) pairs over all
heads), bwd = 2.5 * fwd; times are medians of CUDA-event timings; bwd time =
(fwd + bwd) - fwd. Implementations:
  flashmask       our default dispatch (sm90a forward and backward on Hopper)
  flashmask_sm80  the same with FLASHMASK_DISABLE_SM90=1 (forward and backward)
  flex            torch.compile'd flex_attention with a block mask built
                  (outside the timing, reported as build ms) from one
                  mask_mod reading the same column bounds; fully unmasked
                  blocks skip the mask_mod
  cudnn           SDPA's cuDNN backend, where the mask is expressible (full, causal)
  sdpa_flash      SDPA's FlashAttention-2 backend, same masks
  fmv3            the official FlashMask V3 (PaddlePaddle/flash-attention), only
                  with --fmv3 BUILD_DIR or $FLASHMASK_FMV3_BUILD (a build of the
                  kit in ../shared/anchors/fmv3, never part of this project);
                  bf16, D = 128, MHA only; its interface needs a mask tensor, so
                  full and causal get the paper's no-op columns
With --kv-heads, Flex and SDPA run with enable_gqa=True.
Our mask preprocessing (prep/mask_bounds.cu's bounds kernel and the sm90 scheduler's
pre-pass) is timed with the profiler and reported as a share of the forward.
"""
import argparse
import contextlib
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from paddle_flashmask.paper_masks import PAPER_MASKS  # noqa: E402

from gpu_common import DENSE_MASKS, FMV3_ENV, run_meta  # noqa: E402

IMPLS = ("flashmask", "flashmask_sm80", "flex", "cudnn", "sdpa_flash", "fmv3")
PREP_KERNELS = ("mask_bounds_kernel", "work_count_kernel", "work_sort_kernel")
EXTRA_DIM_MASKS = ("causal", "causal_document")


# ----------------------------------------------------------------------------
# run (device)
# ----------------------------------------------------------------------------

@contextlib.contextmanager
def _kernels_of(impl):
    """flashmask_sm80: the sm90a kernels disabled for everything timed inside,
    forward and the autograd backward (the launcher reads the variable per call)."""
    if impl != "flashmask_sm80":
        yield
        return
    os.environ["FLASHMASK_DISABLE_SM90"] = "1"
    try:
        yield
    finally:
        del os.environ["FLASHMASK_DISABLE_SM90"]


def _flex_block_mask(bounds, batch, seqlen, device):
    """Block mask from [B, Hm, S, 4] (LTS, LTE, UTS, UTE) bounds: key j hidden
    from rows in [LTS, LTE) and [UTS, UTE). Returns (block_mask, build ms)."""
    import torch
    from torch.nn.attention.flex_attention import create_block_mask

    per_head = bounds.shape[1] > 1
    lts, lte, uts, ute = (torch.from_numpy(np.ascontiguousarray(bounds[..., c])).to(device) for c in range(4))

    def mask_mod(b, h, qi, kj):
        hh = h if per_head else 0
        return ~(((qi >= lts[b, hh, kj]) & (qi < lte[b, hh, kj])) |
                 ((qi >= uts[b, hh, kj]) & (qi < ute[b, hh, kj])))

    def build():
        return create_block_mask(mask_mod, batch, bounds.shape[1] if per_head else None, seqlen, seqlen,
                                 device=device, _compile=True)

    build()  # compile the builder once
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    block_mask = build()
    end.record()
    torch.cuda.synchronize()
    return block_mask, start.elapsed_time(end)


def bench_config(name, seqlen, head_dim, args, flex_fn, fmv3_fn):
    import torch
    from gpu_common import cuda_time_ms, fmv3_applies, fmv3_indices, four_column_bounds, kernel_times_us, paper_case
    from paddle_flashmask.torch import flashmask_attention

    dev, h, hk = "cuda", args.heads, args.kv_heads
    gqa = hk != h
    batch = args.tokens // seqlen
    spec, idx, pairs = paper_case(name, batch, seqlen, h, dev)
    idx_np, causal = spec.startend_row_indices, spec.causal
    fwd_flops = 4.0 * head_dim * pairs
    density = pairs / (batch * h * seqlen * seqlen)
    torch.manual_seed(0)
    shape, kv_shape = (batch, seqlen, h, head_dim), (batch, seqlen, hk, head_dim)
    q, k, v = (torch.randn(sh, device=dev, dtype=torch.bfloat16).requires_grad_()
               for sh in (shape, kv_shape, kv_shape))
    dout = torch.randn(shape, device=dev, dtype=torch.bfloat16)
    qt, kt, vt = (t.detach().transpose(1, 2).contiguous().requires_grad_() for t in (q, k, v))
    doutt = dout.transpose(1, 2).contiguous()

    def ours():
        return flashmask_attention(q, k, v, idx, causal=causal)

    impls = {"flashmask": (ours, dout), "flashmask_sm80": (ours, dout)}
    if fmv3_fn is not None and fmv3_applies(head_dim, h, hk):
        idx_v3 = fmv3_indices(spec, idx, dev)
        impls["fmv3"] = (lambda: fmv3_fn(q, k, v, idx_v3, causal=causal), dout)
    meta = {}
    if "flex" in args.impls:
        block_mask, meta["flex_block_mask_build_ms"] = _flex_block_mask(
            four_column_bounds(idx_np, causal, seqlen), batch, seqlen, dev)
        impls["flex"] = (lambda: flex_fn(qt, kt, vt, block_mask=block_mask, enable_gqa=gqa), doutt)
    if name in DENSE_MASKS:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        def sdpa(backend):
            def f():
                with sdpa_kernel(backend):
                    return torch.nn.functional.scaled_dot_product_attention(qt, kt, vt, is_causal=causal,
                                                                            enable_gqa=gqa)
            return f
        impls["cudnn"] = (sdpa(SDPBackend.CUDNN_ATTENTION), doutt)
        impls["sdpa_flash"] = (sdpa(SDPBackend.FLASH_ATTENTION), doutt)

    reps = args.reps or {8192: 10, 32768: 6}.get(seqlen, 3)
    results = {}
    outputs = {}
    for impl, (fwd, grad) in impls.items():
        if impl not in args.impls:
            continue
        try:
            with _kernels_of(impl), torch.no_grad():
                out = fwd()
                outputs[impl] = (out if out.shape == q.shape else out.transpose(1, 2)).float()
            def fwd_bwd():
                for t in (q, k, v, qt, kt, vt):
                    t.grad = None  # no .grad accumulation kernels in the timing
                fwd().backward(grad)

            with _kernels_of(impl):
                t_fwd = cuda_time_ms(fwd, args.warmup, reps)
                t_tot = cuda_time_ms(fwd_bwd, args.warmup, reps)
            res = {"fwd_ms": t_fwd, "total_ms": t_tot, "bwd_ms": t_tot - t_fwd,
                   "fwd_tflops": fwd_flops / t_fwd / 1e9,
                   "bwd_tflops": 2.5 * fwd_flops / max(t_tot - t_fwd, 1e-9) / 1e9,
                   "total_tflops": 3.5 * fwd_flops / t_tot / 1e9}
            if impl == "flashmask":
                kt_us = kernel_times_us(fwd)
                prep = sum(t for kname, t in kt_us.items() if any(p in kname for p in PREP_KERNELS))
                res["prep_us"] = prep
                res["fwd_kernels_us"] = sum(kt_us.values())
                res["fwd_kernel_names"] = sorted(kt_us)
            results[impl] = res
        except Exception as e:  # noqa: BLE001 - report it, keep benchmarking the rest
            results[impl] = {"error": f"{type(e).__name__}: {e}"[:300]}
        for t in (q, k, v, qt, kt, vt):
            t.grad = None
        print(name, seqlen, head_dim, impl, {k_: v_ for k_, v_ in results[impl].items()
                                             if k_ != "fwd_kernel_names"}, flush=True)
    # cross-check: every implementation's output against ours (same inputs, same mask)
    ref = outputs.get("flashmask")
    for impl, out in outputs.items():
        if ref is not None and impl != "flashmask" and "error" not in results[impl]:
            results[impl]["max_abs_diff_vs_flashmask"] = float((out - ref).abs().max())
    return {"mask": name, "seqlen": seqlen, "head_dim": head_dim, "batch": batch, "heads": h,
            "kv_heads": hk, "density": density, "fwd_flops": fwd_flops, "results": results, **meta}


def cmd_run(args):
    import torch

    flex_fn = None
    if "flex" in args.impls:
        from torch.nn.attention.flex_attention import flex_attention

        flex_fn = torch.compile(flex_attention, dynamic=False)
    fmv3_fn = None
    if "fmv3" in args.impls:
        from gpu_common import load_fmv3

        fmv3_fn = load_fmv3(args.fmv3)
    configs = [(m, s, d) for s in args.seqlens for m in args.masks for d in args.head_dims]
    configs += [(m, s, d) for s in args.seqlens for m in EXTRA_DIM_MASKS if m in args.masks
                for d in args.extra_head_dims]
    rows = []
    meta = run_meta(tokens=args.tokens, heads=args.heads, kv_heads=args.kv_heads, grad_reset=True,
                    fmv3=args.fmv3 and os.path.abspath(args.fmv3))
    for m, s, d in configs:
        rows.append(bench_config(m, s, d, args, flex_fn, fmv3_fn))
        torch.cuda.empty_cache()  # this config's tensors are gone with its frame
        with open(args.json, "w") as f:  # after every config: a timeout keeps what ran
            json.dump({"meta": meta, "rows": rows}, f, indent=1)
    print("wrote", args.json)


# ----------------------------------------------------------------------------
# report (anywhere)
# ----------------------------------------------------------------------------

def _ratio(a, b):
    return a / b if a and b else float("nan")


def _fmt(x, spec="{:.0f}"):
    return "-" if x is None or x != x else spec.format(x)


def _kv_heads(row):
    return row.get("kv_heads", row["heads"])  # runs before --kv-heads: MHA


def _has(rows, impl):
    return any(impl in r["results"] for r in rows)


def v3_table(group):
    """Ours against the official V3 in ms, per mask; "-" where either is missing."""
    lines = ["Against the official V3 (x V3 = V3's time / ours: > 1 = ours faster; "
             "V3 diff = max |out - ours| of V3's output):", "",
             "| mask | our fwd ms | V3 fwd ms | fwd x V3 | our bwd ms | V3 bwd ms | bwd x V3 | our total ms | "
             "V3 total ms | total x V3 | V3 diff |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in group:
        ours, v3 = (r["results"].get(k, {}) for k in ("flashmask", "fmv3"))
        cells = [_label(r)]
        for key in ("fwd_ms", "bwd_ms", "total_ms"):
            cells += [_fmt(ours.get(key), "{:.2f}"), _fmt(v3.get(key), "{:.2f}"),
                      _fmt(_ratio(v3.get(key), ours.get(key)), "{:.2f}")]
        cells.append(_fmt(v3.get("max_abs_diff_vs_flashmask"), "{:.1e}"))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _table_key(r):
    """The table a row lands in: its length, head dim and KV heads."""
    return r["seqlen"], r["head_dim"], _kv_heads(r)


def newest_rows(rows):
    """One row per mask of each table: the newest run's (run_date), in first-seen order."""
    best = {}
    for r in rows:
        key = (r["mask"], *_table_key(r))
        if key not in best or r["run_date"] > best[key]["run_date"]:
            best[key] = r
    keep = {id(r) for r in best.values()}
    return [r for r in rows if id(r) in keep]


def _label(r):
    """A row's mask, with its run's date where an older run than its table's newest gave it."""
    return r["mask"] + (f" ({r['older_run'][:10]})" if r.get("older_run") else "")


def _mark_older_runs(rows):
    """The rows as a new list; where one table's rows (one length, head dim and KV heads) come
    from several runs (cmd_report sets run_date), those not from its newest run become copies
    with older_run = their run's date."""
    newest = {}
    for r in rows:
        if r.get("run_date"):
            newest[_table_key(r)] = max(newest.get(_table_key(r), ""), r["run_date"])
    return [{**r, "older_run": r["run_date"]} if r.get("run_date") and r["run_date"] != newest[_table_key(r)]
            else r for r in rows]


def _device_lines(metas):
    """The card and torch of the runs; each command names its own when they differ."""
    kinds = {(m["device"], m["torch"]) for m in metas}
    if len(kinds) == 1:
        return [f"- device: {metas[0]['device']}; torch {metas[0]['torch']}"] + \
               [f"- command: `{m['command']}`" for m in metas]
    return ["- devices: each command's own (ratios are only ever taken within one run)"] + \
           [f"- command ({m['device']}, torch {m['torch']}, {m['date']}): `{m['command']}`" for m in metas]


def markdown(rows, metas, ours="sm90a forward and backward"):
    m0 = metas[0]
    rows = _mark_older_runs(rows)
    lines = [
        "## The paper's twelve masks on the GPU: FlashMask vs FlexAttention and cuDNN",
        "",
        f"- date: {', '.join(sorted({m['date'] for m in metas}))}",
        *_device_lines(metas),
        f"- B*S = {m0['tokens']} tokens, H = {m0['heads']}, bf16; masks from "
        "`paddle_flashmask.paper_masks` (seed 0); sparsity-aware TFLOP/s (fwd = 4*D*unmasked pairs, "
        "bwd = 2.5*fwd); median CUDA-event times; bwd = total - fwd.",
        f"- flashmask = our default dispatch ({ours}); sm80 = "
        "FLASHMASK_DISABLE_SM90=1; flex = torch.compile'd flex_attention (block mask from the same "
        "column bounds, built outside the timing); cudnn = SDPA cuDNN backend (full, causal only).",
        "- x flex / x cudnn = their time over ours (our speed-up); prep = our mask preprocessing "
        "kernels' share of our forward time; diff = max |out - ours| of flex's output.",
    ]
    if _has(rows, "fmv3"):
        lines.append("- fmv3 = the official FlashMask V3 (PaddlePaddle/flash-attention's flashmask_attention_v3 "
                     "through its own torch interface, built outside this project; bf16, D = 128, MHA only), "
                     "in the same process and timed the same way; it always gets a mask tensor (full and causal: "
                     "the paper's no-op columns), where ours takes none for those two.")
    if any(_kv_heads(r) != r["heads"] for r in rows):
        lines.append("- GQA sections: Hk KV heads shared by H query heads (flex and SDPA with enable_gqa=True; "
                     "V3's build is MHA-only); FLOPs count the query heads.")
    if any(r.get("older_run") for r in rows):
        lines.append("- a mask shown with a date comes from that earlier run, which the newest run of its "
                     "table (length, head dim) did not repeat: its figures are from the build of that run.")
    if not all(m.get("grad_reset") for m in metas):
        lines.append("- these runs' totals include autograd's accumulation into .grad from the second "
                     "repetition on (about 3 ms per call at B*S = 128K, H = 32, D = 128; the same for every "
                     "implementation, so the total ratios are slightly compressed toward 1).")
    lines.append("")
    by_s = {}
    for r in rows:
        by_s.setdefault((r["seqlen"], r["head_dim"], _kv_heads(r)), []).append(r)
    for (s, d, hk), group in sorted(by_s.items(), key=lambda kv: (kv[0][1] != 128, -kv[0][2], kv[0])):
        h = group[0]["heads"]
        gqa = f", GQA H = {h}, Hk = {hk}" if hk != h else ""
        lines += [f"### S = {s}, D = {d}{gqa} (B = {group[0]['batch']})", "",
                  "| mask | density | fwd TFLOP/s | fwd x flex | fwd x cudnn | sm80 fwd | flex fwd | "
                  "bwd TFLOP/s | total TFLOP/s | total x flex | total x cudnn | flex total | prep % | "
                  "flex mask build ms | diff |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in group:
            res = r["results"]
            ours, sm80, flex, cud = (res.get(k, {}) for k in ("flashmask", "flashmask_sm80", "flex", "cudnn"))
            prep = (100.0 * ours["prep_us"] / (1000.0 * ours["fwd_ms"])) if "prep_us" in ours else None
            lines.append(
                f"| {_label(r)} | {r['density']:.3f} | {_fmt(ours.get('fwd_tflops'))} | "
                f"{_fmt(_ratio(flex.get('fwd_ms'), ours.get('fwd_ms')), '{:.2f}')} | "
                f"{_fmt(_ratio(cud.get('fwd_ms'), ours.get('fwd_ms')), '{:.2f}')} | "
                f"{_fmt(sm80.get('fwd_tflops'))} | {_fmt(flex.get('fwd_tflops'))} | "
                f"{_fmt(ours.get('bwd_tflops'))} | {_fmt(ours.get('total_tflops'))} | "
                f"{_fmt(_ratio(flex.get('total_ms'), ours.get('total_ms')), '{:.2f}')} | "
                f"{_fmt(_ratio(cud.get('total_ms'), ours.get('total_ms')), '{:.2f}')} | "
                f"{_fmt(flex.get('total_tflops'))} | {_fmt(prep, '{:.2f}')} | "
                f"{_fmt(r.get('flex_block_mask_build_ms'), '{:.1f}')} | "
                f"{_fmt(flex.get('max_abs_diff_vs_flashmask'), '{:.1e}')} |")
        if _has(group, "fmv3"):
            lines += [""] + v3_table(group)
        errors = [f"{r['mask']} {k}: {v['error']}" for r in group for k, v in r["results"].items() if "error" in v]
        lines += [""] + [f"- error: {e}" for e in errors] + ([""] if errors else [])
    return "\n".join(lines) + "\n"


def targets(rows):
    """Issue #6/#7's bars, checked on the D = 128 rows: one line per S."""
    lines = ["### Targets (D = 128): fwd >= 1.6x flex (1.7x for causal_document, sliding_window, "
             "share_question at 8K), causal fwd >= cudnn, sparse masks >= 85 % of our causal fwd TFLOP/s, "
             "prep <= 2 % of the forward; total >= 1.6x flex", ""]
    for s in sorted({r["seqlen"] for r in rows}):
        group = [r for r in rows if r["seqlen"] == s and r["head_dim"] == 128 and _kv_heads(r) == r["heads"]]
        res = {r["mask"]: r["results"] for r in group}
        if "flashmask" not in res.get("causal", {}):
            continue
        fwd_x, tot_x, low, preps = {}, {}, [], []
        causal_tf = res["causal"]["flashmask"]["fwd_tflops"]
        for m, rr in res.items():
            ours, flex = rr.get("flashmask", {}), rr.get("flex", {})
            if "fwd_ms" in ours and "fwd_ms" in flex:
                fwd_x[m] = flex["fwd_ms"] / ours["fwd_ms"]
                tot_x[m] = flex["total_ms"] / ours["total_ms"]
            if m not in DENSE_MASKS and "fwd_tflops" in ours and ours["fwd_tflops"] < 0.85 * causal_tf:
                low.append(f"{m} {100 * ours['fwd_tflops'] / causal_tf:.0f}%")
            if "prep_us" in ours:
                preps.append(100.0 * ours["prep_us"] / (1000.0 * ours["fwd_ms"]))

        if not fwd_x:  # the bars are against flex: nothing to check without its timings
            continue

        def bar(m):
            return 1.7 if s == 8192 and m in ("causal_document", "sliding_window", "share_question") else 1.6
        miss = [f"{m} {x:.2f}" for m, x in fwd_x.items() if x < bar(m)]
        cud = res["causal"].get("cudnn", {})
        cud_x = cud["fwd_ms"] / res["causal"]["flashmask"]["fwd_ms"] if "fwd_ms" in cud else float("nan")
        lines.append(
            f"- S = {s}: fwd x flex {min(fwd_x.values()):.2f}-{max(fwd_x.values()):.2f} "
            f"({len(fwd_x) - len(miss)}/{len(fwd_x)} at the bar); causal fwd x cudnn {cud_x:.2f}; "
            f"sparse masks below 85 % of causal: {', '.join(low) or 'none'}; "
            f"prep max {max(preps or [0]):.2f} %; total x flex {min(tot_x.values()):.2f}-{max(tot_x.values()):.2f}")
    return "\n".join(lines) + "\n" if len(lines) > 2 else ""  # no MHA D = 128 run: no bars to check


def plot(rows, out_dir, prefix="gpu_suite"):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    rows = _mark_older_runs(rows)
    paths = []
    for s, hk in sorted({(r["seqlen"], _kv_heads(r)) for r in rows}, key=lambda k: (-k[1], k[0])):
        group = [r for r in rows if r["seqlen"] == s and r["head_dim"] == 128 and _kv_heads(r) == hk]
        if not group:
            continue
        h = group[0]["heads"]
        gqa = hk != h
        fig, axes = plt.subplots(2, 1, figsize=(13, 8), sharex=True)
        x = np.arange(len(group))
        impls = [i for i in IMPLS if any(i in r["results"] and "error" not in r["results"][i] for r in group)]
        width = 0.8 / len(impls)
        for ax, key, title in ((axes[0], "fwd_tflops", "forward"), (axes[1], "total_tflops", "forward + backward")):
            for n, impl in enumerate(impls):
                vals = [r["results"].get(impl, {}).get(key, 0.0) for r in group]
                ax.bar(x + (n - (len(impls) - 1) / 2) * width, vals, width, label=impl)
            ax.set_ylabel("TFLOP/s (sparsity-aware)")
            heads = f"H = {h}, Hk = {hk}" if gqa else f"H = {h}"
            ax.set_title(f"{title}, S = {s}, B*S = {group[0]['batch'] * s}, {heads}, D = 128, bf16")
            ax.grid(axis="y", alpha=0.3)
        axes[1].set_xticks(x, [_label(r) for r in group], rotation=30, ha="right")
        axes[0].legend(ncol=len(impls), fontsize=8)
        fig.tight_layout()
        name = "mask_suite" if prefix == "gpu_suite" else prefix
        path = os.path.join(out_dir, f"{name}_S{s}{f'_gqa{hk}' if gqa else ''}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def cmd_report(args):
    from results import update_section

    rows, metas = [], []
    for path in args.json:
        data = json.load(open(path))
        rows += [{**r, "run_date": data["meta"]["date"]} for r in data["rows"]]
        metas.append(data["meta"])
    order = {m: i for i, m in enumerate(PAPER_MASKS)}
    rows = sorted(newest_rows(rows), key=lambda r: order.get(r["mask"], len(order)))  # the paper's order
    metas = [m for m in metas if any(r["run_date"] == m["date"] for r in rows)]
    md = "\n".join(part.rstrip("\n") + "\n" for part in (markdown(rows, metas, args.ours), targets(rows)) if part)
    if args.title:
        md = md.replace(md.split("\n", 1)[0], "## " + args.title, 1)
    if not args.no_plots:
        paths = plot(rows, os.path.join(ROOT, "benchmarks", "plots"), args.section)
        md += "\nPlots: " + ", ".join(f"`{os.path.relpath(p, ROOT)}`" for p in paths) + "\n"
    update_section(args.section, md)
    print(md)


def _check_run_args(ap, args):
    """Fill the defaults that depend on other arguments."""
    args.kv_heads = args.kv_heads or args.heads
    if args.heads % args.kv_heads:
        ap.error(f"--heads {args.heads} is not a multiple of --kv-heads {args.kv_heads}")
    if args.impls is None:
        args.impls = [i for i in IMPLS if i != "fmv3" or args.fmv3]
    elif "fmv3" in args.impls and not args.fmv3:
        ap.error(f"--impls fmv3 needs --fmv3 BUILD_DIR (or ${FMV3_ENV})")


def _parser():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run")
    run.add_argument("--seqlens", type=int, nargs="+", default=[8192, 32768, 131072])
    run.add_argument("--masks", nargs="+", default=list(PAPER_MASKS), choices=PAPER_MASKS)
    run.add_argument("--head-dims", type=int, nargs="*", default=[128])
    run.add_argument("--extra-head-dims", type=int, nargs="*", default=[64, 256],
                     help="also run causal and causal_document at these head dims")
    run.add_argument("--impls", nargs="+", choices=IMPLS,
                     help="default: all (fmv3 only with --fmv3)")
    run.add_argument("--tokens", type=int, default=128 * 1024)
    run.add_argument("--heads", type=int, default=32)
    run.add_argument("--kv-heads", type=int, default=None, help="GQA: KV heads (default: --heads)")
    run.add_argument("--fmv3", default=os.environ.get(FMV3_ENV) or None,
                     help=f"the official V3 baseline's build dir (.anchors/fmv3/build; default ${FMV3_ENV})")
    run.add_argument("--warmup", type=int, default=2)
    run.add_argument("--reps", type=int, default=0, help="0: 10 at 8K, 6 at 32K, 3 longer")
    run.add_argument("--json", default=os.path.join(os.environ.get("OUT", "/tmp"), "mask_suite.json"))
    rep = sub.add_parser("report")
    rep.add_argument("json", nargs="+")
    rep.add_argument("--section", default="gpu_suite", help="RESULTS.md section to write")
    rep.add_argument("--title", default=None, help="heading of that section")
    rep.add_argument("--no-plots", action="store_true")
    rep.add_argument("--ours", default="sm90a forward and backward",
                     help="which kernels our default dispatch ran, for the legend")
    return ap


def parse_args(argv=None):
    ap = _parser()
    args = ap.parse_args(argv)
    if args.cmd == "run":
        _check_run_args(ap, args)
    return args


def main():
    args = parse_args()
    cmd_run(args) if args.cmd == "run" else cmd_report(args)


if __name__ == "__main__":
    main()
