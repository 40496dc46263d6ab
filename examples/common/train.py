"""The training loop shared by the examples, and what it reports: the loss
falling, tokens/s and peak memory, for the run's mask mode."""
import resource
import time

import paddle

SMOOTH = 10  # steps averaged for the start / end loss


def train(model, batches, loss_fn, args, name, parameters=None):
    """AdamW over `parameters` (default: the trainable ones) for args.max_steps,
    cycling through `batches`; loss_fn(model, batch) -> scalar loss.
    Prints and returns the summary dict."""
    parameters = parameters or [p for p in model.parameters() if not p.stop_gradient]
    optimizer = paddle.optimizer.AdamW(learning_rate=args.learning_rate, parameters=parameters,
                                       weight_decay=0.0, multi_precision=args.dtype != "float32")
    model.train()
    losses, tokens, started = [], 0, None
    bar = Progress(args.max_steps, name)
    for step in range(args.max_steps):
        batch = batches[step % len(batches)]
        loss = loss_fn(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        losses.append(float(loss))  # float() waits for the step to finish
        if step == 0:
            started = time.perf_counter()  # step 0 is warm-up: not timed
        else:
            tokens += batch.num_tokens
        bar.update(losses[-1])
    bar.close()
    elapsed = time.perf_counter() - started if started else 0.0
    summary = _summary(name, args, batches[0], losses, tokens / elapsed if elapsed else 0.0)
    print(format_summary(summary), flush=True)
    return summary


def peak_memory():
    """(bytes, what was measured): GPU max allocated on GPU, else the process's peak RSS."""
    if paddle.get_device().startswith("gpu"):
        return paddle.device.cuda.max_memory_allocated(), "GPU max allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "peak RSS"  # Linux: KiB


def _summary(name, args, batch, losses, tokens_per_s):
    n = min(SMOOTH, max(1, len(losses) // 2))
    mem, mem_kind = peak_memory()
    mask = batch.arrays.get("attn_mask_startend_row_indices", batch.arrays.get("attention_mask"))
    return {
        "example": name, "flash_mask": args.flash_mask, "mask_shape": list(mask.shape),
        "steps": len(losses), "loss_start": sum(losses[:n]) / n, "loss_end": sum(losses[-n:]) / n,
        "smoothed_over": n, "losses": losses, "tokens_per_s": tokens_per_s,
        "peak_memory_bytes": mem, "peak_memory_kind": mem_kind, "device": paddle.get_device(),
    }


def format_summary(s):
    mode = ("FlashMask: attn_mask_startend_row_indices" if s["flash_mask"]
            else "dense mask: attention_mask")
    return (f"[{s['example']}] flash_mask={'on' if s['flash_mask'] else 'off'} ({mode} "
            f"{s['mask_shape']}) on {s['device']}\n"
            f"[{s['example']}] loss {s['loss_start']:.4f} -> {s['loss_end']:.4f} "
            f"(mean of the first / last {s['smoothed_over']} of {s['steps']} steps)\n"
            f"[{s['example']}] {s['tokens_per_s']:,.0f} tokens/s (real tokens, step 0 untimed) | "
            f"{s['peak_memory_kind']} {s['peak_memory_bytes'] / 2**20:,.0f} MiB")


class Progress:
    """tqdm when installed, else a line every tenth of the run."""

    def __init__(self, total, name):
        self.total, self.name, self.step = total, name, 0
        try:
            from tqdm import tqdm
        except ImportError:
            self.bar = None
        else:
            self.bar = tqdm(total=total, desc=name, unit="step", dynamic_ncols=True)

    def update(self, loss):
        self.step += 1
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            self.bar.update(1)
        elif self.step == 1 or self.step % max(1, self.total // 10) == 0 or self.step == self.total:
            print(f"{self.name}: step {self.step}/{self.total} loss {loss:.4f}", flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
