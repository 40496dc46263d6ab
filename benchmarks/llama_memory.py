"""Longest packed sequence one Llama training step fits in a memory budget:
dense [B, 1, S, S] mask vs FlashMask, on CPU.

Each probe is a fresh subprocess running one step (forward, backward, AdamW)
of a paddleformers Llama on one row of S tokens packed with causal documents,
through paddleformers' "eager" attention, which expands the indices into a
dense [B, 1, S, S] mask in every layer, or our "flashmask" attention on them.
(The 2026-11-23 results in RESULTS.md were measured when the dense side was
"sdpa" on a batch-level bool mask.) Its peak RSS (process total, Paddle itself
included) must stay within the budget; the parent watches it and kills a probe
as soon as it goes over, so a probe never takes much more than the budget.
S doubles until a probe fails, then bisects.

    python benchmarks/llama_memory.py                  # 2 GiB, writes benchmarks/llama_memory.md
    python benchmarks/llama_memory.py --budget_gib 4 --out /tmp/mem.md   # ~2x longer S, slower

The 2 GiB default keeps the whole search to about 10 minutes on 2 CPU cores.
"""
import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time

from results import update_section

HERE = os.path.dirname(os.path.abspath(__file__))
try:
    import paddle_flashmask  # noqa: F401
except ImportError:  # a source checkout with the op built in place
    sys.path.insert(0, os.path.dirname(HERE))
MODEL = dict(vocab_size=259, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2)
DOC_LEN = 512  # packed documents per row: DOC_LEN tokens each, the last one shorter


def probe(seqlen, flash_mask):
    """One training step at seqlen (runs in the child); prints a JSON line."""
    import numpy as np
    import paddle
    from paddleformers.transformers import LlamaConfig, LlamaForCausalLM

    from paddle_flashmask.integrations.paddleformers import attention_inputs, use_flash_mask
    from paddle_flashmask.masks import causal_document_mask

    paddle.set_device("cpu")
    paddle.seed(0)
    model = LlamaForCausalLM(LlamaConfig(max_position_embeddings=seqlen, **MODEL))
    use_flash_mask(model, flash_mask)
    optimizer = paddle.optimizer.AdamW(learning_rate=1e-3, parameters=model.parameters())
    docs = [DOC_LEN] * (seqlen // DOC_LEN) + ([seqlen % DOC_LEN] if seqlen % DOC_LEN else [])
    ids = np.random.default_rng(0).integers(0, MODEL["vocab_size"], size=(1, seqlen))
    positions = np.concatenate([np.arange(n) for n in docs])[None]
    mask = attention_inputs(causal_document_mask([docs], seqlen))
    inputs = {k: paddle.to_tensor(v) for k, v in
              dict(input_ids=ids, position_ids=positions, labels=ids, **mask).items()}
    start = time.perf_counter()
    loss = model(**inputs)[0]
    loss.backward()
    optimizer.step()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"loss": float(loss), "seconds": seconds, "peak_rss": peak}), flush=True)


def run_probe(seqlen, flash_mask, budget):
    """(fits, peak RSS bytes, step seconds) of one probe; killed once over budget."""
    import psutil

    cmd = [sys.executable, os.path.abspath(__file__), "--probe", str(seqlen),
           "--flash_mask" if flash_mask else "--no-flash_mask"]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    proc, watched_peak = psutil.Process(child.pid), 0
    while child.poll() is None:
        try:
            watched_peak = max(watched_peak, proc.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        if watched_peak > budget:
            child.kill()
            child.wait()
            return False, watched_peak, None
        time.sleep(0.02)
    lines = [line for line in child.stdout.read().splitlines() if line.startswith("{")]
    if child.returncode != 0 or not lines:
        return False, watched_peak, None  # e.g. an allocation failure
    result = json.loads(lines[-1])
    return result["peak_rss"] <= budget, result["peak_rss"], result["seconds"]


def longest_fitting(flash_mask, budget, start, log):
    """Largest S (to ~6%) whose step fits: double from `start`, then bisect."""
    def fits(seqlen):
        ok, peak, seconds = run_probe(seqlen, flash_mask, budget)
        log.append({"flash_mask": flash_mask, "seqlen": seqlen, "fits": ok, "peak_rss": peak,
                    "seconds": seconds})
        print(f"  {'flashmask' if flash_mask else 'dense    '} S={seqlen:>7,}: "
              f"{'fits' if ok else 'over'} (peak RSS {peak / 2**30:.2f} GiB"
              f"{f', step {seconds:.1f} s' if seconds else ''})", flush=True)
        return ok

    lo, hi = 0, start
    while fits(hi):
        lo, hi = hi, hi * 2
    while hi - lo > max(64, lo // 16):
        mid = (lo + hi) // 2 // 64 * 64
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo, hi


def machine():
    import paddle
    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM; "
            f"Python {platform.python_version()}, Paddle {paddle.__version__}")


def report(results, log, budget_gib, command, minutes):
    row = {True: None, False: None}
    for flash_mask, (lo, hi) in results.items():
        best = max((p for p in log if p["flash_mask"] == flash_mask and p["fits"]),
                   key=lambda p: p["seqlen"], default=None)
        row[flash_mask] = (lo, hi, best)
    lines = [
        f"## Llama training step: longest packed sequence in {budget_gib:g} GiB (CPU)",
        "",
        f"- date: {datetime.date.today().isoformat()}",
        f"- machine: {machine()}",
        f"- command: `{command}`",
        f"- model: paddleformers LlamaForCausalLM {MODEL}, float32, batch 1, causal documents "
        f"of {DOC_LEN} tokens packed per row; one step = forward + backward + AdamW",
        "- dense: paddleformers' sdpa attention on the bool `attention_mask` [1, 1, S, S]; "
        "flashmask: our op on `attn_mask_startend_row_indices` [1, 1, S, 1] (same data, same loss)",
        "- memory: peak RSS of the whole probe process (Paddle's own ~0.3-0.4 GiB included)",
        f"- search: {len(log)} probes in {minutes:.0f} min; load average at the end "
        f"{os.getloadavg()[0]:.1f} (step times are wall clock and move with the machine's load; "
        "peak memory does not)",
        "",
        "| mask | longest S that fits | peak RSS there | step time there | first S over |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for flash_mask, name in ((False, "dense [B, 1, S, S]"), (True, "FlashMask indices")):
        lo, hi, best = row[flash_mask]
        peak = f"{best['peak_rss'] / 2**30:.2f} GiB" if best else "-"
        step = f"{best['seconds']:.1f} s" if best else "-"
        lines.append(f"| {name} | {lo:,} | {peak} | {step} | {hi:,} |")
    if row[False][0]:
        lines += ["", f"FlashMask fits {row[True][0] / row[False][0]:.1f}x longer sequences."]
    lines += ["", "Probes:", "", "| mask | S | fits | peak RSS | step time |",
              "| --- | ---: | --- | ---: | ---: |"]
    for p in log:
        lines.append(f"| {'FlashMask' if p['flash_mask'] else 'dense'} | {p['seqlen']:,} | "
                     f"{'yes' if p['fits'] else 'no'} | {p['peak_rss'] / 2**30:.2f} GiB | "
                     f"{'%.1f s' % p['seconds'] if p['seconds'] else 'killed / failed'} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget_gib", type=float, default=2.0)
    parser.add_argument("--start", type=int, default=2048, help="first S probed")
    parser.add_argument("--out", help="also write the markdown here (it always goes to RESULTS.md)")
    parser.add_argument("--probe", type=int, help=argparse.SUPPRESS)  # child mode: S
    parser.add_argument("--flash_mask", action=argparse.BooleanOptionalAction, default=True,
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        return probe(args.probe, args.flash_mask)
    budget, log, results, started = int(args.budget_gib * 2**30), [], {}, time.time()
    for flash_mask in (False, True):
        results[flash_mask] = longest_fitting(flash_mask, budget, args.start, log)
    command = " ".join(["python benchmarks/llama_memory.py", *sys.argv[1:]])
    text = report(results, log, args.budget_gib, command, (time.time() - started) / 60)
    update_section("llama_memory", text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()
