"""GPU benchmark of the FlashMask CUDA kernels (through the PyTorch door)
against FlexAttention (torch.compile'd flex_attention), torch SDPA's flash
backend and its cuDNN backend, in one run.

    python benchmarks/gpu_bench.py [--seqlens 8192 32768] [--masks causal causal_document]
                                   [--fmv3 BUILD_DIR]

B * S = 128K tokens, H = 32, D = 128, bf16. FLOPs are sparsity-aware:
fwd = 4 * D * H * (unmasked (i, j) pairs), bwd = 2.5 * fwd. Times are medians
of CUDA-event timings after warm-up. With --fmv3 (or $FLASHMASK_FMV3_BUILD), the
official FlashMask V3 built by the kit in ../shared/anchors/fmv3 runs too (D = 128;
causal gets a no-op mask column, its interface needs one). Writes JSON (and the
markdown table) to $OUT (or benchmarks/out/) and the table into its section of
benchmarks/RESULTS.md (on the device machine, bring $OUT/gpu_sm80.md back and merge it here with
`python benchmarks/results.py gpu_sm80 PATH/gpu_sm80.md`).
"""
import argparse
import datetime
import json
import os
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from paddle_flashmask.torch import flashmask_attention  # noqa: E402

from gpu_common import FMV3_ENV, cuda_time_ms, fmv3_applies, load_fmv3, unmasked_pairs  # noqa: E402
from results import update_section  # noqa: E402


def doc_lengths(seqlen, seed):
    """Random document split of one sequence (as in the FlashMask paper's
    causal-document benchmarks: a handful of documents of random length)."""
    rng = np.random.default_rng(seed)
    n_docs = int(rng.integers(3, 11))
    cuts = np.sort(rng.choice(np.arange(1, seqlen), size=n_docs - 1, replace=False))
    return np.diff(np.concatenate([[0], cuts, [seqlen]]))


def make_mask(name, batch, seqlen):
    """(startend_row_indices int32 [B,1,S,1] or None, causal, doc ids [B,S] or None)."""
    if name == "causal":
        return None, True, None
    if name == "causal_document":
        lts = np.empty((batch, seqlen), dtype=np.int32)
        docs = np.empty((batch, seqlen), dtype=np.int32)
        for b in range(batch):
            start = 0
            for d, length in enumerate(doc_lengths(seqlen, seed=b)):
                lts[b, start:start + length] = start + length
                docs[b, start:start + length] = d
                start += length
        return lts.reshape(batch, 1, seqlen, 1), True, docs
    raise ValueError(name)


BSHD_IMPLS = ("flashmask", "fmv3")  # take q, k, v as [B, S, H, D]; the torch baselines [B, H, S, D]


def bench_config(mask_name, seqlen, args, fmv3_fn):
    dev = "cuda"
    batch = args.tokens // seqlen
    h, d = args.heads, args.head_dim
    idx_np, causal, docs = make_mask(mask_name, batch, seqlen)
    pairs = unmasked_pairs(idx_np, causal, seqlen, seqlen, batch)
    fwd_flops = 4.0 * d * h * pairs
    torch.manual_seed(0)
    q = torch.randn(batch, seqlen, h, d, device=dev, dtype=torch.bfloat16, requires_grad=True)
    k = torch.randn(batch, seqlen, h, d, device=dev, dtype=torch.bfloat16, requires_grad=True)
    v = torch.randn(batch, seqlen, h, d, device=dev, dtype=torch.bfloat16, requires_grad=True)
    dout = torch.randn(batch, seqlen, h, d, device=dev, dtype=torch.bfloat16)
    idx = torch.from_numpy(idx_np).to(dev) if idx_np is not None else None
    # [B, H, S, D] copies for the torch baselines (layout change outside the timing)
    qt, kt, vt = (t.detach().transpose(1, 2).contiguous().requires_grad_() for t in (q, k, v))
    doutt = dout.transpose(1, 2).contiguous()

    impls = {}

    def ours_fwd():
        return flashmask_attention(q, k, v, idx, causal=causal)

    impls["flashmask"] = ours_fwd
    if fmv3_fn is not None and fmv3_applies(d, h, h):
        no_op = torch.full((batch, 1, seqlen, 1), seqlen, dtype=torch.int32, device=dev)  # LTS = S
        idx_v3 = idx if idx is not None else no_op
        impls["fmv3"] = lambda: fmv3_fn(q, k, v, idx_v3, causal=causal)

    from torch.nn.attention import SDPBackend, sdpa_kernel

    if mask_name == "causal":
        def sdpa(backend):
            def f():
                with sdpa_kernel(backend):
                    return torch.nn.functional.scaled_dot_product_attention(qt, kt, vt, is_causal=True)
            return f
        impls["sdpa_flash"] = sdpa(SDPBackend.FLASH_ATTENTION)
        impls["sdpa_cudnn"] = sdpa(SDPBackend.CUDNN_ATTENTION)

    if not args.no_flex:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        flex = torch.compile(flex_attention, dynamic=False)
        if docs is None:
            def mask_mod(b, hh, qi, kj):
                return qi >= kj
        else:
            doc_t = torch.from_numpy(docs).to(dev)

            def mask_mod(b, hh, qi, kj):
                return (qi >= kj) & (doc_t[b, qi] == doc_t[b, kj])
        block_mask = create_block_mask(mask_mod, batch if docs is not None else None, None, seqlen,
                                       seqlen, device=dev)
        impls["flex_attention"] = lambda: flex(qt, kt, vt, block_mask=block_mask)

    results = {}
    for name, fwd in impls.items():
        grads_t = name not in BSHD_IMPLS
        try:
            t_fwd = cuda_time_ms(lambda: fwd(), args.warmup, args.reps)

            def fwd_bwd():
                out = fwd()
                out.backward(doutt if grads_t else dout)

            t_fb = cuda_time_ms(fwd_bwd, args.warmup, args.reps)
            results[name] = {
                "fwd_ms": t_fwd,
                "fwd_bwd_ms": t_fb,
                "fwd_tflops": fwd_flops / t_fwd / 1e9,
                "fwd_bwd_tflops": 3.5 * fwd_flops / t_fb / 1e9,
            }
        except Exception as e:  # noqa: BLE001 - report, keep benchmarking the rest
            results[name] = {"error": f"{type(e).__name__}: {e}"[:300]}
        for t in (q, k, v, qt, kt, vt):
            t.grad = None
        print(mask_name, seqlen, name, results[name], flush=True)
    return {"mask": mask_name, "seqlen": seqlen, "batch": batch, "heads": h, "head_dim": d,
            "unmasked_pairs_per_head": pairs, "fwd_flops": fwd_flops, "results": results}


def markdown(rows, meta):
    lines = [
        "## FlashMask CUDA kernels vs FlexAttention / SDPA (GPU)",
        "",
        f"- date: {meta['date']}",
        f"- device: {meta['device']}",
        f"- torch: {meta['torch']}",
        f"- command: `{meta['command']}`",
        f"- B*S = {meta['tokens']} tokens, H = {meta['heads']}, D = {meta['head_dim']}, bf16; "
        "sparsity-aware FLOPs (fwd = 4*D*H*unmasked pairs, bwd = 2.5 * fwd); "
        "median of CUDA-event timings.",
        "",
        "| mask | S | impl | fwd ms | fwd TFLOP/s | fwd ratio | fwd+bwd ms | fwd+bwd TFLOP/s | fwd+bwd ratio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ours = r["results"].get("flashmask", {})
        for name, res in r["results"].items():
            if "error" in res:
                lines.append(f"| {r['mask']} | {r['seqlen']} | {name} | error: {res['error'][:80]} |||||")
                continue
            rf = res["fwd_ms"] / ours["fwd_ms"] if "fwd_ms" in ours else float("nan")
            rb = res["fwd_bwd_ms"] / ours["fwd_bwd_ms"] if "fwd_bwd_ms" in ours else float("nan")
            lines.append(
                f"| {r['mask']} | {r['seqlen']} | {name} | {res['fwd_ms']:.2f} | {res['fwd_tflops']:.0f} | "
                f"{rf:.2f} | {res['fwd_bwd_ms']:.2f} | {res['fwd_bwd_tflops']:.0f} | {rb:.2f} |")
    lines.append("")
    lines.append("ratio = (other impl's time) / (flashmask's time): flashmask's speed-up over that impl.")
    if any("fmv3" in r["results"] for r in rows):
        lines.append("fmv3 = the official FlashMask V3 (PaddlePaddle/flash-attention, its own torch interface, "
                     "built outside this project); causal gets a no-op mask column.")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seqlens", type=int, nargs="+", default=[8192, 32768])
    ap.add_argument("--masks", nargs="+", default=["causal", "causal_document"])
    ap.add_argument("--tokens", type=int, default=128 * 1024)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--no-flex", action="store_true")
    ap.add_argument("--fmv3", default=os.environ.get(FMV3_ENV) or None,
                    help=f"the official V3 baseline's build dir (.anchors/fmv3/build; default ${FMV3_ENV})")
    args = ap.parse_args()
    fmv3_fn = load_fmv3(args.fmv3) if args.fmv3 else None
    rows = [bench_config(m, s, args, fmv3_fn) for m in args.masks for s in args.seqlens]
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "command": " ".join([f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("FLASHMASK_")]
                            + ["python"] + sys.argv),
        "tokens": args.tokens, "heads": args.heads, "head_dim": args.head_dim,
    }
    out_dir = os.environ.get("OUT") or os.path.join(ROOT, "benchmarks", "out")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "gpu_bench.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)
    md = markdown(rows, meta)
    with open(os.path.join(out_dir, "gpu_sm80.md"), "w") as f:
        f.write(md)
    update_section("gpu_sm80", md)
    print(md)


if __name__ == "__main__":
    main()
