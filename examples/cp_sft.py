"""Context-parallel SFT with FlashMask on paddleformers' Trainer: the tiny Llama
learns the answers of packed preference groups (one prompt, then its two answers,
under a share-question mask), each row's tokens sharded over --cp_degree ranks.

    python -m paddle.distributed.launch --nproc_per_node 2 examples/cp_sft.py --cp_degree 2
    python examples/cp_sft.py --cp_degree 1      # the same run in one process: the reference

Every rank takes the same packed row at each step and keeps the tokens
balance_shards gives it, with their original position ids for RoPE. The model's
attention is context_parallel_flashmask_attention on the full mask, registered as
paddleformers' attention "flashmask_cp". The loss is the global token mean (local
sum / global count). The Trainer treats the ranks as data parallel and averages
their gradients, so each rank scales its loss by the world size: the average is
then the sum of the partial gradients, and the loss curve equals the one-process
run's (fp32, to about 1e-6).
"""
import argparse
import os
import sys
import tempfile

import paddle
import paddle.distributed as dist
import paddle.nn.functional as F

import common  # noqa: F401  (finds paddle_flashmask in a source checkout)
from common.preference_data import IGNORE, preference_batches
from common.report import RunReport, format_summary, write_summary
from common.run import ROOT, quiet_paddleformers
from paddle_flashmask.distributed import balance_shards, context_parallel_flashmask_attention
from paddle_flashmask.integrations.paddleformers import INDICES_KEY, use_flash_mask

ATTENTION_KEY = "flashmask_cp"
TINY_LLAMA = os.path.join(ROOT, "examples", "tiny_llama")
DATA = os.path.join(ROOT, "examples", "data", "preference.jsonl")


class ContextParallelAttention:
    """paddleformers' attention signature on context_parallel_flashmask_attention.
    `plan` is the ShardPlan of the row being trained (set before each forward)."""

    def __init__(self, strategy):
        self.strategy, self.plan = strategy, None

    def __call__(self, module, query, key, value, attention_mask=None,
                 attn_mask_startend_row_indices=None, dropout=0.0, sink=None, scaling=None,
                 **kwargs):
        if attn_mask_startend_row_indices is None or sink is not None or dropout:
            raise ValueError(f"{ATTENTION_KEY} needs {INDICES_KEY}, no sink and no dropout")
        query, key, value = (t.transpose([0, 2, 1, 3]) for t in (query, key, value))
        out = context_parallel_flashmask_attention(
            query, key, value, attn_mask_startend_row_indices, causal=True,
            strategy=self.strategy, shard_plan=self.plan, softmax_scale=scaling)
        return out.reshape([0, 0, out.shape[2] * out.shape[3]]), None


def trainer_class():
    from paddleformers.trainer import Trainer

    class ContextParallelTrainer(Trainer):
        """compute_loss shards the full row it is given and runs the sharded model."""

        def __init__(self, attention, **kwargs):
            super().__init__(**kwargs)
            self.attention = attention  # the model's attention: takes each row's plan

        def compute_loss(self, model, inputs, return_outputs=False):
            world, rank = dist.get_world_size(), dist.get_rank()
            self.attention.plan = plan = balance_shards(inputs[INDICES_KEY], True, world)
            logits = model(input_ids=plan.shard(inputs["input_ids"], rank),
                           position_ids=plan.shard(inputs["position_ids"], rank),
                           **{INDICES_KEY: inputs[INDICES_KEY]})[0]
            labels = plan.shard(inputs["labels"], rank)
            local_sum = F.cross_entropy(logits.astype("float32"), labels.unsqueeze(-1),
                                        ignore_index=IGNORE, reduction="sum")
            count = (inputs["labels"] != IGNORE).astype("float32").sum()  # the whole row's
            loss = local_sum / count * world  # the Trainer averages gradients over ranks
            return (loss, logits) if return_outputs else loss

    return ContextParallelTrainer


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cp_degree", type=int, default=2,
                        help="ranks sharing each row; must equal the launched processes")
    parser.add_argument("--strategy", choices=["ring", "all_gather"], default="ring",
                        help="how ranks exchange K/V (see docs/distributed.md)")
    parser.add_argument("--max_seq_len", type=int, default=256, help="packed row length")
    parser.add_argument("--max_steps", type=int, default=10, help="optimizer steps, one row each")
    parser.add_argument("--learning_rate", type=float, default=3e-3,
                        help="AdamW, decayed linearly to 0 (the Trainer's default)")
    parser.add_argument("--summary_json", help="also write the summary here (rank 0)")
    args = parser.parse_args(argv)
    if args.cp_degree > 1:
        dist.init_parallel_env()
    if dist.get_world_size() != args.cp_degree:
        sys.exit(f"--cp_degree {args.cp_degree} needs that many processes (python -m "
                 f"paddle.distributed.launch --nproc_per_node {args.cp_degree}), "
                 f"got {dist.get_world_size()}")
    quiet_paddleformers()
    report = RunReport(f"cp_sft x{args.cp_degree}", flash_mask=True)
    train(args, report)
    if dist.get_rank() == 0:
        summary = report.summary()
        print(format_summary(summary), flush=True)
        if args.summary_json:
            write_summary(summary, args.summary_json)
    if args.cp_degree > 1:
        leave_together()


def leave_together():
    """Every rank leaves through a barrier and os._exit, without Paddle's teardown.
    Rank 0 hosts Paddle 3.3's TCP store; its libuv thread can abort the process
    (SIGABRT, in LibUVClient::readCallback) when another rank's connection closes
    while rank 0 runs its exit handlers: about 1 launch in 70, after all the work
    was done and printed."""
    dist.barrier()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def train(args, report):
    from paddleformers.nn.attention.interface import AttentionInterface
    from paddleformers.trainer import TrainingArguments
    from paddleformers.transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    rows = preference_batches(AutoTokenizer.from_pretrained(TINY_LLAMA), DATA, args.max_seq_len, 1)
    attention = ContextParallelAttention(args.strategy)
    AttentionInterface.register(ATTENTION_KEY, attention)
    config = AutoConfig.from_pretrained(TINY_LLAMA)
    use_flash_mask(config, True)
    config._attn_implementation = ATTENTION_KEY
    config.seq_length = args.max_seq_len  # the Trainer's tokens/s: rows x this per second
    paddle.seed(1)
    model = AutoModelForCausalLM.from_config(config)
    with tempfile.TemporaryDirectory() as scratch:
        training_args = TrainingArguments(
            output_dir=scratch, max_steps=args.max_steps, learning_rate=args.learning_rate,
            warmup_steps=0, logging_steps=1, per_device_train_batch_size=1, save_strategy="no",
            seed=1, device="cpu" if not paddle.is_compiled_with_cuda() else "gpu",
            remove_unused_columns=False, amp_master_grad=False, dataloader_shuffle=False,
            sharding="", sharding_parallel_size=1)
        # Unshuffled, the data-parallel sampler deals item i to rank i % world: every row
        # repeated `world` times gives each rank the same row at each step.
        dealt = [row for row in rows for _ in range(args.cp_degree)]
        trainer = trainer_class()(attention, model=model, args=training_args, train_dataset=dealt,
                                  data_collator=_row,
                                  callbacks=[report] if dist.get_rank() == 0 else None)
        trainer.train()


def _row(items):
    keys = ("input_ids", "position_ids", "labels", INDICES_KEY)
    return {k: paddle.to_tensor(items[0][k]) for k in keys}


if __name__ == "__main__":
    main()
