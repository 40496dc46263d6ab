"""The fine-tuning examples and paddleformers-cli YAMLs: each trains a few steps
on paddleformers' own Trainer with the loss finite and falling, FlashMask and
the dense baseline give the same run, `paddleformers-cli train` runs our kernel,
and packed preference answers score exactly as unpacked sequences."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import paddle
import pytest

pytest.importorskip("paddleformers")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
sys.path.insert(0, EXAMPLES)

import rm  # noqa: E402
from common.packing import read_jsonl  # noqa: E402
from common.run import example_parser, training_config  # noqa: E402
from common.preference_data import encode, preference_batches  # noqa: E402

from paddle_flashmask.integrations import paddleformers as pf_flashmask  # noqa: E402

TIMEOUT = 300


def run_example(script, *args, tmp_path):
    """Run examples/<script> in its own process; return its stdout and summary."""
    summary = tmp_path / f"{script}.json"
    cmd = [sys.executable, os.path.join(EXAMPLES, script), *args, "--summary_json", str(summary)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout, (json.loads(summary.read_text()) if summary.exists() else None)


@pytest.mark.parametrize("script", ["lora.py", "dpo.py", "rm.py"])
def test_example_trains_on_paddleformers(script, tmp_path):
    out, summary = run_example(script, "--max_steps", "8", "--max_seq_len", "256",
                               tmp_path=tmp_path)
    losses = np.array(summary["losses"])
    assert len(losses) == 8 and np.isfinite(losses).all() and summary["flash_mask"]
    assert summary["loss_end"] < summary["loss_start"], losses
    assert summary["tokens_per_s"] > 0 and summary["peak_memory_bytes"] > 0
    assert "step 8/8 loss" in out and "tokens/s" in out and "MiB" in out
    if script != "lora.py":  # preference runs report accuracy and margin
        assert 0 <= summary["accuracy"] <= 1 and np.isfinite(summary["margin"])
        assert "preference accuracy" in out and "reward margin" in out


def test_main_demo_compares_flash_mask_with_dense(tmp_path):
    """sft.py (README command 1) runs both modes: same losses, both reported."""
    out, _ = run_example("sft.py", "--max_steps", "4", "--max_seq_len", "512", tmp_path=tmp_path)
    assert "flash_mask=on" in out and "flash_mask=off" in out
    table = re.search(r"max \|loss difference\| (\S+)", out)
    assert table and float(table.group(1)) <= 1e-4 * 6, out[-2000:]  # losses ~6, rtol 1e-4
    assert re.search(r"tokens/s\s+[\d,]+\s+[\d,]+", out) and "peak RSS MiB" in out


def test_flash_mask_key_in_a_config_yaml(tmp_path):
    """`flash_mask: false` in --config selects the dense baseline."""
    config = tmp_path / "dense.yaml"
    config.write_text("flash_mask: false\nmax_steps: 2\nmax_seq_len: 128\n")
    out, summary = run_example("lora.py", "--config", str(config), tmp_path=tmp_path)
    assert summary["flash_mask"] is False and summary["steps"] == 2 and "flash_mask=off" in out


def test_flash_mask_key_must_be_a_bool(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("flash_mask: maybe\n")
    args = example_parser("", "sft").parse_args(["--config", str(config)])
    with pytest.raises(TypeError, match="flash_mask"):
        training_config(args, "sft")


@pytest.mark.parametrize("stage", ["sft", "dpo"])
def test_paddleformers_cli_train_runs_our_kernel(stage, tmp_path):
    """`paddleformers-cli train examples/cli/<stage>.yaml`, a few steps on CPU, with
    custom_register_path at a probe that runs the shipped register module and
    counts the calls of our op inside the training process."""
    probe = tmp_path / "calls"
    env = dict(os.environ, PADDLE_FLASHMASK_PROBE=str(probe),
               PADDLEFORMERS_DIST_LOG=str(tmp_path / "log"),
               PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
    if not paddle.is_compiled_with_cuda():
        env["CUDA_VISIBLE_DEVICES"] = "0"  # the CLI hands the visible GPU list to its launcher
    cli = ("import sys; from paddleformers.cli.cli import main; "
           "sys.argv[0] = 'paddleformers-cli'; main()")
    cmd = [sys.executable, "-c", cli, "train", f"examples/cli/{stage}.yaml", "max_steps=3",
           "max_seq_len=256", f"output_dir={tmp_path / 'out'}",
           f"custom_register_path={os.path.join(ROOT, 'tests', 'cli_kernel_probe.py')}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT, env=env)
    log = (tmp_path / "log" / "workerlog.0").read_text()
    assert done.returncode == 0, log[-4000:]
    losses = [float(x) for x in re.findall(r" - loss: ([-\d.]+),", log)]
    assert len(losses) == 3 and np.isfinite(losses).all(), log[-3000:]
    assert int(probe.read_text()) >= 3 * 2  # 2 layers, every step (DPO: reference too)
    if stage == "dpo":
        assert "rewards/accuracies" in log and "rewards/margins" in log


def test_context_parallel_sft_matches_one_process(tmp_path):
    """cp_sft.py on paddleformers' Trainer: 2 ranks sharing each row train exactly
    as one process does."""
    script = os.path.join(EXAMPLES, "cp_sft.py")
    common_args = ["--max_steps", "3", "--max_seq_len", "128"]
    _, single = run_example("cp_sft.py", "--cp_degree", "1", *common_args, tmp_path=tmp_path)
    summary = tmp_path / "cp2.json"
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
           "--log_dir", str(tmp_path / "log"), script, "--cp_degree", "2", *common_args,
           "--summary_json", str(summary)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, cwd=tmp_path)
    log = (tmp_path / "log" / "workerlog.0").read_text()
    assert done.returncode == 0, log[-4000:]
    assert "[cp_sft x2] step 3/3 loss" in log
    cp = json.loads(summary.read_text())
    assert len(cp["losses"]) == len(single["losses"]) == 3
    np.testing.assert_allclose(cp["losses"], single["losses"], rtol=1e-5)


def test_packed_rewards_equal_unpacked_sequences():
    """Share-question packing changes nothing: each answer's reward equals the one
    from its own [prompt, answer] sequence with plain causal attention."""
    from paddleformers.transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tiny = os.path.join(EXAMPLES, "tiny_llama")
    data = os.path.join(EXAMPLES, "data", "preference.jsonl")
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    batch = preference_batches(tokenizer, data, 128, 1)[0]  # one row
    config = AutoConfig.from_pretrained(tiny)
    pf_flashmask.use_flash_mask(config, True)
    paddle.seed(0)
    model = rm.RewardModel(AutoModelForCausalLM.from_config(config))
    model.eval()
    try:
        with paddle.no_grad():
            packed = model(**rm._one_row_batch([batch])).numpy()
            unpacked = []
            for record in read_jsonl(data, ("src",))[:len(packed) // 2]:
                prompt, answers = encode(tokenizer, record, 128)
                for answer in answers:
                    ids = paddle.to_tensor([prompt + answer])
                    last = paddle.to_tensor([len(prompt) + len(answer) - 1])
                    unpacked.append(float(model(ids, paddle.arange(ids.shape[1])[None], last)[0]))
    finally:
        pf_flashmask.disable()
    assert len(packed) == len(unpacked) >= 4
    np.testing.assert_allclose(packed, unpacked, rtol=1e-5, atol=1e-5)
