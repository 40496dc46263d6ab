"""The fine-tuning examples: each trains a few steps with the loss finite and
falling; FlashMask and the dense mask give the same run; packed preference
answers score exactly as the unpacked [prompt, answer] sequences."""
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

pytest.importorskip("paddleformers")

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
sys.path.insert(0, EXAMPLES)

import dpo  # noqa: E402
import lora  # noqa: E402
import rm  # noqa: E402
import sft  # noqa: E402
from common.cli import example_parser, resolve  # noqa: E402
from common.model import build_model  # noqa: E402
from common.packing import read_jsonl  # noqa: E402
from common.preference_data import encode, preference_batches  # noqa: E402
from common.tokenizer import ByteTokenizer  # noqa: E402

from paddle_flashmask.integrations import paddleformers as pf_flashmask  # noqa: E402


@pytest.fixture(autouse=True)
def restore_attention_registry():
    """The examples register our op with paddleformers; leave its registry as found."""
    yield
    pf_flashmask.disable()


SMALL = ["--max_steps", "8", "--max_seq_len", "128", "--batch_size", "2", "--device", "cpu"]


@pytest.mark.parametrize("example", [sft, lora, dpo, rm], ids=lambda m: m.__name__)
def test_example_loss_falls(example):
    summary = example.main(SMALL)
    losses = np.array(summary["losses"])
    assert len(losses) == 8 and np.isfinite(losses).all()
    assert summary["loss_end"] < summary["loss_start"], losses
    assert summary["tokens_per_s"] > 0 and summary["peak_memory_bytes"] > 0


@pytest.mark.parametrize("example", [sft, dpo], ids=lambda m: m.__name__)
def test_flash_mask_and_dense_mask_train_alike(example):
    """causal-document (sft) and share-question (dpo) packing, 3 optimizer steps."""
    args = ["--max_steps", "3", "--max_seq_len", "96", "--batch_size", "2", "--device", "cpu"]
    flash = example.main(args)
    dense = example.main(args + ["--no-flash_mask"])
    assert flash["mask_shape"][-1] == 1 and dense["mask_shape"][-2:] == [96, 96]
    np.testing.assert_allclose(flash["losses"], dense["losses"], rtol=1e-4)


def test_packed_answers_score_as_unpacked_sequences():
    """Share-question packing changes nothing: each answer's log-prob equals the
    one from its own [prompt, answer] sequence with plain causal attention."""
    paddle.set_device("cpu")
    tokenizer = ByteTokenizer()
    data = os.path.join(EXAMPLES, "data", "preference.jsonl")
    batch = preference_batches(tokenizer, data, 96, 1, flash_mask=True)[0]  # one row
    args = resolve(example_parser("", "sft.jsonl").parse_args(["--device", "cpu"]))
    model = build_model(args, tokenizer.vocab_size)
    model.eval()
    with paddle.no_grad():
        packed = dpo.answer_logps(model, batch.arrays).numpy()
        unpacked = [_unpacked_logp(model, seq, prompt_len) for seq, prompt_len in
                    _groups_as_sequences(tokenizer, data, len(packed) // 2)]
    assert len(packed) == len(unpacked) >= 4
    np.testing.assert_allclose(packed, unpacked, rtol=1e-5, atol=1e-5)


def _groups_as_sequences(tokenizer, path, num_groups):
    """(prompt + answer ids, prompt length) of every answer of the first groups."""
    for record in read_jsonl(path, ("prompt", "chosen", "rejected"))[:num_groups]:
        prompt, answers = encode(tokenizer, record, 96)
        for answer in answers:
            yield prompt + answer, len(prompt)


def _unpacked_logp(model, seq, prompt_len):
    logits = model(input_ids=paddle.to_tensor([seq]))[0][0].astype("float32")
    logp = paddle.nn.functional.log_softmax(logits, axis=-1).numpy()
    return sum(logp[t - 1, seq[t]] for t in range(prompt_len, len(seq)))


def test_sft_script_runs_from_the_command_line():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (os.path.dirname(EXAMPLES), os.environ.get("PYTHONPATH")) if p))
    run = subprocess.run([sys.executable, os.path.join(EXAMPLES, "sft.py"), "--max_steps", "3",
                          "--max_seq_len", "64", "--no-flash_mask"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "[sft] flash_mask=off" in run.stdout and "tokens/s" in run.stdout
