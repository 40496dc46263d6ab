"""What every example prints: progress with the loss, then a summary with
tokens/s, peak memory and, for preference runs, accuracy and reward margin.
A paddleformers TrainerCallback, so it reads the Trainer's own logs."""
import json
import resource

import paddle
from paddleformers.trainer import TrainerCallback

SMOOTH = 5  # logged steps averaged for the start / end values
LOGGED = {"loss": "loss", "tokens_per_s": "interval_tokens_per_second_per_device",
          "accuracy": "rewards/accuracies", "margin": "rewards/margins"}


class RunReport(TrainerCallback):
    def __init__(self, name, flash_mask):
        self.name, self.flash_mask = name, flash_mask
        self.steps = []  # one dict per logged training step

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs:
            return
        step = {key: float(logs[source]) for key, source in LOGGED.items() if source in logs}
        self.steps.append(step)
        line = f"[{self.name}] step {state.global_step}/{state.max_steps} loss {step['loss']:.4f}"
        if "tokens_per_s" in step:
            line += f" | {step['tokens_per_s']:,.0f} tokens/s"
        if "accuracy" in step:
            line += f" | accuracy {step['accuracy']:.2f} margin {step['margin']:.4f}"
        print(line, flush=True)

    def summary(self):
        if not self.steps:
            raise RuntimeError(f"[{self.name}] the Trainer logged no training step")
        n = min(SMOOTH, max(1, len(self.steps) // 2))
        timed = self.steps[1:] or self.steps  # step 1 includes the warm-up
        mem, mem_kind = peak_memory()
        result = {
            "example": self.name, "flash_mask": self.flash_mask, "steps": len(self.steps),
            "losses": [r["loss"] for r in self.steps], "smoothed_over": n,
            "loss_start": _mean(self.steps[:n], "loss"), "loss_end": _mean(self.steps[-n:], "loss"),
            "tokens_per_s": _mean(timed, "tokens_per_s") if "tokens_per_s" in timed[0] else 0.0,
            "peak_memory_bytes": mem, "peak_memory_kind": mem_kind, "device": paddle.get_device(),
        }
        if "accuracy" in self.steps[0]:
            result["accuracy"] = _mean(self.steps[-n:], "accuracy")
            result["margin"] = _mean(self.steps[-n:], "margin")
        return result


def _mean(rows, key):
    return sum(row[key] for row in rows) / len(rows)


def peak_memory():
    """(bytes, what was measured): GPU max allocated on GPU, else the process's peak RSS."""
    if paddle.get_device().startswith("gpu"):
        return paddle.device.cuda.max_memory_allocated(), "GPU max allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "peak RSS"  # Linux: KiB


def format_summary(s):
    mode = "FlashMask (our op)" if s["flash_mask"] else "dense mask (paddleformers eager)"
    lines = [f"[{s['example']}] flash_mask={'on' if s['flash_mask'] else 'off'}: {mode} on "
             f"{s['device']}",
             f"[{s['example']}] loss {s['loss_start']:.4f} -> {s['loss_end']:.4f} (mean of the "
             f"first / last {s['smoothed_over']} of {s['steps']} steps)",
             f"[{s['example']}] {s['tokens_per_s']:,.0f} tokens/s (step 1 untimed) | "
             f"{s['peak_memory_kind']} {s['peak_memory_bytes'] / 2**20:,.0f} MiB"]
    if "accuracy" in s:
        lines.append(f"[{s['example']}] preference accuracy {s['accuracy']:.2f} | reward margin "
                     f"{s['margin']:.4f} (mean of the last {s['smoothed_over']} steps)")
    return "\n".join(lines)


def write_summary(summary, path):
    with open(path, "w") as f:
        json.dump(summary, f)
