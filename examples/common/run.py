"""Run a paddleformers training stage in this process, exactly as
`paddleformers-cli train examples/cli/<stage>.yaml` does (its own SFTTrainer /
DPOTrainer, datasets, packing, collators and losses), with the `flash_mask`
switch and the run report of every example."""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import warnings

import yaml

from paddle_flashmask.integrations import paddleformers as pf_flashmask
from paddle_flashmask.integrations.paddleformers import add_flash_mask_argument

from .report import RunReport, format_summary, write_summary

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI_DIR = os.path.join(ROOT, "examples", "cli")
PATH_KEYS = ("model_name_or_path", "train_dataset_path", "eval_dataset_path")


def example_main(script, name, stage, description, argv=None, compare_dense=False, train=None,
                 **fixed):
    """The command line of an example: one run in the mode --flash_mask picks, or
    with --compare_dense both modes side by side. `fixed`: config keys the
    example sets (lora=True, ...); `train`: see run(). Returns the summary (or both)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = example_parser(description, stage, compare_dense).parse_args(argv)
    if args.compare_dense:
        flash, dense = run_both_modes(script, argv)
        print(format_comparison(flash, dense), flush=True)
        return flash, dense
    config, flash_mask = training_config(args, stage, **fixed)
    return run(name, config, flash_mask, args.summary_json, train)


def example_parser(description, stage, compare_dense=False):
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML of paddleformers training keys (and `flash_mask`) "
                        f"merged over examples/cli/{stage}.yaml")
    add_flash_mask_argument(parser, default=None)  # None: flash_mask from the YAML, else on
    parser.add_argument("--model_name_or_path",
                        help="a paddleformers checkpoint, weights loaded (default: the tiny Llama "
                             "in examples/tiny_llama, built from its config)")
    parser.add_argument("--train_dataset_path", help="erniekit JSONL (default: examples/data)")
    parser.add_argument("--max_seq_len", type=int, help="packed row length")
    parser.add_argument("--max_steps", type=int)
    parser.add_argument("--learning_rate", type=float)
    parser.add_argument("--output_dir", help="default: a temporary directory")
    parser.add_argument("--summary_json", help="also write the summary here")
    parser.add_argument("--compare_dense", action=argparse.BooleanOptionalAction,
                        default=compare_dense,
                        help="run FlashMask and the dense baseline, each in its own process, "
                             "and print them side by side")
    return parser


def training_config(args, stage, **fixed):
    """(paddleformers config dict, flash_mask) from the stage YAML, the example's
    `fixed` keys, --config and the flags, each over the one before."""
    config = _read_yaml(os.path.join(CLI_DIR, f"{stage}.yaml"))
    del config["output_dir"]  # a temporary one unless --config or --output_dir names one
    config.update(fixed)  # the example's own defaults, under --config and the flags
    if args.config:
        config.update(_read_yaml(args.config))
    flash_mask = config.pop("flash_mask", True)
    if args.flash_mask is not None:
        flash_mask = args.flash_mask
    if not isinstance(flash_mask, bool):
        raise TypeError(f"flash_mask must be true or false, got {flash_mask!r}")
    for key in ("model_name_or_path", "train_dataset_path", "max_seq_len", "max_steps",
                "learning_rate", "output_dir"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    if args.model_name_or_path:
        config["continue_training"] = True  # a real checkpoint: load its weights
    if args.train_dataset_path:
        config["eval_dataset_path"] = args.train_dataset_path
    for key in PATH_KEYS:  # the YAMLs name paths from the repository root
        in_repo = os.path.join(ROOT, config[key])
        if not os.path.exists(config[key]) and os.path.exists(in_repo):
            config[key] = in_repo
    config.pop("custom_register_path", None)  # registered in this process instead
    return config, flash_mask


def run(name, config, flash_mask, summary_json=None, train=None):
    """Train with paddleformers' workflow for config["stage"], or with
    train(config, report) when given; print and return the summary."""
    from paddleformers.cli.train.tuner import run_tuner
    from paddleformers.trainer import trainer as pf_trainer

    quiet_paddleformers()
    if flash_mask:
        pf_flashmask.enable()
    config = dict(config, _attn_implementation="flashmask" if flash_mask else "eager",
                  use_attn_mask_startend_row_indices=True)
    report = RunReport(name, flash_mask)
    if train is not None:
        train(config, report)
    else:
        pf_trainer.DEFAULT_CALLBACKS.append(report)  # every Trainer the workflow builds reports
        try:
            with tempfile.TemporaryDirectory() as scratch:
                config.setdefault("output_dir", os.path.join(scratch, name))
                run_tuner(config)
        finally:
            pf_trainer.DEFAULT_CALLBACKS.remove(report)
    summary = report.summary()
    print(format_summary(summary), flush=True)
    if summary_json:
        write_summary(summary, summary_json)
    return summary


def quiet_paddleformers():
    """Warnings only from paddleformers' logger: the run report prints the progress."""
    from paddleformers.utils.log import logger

    logger.set_level("WARNING")
    warnings.filterwarnings("ignore", message=".*(amp_guard|AmpScaler).*")  # AMP is off on CPU


def _read_yaml(path):
    with open(path) as f:
        config = yaml.safe_load(f) or {}
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a mapping of training keys")
    return config


def run_both_modes(script, argv):
    """Run `script` once with FlashMask and once with the dense baseline, each in its
    own process (so each peak memory is its own); return the two summaries."""
    summaries = []
    with tempfile.TemporaryDirectory() as scratch:
        for flag in ("--flash_mask", "--no-flash_mask"):
            path = os.path.join(scratch, flag.strip("-") + ".json")
            cmd = [sys.executable, script, *argv, flag, "--no-compare_dense",
                   "--summary_json", path]
            subprocess.run(cmd, check=True)
            with open(path) as f:
                summaries.append(json.load(f))
    return summaries


def format_comparison(flash, dense):
    rows = [("loss start -> end", lambda s: f"{s['loss_start']:.4f} -> {s['loss_end']:.4f}"),
            ("tokens/s", lambda s: f"{s['tokens_per_s']:,.0f}"),
            (flash["peak_memory_kind"] + " MiB",
             lambda s: f"{s['peak_memory_bytes'] / 2**20:,.0f}")]
    lines = [f"{'':<22}{'FlashMask':>20}{'dense mask':>20}"]
    lines += [f"{label:<22}{cell(flash):>20}{cell(dense):>20}" for label, cell in rows]
    speedup = flash["tokens_per_s"] / dense["tokens_per_s"] if dense["tokens_per_s"] else 0.0
    lines.append(f"FlashMask: {speedup:.2f}x the dense tokens/s; max |loss difference| "
                 f"{max(abs(a - b) for a, b in zip(flash['losses'], dense['losses'])):.1e}")
    return "\n".join(lines)
