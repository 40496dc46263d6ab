"""What a block-skipping kernel must compute for each paper mask, and the
TFLOP/s against causal that this allows. CPU only (numpy), no timing.

The sm90 kernels classify every (query tile, key block) with classify_tile's
rule (mask_bounds.h: min / max of the column bounds over the block): fully
masked blocks are skipped, every other block is computed whole. So

    block efficiency = unmasked (row, key) pairs / pairs of the computed blocks

caps a mask's useful TFLOP/s at the kernel's per-block speed times that
efficiency. Against causal (efficiency 0.98-1.0), the ratio of efficiencies is
the best "sparse mask TFLOP/s / causal TFLOP/s" any kernel with these tiles
can reach, even with no per-tile cost at all ("ceiling"). The forward's
measured cost model (benchmarks/tile_cost.py: `a` us per work tile + `b` us
per key block) adds the per-tile cost ("model"); with a suite JSON the
measured ratio is printed next to both.

    python benchmarks/block_efficiency.py [--seqlens 8192 32768 131072]
        [--suite benchmarks/data/mask_suite_8k_s18.json ...] [--section block_efficiency]
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gpu_common import four_column_bounds, unmasked_pairs  # noqa: E402

# Tile shapes of the sm90 kernels at d128 (BM query rows x BN keys).
FWD_TILE = (128, 128)
BWD_TILE = (64, 128)
# tile_cost.py's fit on the H100 (RESULTS.md "Per-tile cost of the forward").
TILE_US, BLOCK_US = 4.28, 1.73


def classify_blocks(idx, causal, seqlen, bm, bn):
    """The kernels' block kinds of one mask, as boolean arrays [B, Hm, query tiles, key blocks]:
    (computed, partial, causal_only). Not computed = skipped as fully masked; computed and not
    partial = run with no mask; causal_only = partial, masked by the causal diagonal alone.

    idx: int [B, Hm, S, ncols] (any FlashMask layout; Sq == Sk == seqlen) or None (plain or
    causal attention, one batch row)."""
    if idx is None:
        idx = np.full((1, 1, seqlen, 1), seqlen, dtype=np.int64)
    # Causal folded in as the upper band [0, j): one rule for every layout.
    b4 = four_column_bounds(idx, causal, seqlen).astype(np.int64)
    mb, nb = -(-seqlen // bm), -(-seqlen // bn)
    pad = nb * bn - seqlen  # padding keys mask every row: lower band [0, S)
    if pad:
        fill = np.broadcast_to(np.array([0, seqlen, 0, 0]), b4.shape[:2] + (pad, 4))
        b4 = np.concatenate([b4, fill], axis=2)
    cols = b4.reshape(b4.shape[0], b4.shape[1], nb, bn, 4)
    lo, hi = cols.min(axis=3)[:, :, None], cols.max(axis=3)[:, :, None]  # [B, Hm, 1, nb, 4]
    r0 = (np.arange(mb) * bm)[:, None]
    r1 = np.minimum(r0 + bm, seqlen)
    lower_covers = (hi[..., 0] <= r0) & (lo[..., 1] >= r1)
    upper_covers = (hi[..., 2] <= r0) & (lo[..., 3] >= r1)
    computed = ~(lower_covers | upper_covers)
    lower_clear = (lo[..., 0] >= r1) | (hi[..., 1] <= r0) | (lo[..., 0] >= hi[..., 1])
    upper_clear = (lo[..., 2] >= r1) | (hi[..., 3] <= r0) | (lo[..., 2] >= hi[..., 3])
    partial = computed & ~(lower_clear & upper_clear)
    # With causal the upper band is [0, j): a block that only it reaches is on the diagonal.
    causal_only = partial & lower_clear if causal else np.zeros_like(partial)
    return computed, partial, causal_only


def block_census(idx, causal, seqlen, bm, bn):
    """classify_blocks summed over batch rows and mask heads: `tiles` (query tiles with at least
    one computed block), `blocks` (computed blocks), `partial`, `causal_only`, `pairs` (rows x
    keys of the computed blocks) and `all_blocks`."""
    computed, partial, causal_only = classify_blocks(idx, causal, seqlen, bm, bn)
    rows = np.minimum(bm, seqlen - np.arange(computed.shape[2]) * bm)[:, None]
    keys = np.minimum(bn, seqlen - np.arange(computed.shape[3]) * bn)
    return {
        "tiles": int(computed.any(axis=3).sum()),
        "blocks": int(computed.sum()),
        "partial": int(partial.sum()),
        "causal_only": int(causal_only.sum()),
        "pairs": int((computed * rows * keys).sum()),
        "all_blocks": int(computed.size),
    }


def mask_case(name, seqlen, heads):
    """Paper mask `name` at the suite's batch (seed 0): (startend_row_indices, causal, unmasked pairs).
    Numpy only (gpu_common.paper_case also builds a CUDA tensor)."""
    from paddle_flashmask.paper_masks import make_paper_mask

    spec = make_paper_mask(name, max(1, 128 * 1024 // seqlen), seqlen, seed=0, num_heads=heads)
    idx = np.asarray(spec.startend_row_indices)
    return idx, spec.causal, unmasked_pairs(idx, spec.causal, seqlen, seqlen)


def mask_row(name, seqlen, case, tiles=(FWD_TILE, BWD_TILE)):
    """Census and efficiencies of one paper mask; case = mask_case(name, seqlen, heads)."""
    idx, causal, useful = case
    row = {"mask": name, "seqlen": seqlen, "useful": useful,
           "density": useful / (idx.shape[0] * idx.shape[1] * seqlen * seqlen)}
    for tag, (bm, bn) in zip(("fwd", "bwd"), tiles):
        c = block_census(idx, causal, seqlen, bm, bn)
        row[tag] = dict(c, efficiency=useful / c["pairs"])
    return row


def tile_shape_table(cases, shapes):
    """Forward ceiling vs causal (block efficiency over causal's, same tile) per tile shape;
    cases = {(seqlen, mask): mask_case(...)}, causal included."""
    lines = ["| S | mask | " + " | ".join(f"{bm} x {bn}" for bm, bn in shapes) + " |",
             "|---|---|" + "---|" * len(shapes)]
    eff = {key: [useful / block_census(idx, causal, key[0], bm, bn)["pairs"] for bm, bn in shapes]
           for key, (idx, causal, useful) in cases.items()}
    for (s, name), row in eff.items():
        if name not in ("causal", "full"):
            cells = " | ".join(f"{e / c:.0%}" for e, c in zip(row, eff[(s, "causal")]))
            lines.append(f"| {s} | {name} | {cells} |")
    return "\n".join(lines)


def model_us(census):
    return TILE_US * census["tiles"] + BLOCK_US * census["blocks"]


def flex_target(mask, seqlen):
    """Issue #6's forward bar as a multiple of FlexAttention's TFLOP/s."""
    return 1.7 if seqlen == 8192 and mask in ("causal_document", "sliding_window", "share_question") else 1.6


def suite_fwd(paths):
    """{(mask, seqlen): {"flashmask": fwd TFLOP/s, "flex": ...}} from mask_suite.py JSONs (d128)."""
    out = {}
    for path in paths:
        for r in json.load(open(path))["rows"]:
            if r["head_dim"] == 128:
                res = r["results"]
                out[(r["mask"], r["seqlen"])] = {k: res[k]["fwd_tflops"] for k in ("flashmask", "flex") if k in res}
    return out


def markdown(rows, suite):
    lines = [
        "| S | mask | density | fwd blocks computed | partial / causal-only | fwd block efficiency "
        "| ceiling vs causal | model vs causal | measured vs causal | fwd TFLOP/s: ours / ceiling / "
        "flex target | bwd block efficiency |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_s = {}
    for r in rows:
        by_s.setdefault(r["seqlen"], {})[r["mask"]] = r
    for s, masks in by_s.items():
        ref = masks["causal"]
        ref_speed = ref["useful"] / model_us(ref["fwd"])  # both summed over the same (b, mask head)s
        causal_tflops = suite.get(("causal", s), {}).get("flashmask")
        for name, r in masks.items():
            f = r["fwd"]
            ceiling = f["efficiency"] / ref["fwd"]["efficiency"]
            model = (r["useful"] / model_us(f)) / ref_speed
            meas, speeds = "-", "-"
            got = suite.get((name, s), {})
            if causal_tflops and "flashmask" in got:
                meas = f"{got['flashmask'] / causal_tflops:.0%}"
                bar = f"{flex_target(name, s) * got['flex']:.0f}" if "flex" in got else "-"
                speeds = f"{got['flashmask']:.0f} / {ceiling * causal_tflops:.0f} / {bar}"
            lines.append(
                f"| {s} | {name} | {r['density']:.3f} | {f['blocks'] / f['all_blocks']:.3f} | "
                f"{(f['partial'] - f['causal_only']) / f['blocks']:.2f} / {f['causal_only'] / f['blocks']:.2f} | "
                f"{f['efficiency']:.2f} | {ceiling:.0%} | {model:.0%} | {meas} | {speeds} | "
                f"{r['bwd']['efficiency']:.2f} |")
    return "\n".join(lines)


def main():
    from paddle_flashmask.paper_masks import PAPER_MASKS

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seqlens", type=int, nargs="+", default=[8192, 32768, 131072])
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--masks", nargs="+", default=list(PAPER_MASKS), choices=PAPER_MASKS)
    ap.add_argument("--tile-shapes", nargs="*", default=["128x128", "128x64", "64x128", "64x64"],
                    help="BMxBN shapes for the second table (ceiling vs causal per shape)")
    ap.add_argument("--suite", nargs="*", default=[], help="mask_suite.py JSONs for a measured column")
    ap.add_argument("--section", help="write the table into this section of benchmarks/RESULTS.md")
    args = ap.parse_args()
    masks = ["causal"] + [m for m in args.masks if m != "causal"]
    cases = {(s, m): mask_case(m, s, args.heads) for s in args.seqlens for m in masks}
    rows = [mask_row(m, s, case) for (s, m), case in cases.items()]
    cmd = "python benchmarks/block_efficiency.py " + " ".join(sys.argv[1:])
    text = "\n".join([
        "## Block efficiency of the twelve masks: what tile skipping must compute",
        "",
        f"- command: `{cmd.strip()}` (CPU, numpy; masks of `paddle_flashmask.paper_masks`, seed 0, "
        f"B*S = 128K, random_eviction with {args.heads} mask heads)",
        f"- tiles: forward {FWD_TILE[0]} x {FWD_TILE[1]}, backward {BWD_TILE[0]} x {BWD_TILE[1]} "
        "(query rows x keys, d128); a block is skipped iff classify_tile calls it fully masked",
        "- block efficiency = unmasked pairs / pairs of the computed blocks; ceiling = its ratio to "
        "causal's (the best sparse / causal TFLOP/s with a fixed cost per block and none per tile); "
        f"model = with tile_cost.py's {TILE_US} us per work tile + {BLOCK_US} us per key block (H100); "
        "measured = fwd TFLOP/s over causal's in the suite JSONs given; ceiling TFLOP/s = ceiling x our "
        "causal fwd TFLOP/s; flex target = issue #6's bar (1.6x flex, 1.7x on three masks at 8K)",
        "",
        markdown(rows, suite_fwd(args.suite)),
        "",
        "Forward ceiling vs causal by tile shape (query rows x keys; each against causal with the same tile):",
        "",
        tile_shape_table(cases, [tuple(int(x) for x in t.split("x")) for t in args.tile_shapes]),
    ])
    print(text)
    if args.section:
        from results import update_section

        update_section(args.section, text)


if __name__ == "__main__":
    main()
