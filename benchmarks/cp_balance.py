"""Context-parallel load balance and traffic, computed (no processes).

For causal, causal-document and share-question masks (the paper's generators,
batch 1, seed 0) at S = 128K ... 1M and 8 / 64 ranks: the unmasked
(query, key) pairs per rank as max / mean, for naive contiguous shards and
for balance_shards (default chunking: 8 chunks per rank). Then the bytes
each strategy sends per rank for one attention layer (forward + backward).

    PYTHONPATH=. python benchmarks/cp_balance.py [--out FILE]
"""
import argparse
import datetime
import sys
import time

from paddle_flashmask.distributed.balance import balance_shards, contiguous_plan
from paddle_flashmask.paper_masks import make_paper_mask

from results import update_section

SEQLENS = (1 << 17, 1 << 18, 1 << 19, 1 << 20)
WORLDS = (8, 64)
MASKS = ("causal", "causal_document", "share_question")
# Traffic model: a GQA layer with 8 KV heads of dim 128 in bf16; dK/dV travel in fp32.
KV_HEADS, HEAD_DIM, ELEM_BYTES, GRAD_BYTES = 8, 128, 2, 4


def balance_rows():
    rows = []
    for seqlen in SEQLENS:
        for name in MASKS:
            spec = make_paper_mask(name, batch=1, seqlen=seqlen, seed=0)
            for world in WORLDS:
                start = time.perf_counter()
                plan = balance_shards(spec.startend_row_indices, spec.causal, world)
                seconds = time.perf_counter() - start
                naive = contiguous_plan(spec.startend_row_indices, spec.causal, world)
                rows.append((seqlen, name, world, naive.imbalance, plan.imbalance, plan.strategy,
                             plan.chunk_size, seconds))
    return rows


def traffic_bytes(seqlen, world):
    """Bytes sent per rank per layer (fwd + bwd) by each strategy, NCCL algorithms:
    all_gather: K/V gathered in fwd and again in bwd, dK/dV reduce-scattered (fp32);
    ring: W - 1 K/V hops in fwd and in bwd, W hops of the fp32 dK/dV accumulator."""
    shard = seqlen // world * 2 * KV_HEADS * HEAD_DIM  # K and V elements of one shard
    all_gather = 2 * (world - 1) * shard * ELEM_BYTES + (world - 1) * shard * GRAD_BYTES
    ring = 2 * (world - 1) * shard * ELEM_BYTES + world * shard * GRAD_BYTES
    return all_gather, ring


def render(rows, command):
    lines = [
        "## Context-parallel load balance (benchmarks/cp_balance.py)",
        "",
        f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}. "
        f"Command: `{command}`. Computed from the masks (no processes, no kernels).",
        "",
        "Per-rank work = unmasked (query, key) pairs whose query row the rank owns. "
        "Imbalance = max / mean over ranks (1.00 = perfect). Masks: "
        "`paddle_flashmask.paper_masks.make_paper_mask(name, batch=1, seqlen=S, seed=0)`. "
        "Balanced = `balance_shards(...)` with its default 8 chunks per rank "
        "(equal tokens per rank); it keeps the best of zigzag / greedy / contiguous.",
        "",
        "| S | mask | ranks | contiguous max/mean | balanced max/mean | chosen | chunk | plan time |",
        "|---:|---|---:|---:|---:|---|---:|---:|",
    ]
    for seqlen, name, world, naive, bal, strategy, chunk, seconds in rows:
        lines.append(f"| {seqlen // 1024}K | {name} | {world} | {naive:.3f} | {bal:.4f} | "
                     f"{strategy} | {chunk} | {seconds * 1e3:.0f} ms |")
    lines += [
        "",
        f"### Bytes sent per rank per attention layer (fwd + bwd), {KV_HEADS} KV heads x "
        f"{HEAD_DIM}, bf16 K/V, fp32 dK/dV",
        "",
        "all_gather: K/V gathered in the forward and again in the backward, dK/dV "
        "reduce-scattered. ring: W - 1 K/V hops per pass, W hops of the dK/dV "
        "accumulator. Both move the same K/V volume; the ring overlaps each hop with "
        "the previous block's compute and keeps O(S/W) memory instead of O(S). "
        "Key blocks fully masked for a rank skip compute, not traffic.",
        "",
        "| S | ranks | all_gather | ring |",
        "|---:|---:|---:|---:|",
    ]
    for seqlen in SEQLENS:
        for world in WORLDS:
            ag, ring = traffic_bytes(seqlen, world)
            lines.append(f"| {seqlen // 1024}K | {world} | {ag / 2**20:,.0f} MiB | "
                         f"{ring / 2**20:,.0f} MiB |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the markdown here (it always goes to RESULTS.md)")
    args = parser.parse_args()
    text = render(balance_rows(), "PYTHONPATH=. python " + " ".join(sys.argv))
    print(text)
    update_section("cp_balance", text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
