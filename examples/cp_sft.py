"""Context-parallel SFT with FlashMask: a tiny Llama-style model trained on
packed share-question samples, the sequence sharded over `--cp_degree` ranks.

    python -m paddle.distributed.launch --nproc_per_node 2 examples/cp_sft.py --cp_degree 2

Each rank holds the tokens balance_shards gives it (with their ORIGINAL
position ids for RoPE), attention runs through
context_parallel_flashmask_attention with the full mask, the loss is the
global token mean (local sum / global count, all-reduced), and parameter
gradients are summed over the CP group (each rank saw only its tokens).
Every rank also trains the same model on the full sequence in one process
and the script checks the two loss curves agree (relative 1e-5, fp32).
--cp_degree 1 runs the single-process model only.
"""
import argparse
import copy
import sys

import numpy as np
import paddle
import paddle.distributed as dist
import paddle.nn as nn
import paddle.nn.functional as F

from common.train import Progress
from paddle_flashmask import flashmask_attention
from paddle_flashmask.distributed import balance_shards, context_parallel_flashmask_attention
from paddle_flashmask.masks import share_question_mask

VOCAB, HIDDEN, HEADS, KV_HEADS, LAYERS = 128, 64, 4, 2, 2
HEAD_DIM = HIDDEN // HEADS


def rope(x, position_ids):
    """Rotary embedding of x [B, L, H, D] at the given (original) positions [L]."""
    half = x.shape[-1] // 2
    freq = 1.0 / (10000 ** (paddle.arange(half, dtype="float32") / half))
    angle = position_ids.astype("float32").unsqueeze(-1) * freq  # [L, half]
    cos, sin = angle.cos()[None, :, None, :], angle.sin()[None, :, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return paddle.concat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)


class RMSNorm(nn.Layer):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.weight = self.create_parameter([dim], default_initializer=nn.initializer.Constant(1.0))
        self.eps = eps

    def forward(self, x):
        return x * paddle.rsqrt((x * x).mean(-1, keepdim=True) + self.eps) * self.weight


class Attention(nn.Layer):
    def __init__(self):
        super().__init__()
        self.q = nn.Linear(HIDDEN, HEADS * HEAD_DIM, bias_attr=False)
        self.kv = nn.Linear(HIDDEN, 2 * KV_HEADS * HEAD_DIM, bias_attr=False)
        self.o = nn.Linear(HEADS * HEAD_DIM, HIDDEN, bias_attr=False)

    def forward(self, x, position_ids, attend):
        b, n = x.shape[:2]
        q = rope(self.q(x).reshape([b, n, HEADS, HEAD_DIM]), position_ids)
        k, v = self.kv(x).reshape([b, n, 2, KV_HEADS, HEAD_DIM]).unbind(axis=2)
        return self.o(attend(q, rope(k, position_ids), v).reshape([b, n, HIDDEN]))


class Block(nn.Layer):
    def __init__(self):
        super().__init__()
        self.norm1, self.norm2 = RMSNorm(HIDDEN), RMSNorm(HIDDEN)
        self.attn = Attention()
        self.gate_up = nn.Linear(HIDDEN, 4 * HIDDEN, bias_attr=False)
        self.down = nn.Linear(2 * HIDDEN, HIDDEN, bias_attr=False)

    def forward(self, x, position_ids, attend):
        x = x + self.attn(self.norm1(x), position_ids, attend)
        gate, up = self.gate_up(self.norm2(x)).chunk(2, axis=-1)
        return x + self.down(F.silu(gate) * up)


class TinyLlama(nn.Layer):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, HIDDEN)
        self.blocks = nn.LayerList([Block() for _ in range(LAYERS)])
        self.norm = RMSNorm(HIDDEN)
        self.head = nn.Linear(HIDDEN, VOCAB, bias_attr=False)

    def forward(self, input_ids, position_ids, attend):
        x = self.embed(input_ids)
        for block in self.blocks:
            x = block(x, position_ids, attend)
        return self.head(self.norm(x))


def packed_batch(seqlen, rng):
    """One packed row of share-question samples: tokens, next-token labels
    (-100 where no loss: questions and padding) and the FlashMask indices."""
    groups, used = [], 0
    while used < seqlen - 40:
        question, answers = int(rng.integers(8, 24)), [int(a) for a in rng.integers(4, 12, 3)]
        groups.append((question, answers))
        used += question + sum(answers)
    mask = share_question_mask([groups], seqlen)
    tokens = rng.integers(0, VOCAB, (1, seqlen))
    labels = np.full((1, seqlen), -100, dtype=np.int64)
    offset = 0
    for question, answers in groups:  # learn the answers: label = next token inside each answer
        for a in answers:
            start = offset + question
            labels[0, start:start + a - 1] = tokens[0, start + 1:start + a]
            question += a
        offset += question
    return tokens, labels, mask


def token_loss_sum(logits, labels):
    loss = F.cross_entropy(logits, labels.unsqueeze(-1), ignore_index=-100, reduction="none")
    return loss.sum()


def progress(steps, name):
    """A progress bar on the first rank only (every rank runs the same steps)."""
    return Progress(steps, name) if dist.get_rank() == 0 else None


def train_single(model, batches, steps, lr):
    opt = paddle.optimizer.AdamW(lr, parameters=model.parameters())
    losses, bar = [], progress(steps, "single-process")
    for step in range(steps):
        tokens, labels, mask = batches[step % len(batches)]
        idx = paddle.to_tensor(mask.startend_row_indices)
        attend = lambda q, k, v: flashmask_attention(q, k, v, idx, causal=mask.causal)
        positions = paddle.arange(tokens.shape[1])
        logits = model(paddle.to_tensor(tokens), positions, attend)
        count = float((labels != -100).sum())
        loss = token_loss_sum(logits, paddle.to_tensor(labels)) / count
        loss.backward()
        opt.step()
        opt.clear_grad()
        losses.append(float(loss))
        if bar:
            bar.update(losses[-1])
    if bar:
        bar.close()
    return losses


def train_context_parallel(model, batches, steps, lr, strategy):
    rank, world = dist.get_rank(), dist.get_world_size()
    opt = paddle.optimizer.AdamW(lr, parameters=model.parameters())
    losses, bar = [], progress(steps, "context-parallel")
    for step in range(steps):
        tokens, labels, mask = batches[step % len(batches)]
        plan = balance_shards(mask.startend_row_indices, mask.causal, world)
        idx = paddle.to_tensor(mask.startend_row_indices)
        attend = lambda q, k, v: context_parallel_flashmask_attention(
            q, k, v, idx, causal=mask.causal, strategy=strategy, shard_plan=plan)
        local_tokens = paddle.to_tensor(plan.shard(tokens, rank))
        local_labels = paddle.to_tensor(plan.shard(labels, rank))
        positions = paddle.to_tensor(plan.position_ids(rank))  # original positions for RoPE
        logits = model(local_tokens, positions, attend)
        count = float((labels != -100).sum())  # global count: every rank has the full labels
        loss = token_loss_sum(logits, local_labels) / count
        loss.backward()
        for p in model.parameters():  # each rank saw only its tokens: sum the partial grads
            dist.all_reduce(p.grad)
        opt.step()
        opt.clear_grad()
        total = loss.detach().clone()
        dist.all_reduce(total)
        losses.append(float(total))
        if bar:
            bar.update(losses[-1])
    if bar:
        bar.close()
    return losses


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cp_degree", type=int, default=2)
    parser.add_argument("--strategy", choices=["ring", "all_gather"], default="ring")
    parser.add_argument("--seqlen", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1e-2)
    args = parser.parse_args()

    paddle.seed(0)
    model = TinyLlama()
    rng = np.random.default_rng(0)
    batches = [packed_batch(args.seqlen, rng) for _ in range(2)]
    single = train_single(copy.deepcopy(model), batches, args.steps, args.lr)
    if args.cp_degree == 1:
        print("single-process losses:", " ".join(f"{x:.6f}" for x in single))
        return
    dist.init_parallel_env()
    if dist.get_world_size() != args.cp_degree:
        sys.exit(f"--cp_degree {args.cp_degree} needs that many processes "
                 f"(paddle.distributed.launch --nproc_per_node {args.cp_degree}), "
                 f"got {dist.get_world_size()}")
    cp = train_context_parallel(model, batches, args.steps, args.lr, args.strategy)
    worst = max(abs(a - b) / abs(b) for a, b in zip(cp, single))
    if dist.get_rank() == 0:
        print("single-process losses:  ", " ".join(f"{x:.6f}" for x in single))
        print("context-parallel losses:", " ".join(f"{x:.6f}" for x in cp),
              f"(cp_degree {args.cp_degree}, {args.strategy})")
        print(f"max relative difference {worst:.2e}: {'OK' if worst <= 1e-5 else 'MISMATCH'}")
    sys.exit(0 if worst <= 1e-5 else 1)


if __name__ == "__main__":
    main()
