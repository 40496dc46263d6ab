"""`context_parallel_flashmask_attention`: exact FlashMask attention over a
sequence sharded across the ranks of a process group, with autograd."""
from paddle.autograd import PyLayer

from .all_gather import all_gather_backward, all_gather_forward
from .comm import CPGroup
from .problem import build_problem
from .ring import ring_backward, ring_forward
from .validation import agree_on_inputs, local_error

_PASSES = {
    "ring": (ring_forward, ring_backward),
    "all_gather": (all_gather_forward, all_gather_backward),
}


class _ContextParallelFlashMask(PyLayer):
    @staticmethod
    def forward(ctx, query, key, value, problem):
        forward_pass, _ = _PASSES[problem.strategy]
        out, lse = forward_pass(query, key, value, problem)
        ctx.problem = problem
        ctx.save_for_backward(query, key, value, out, lse)
        ctx.mark_non_differentiable(lse)
        return out, lse

    @staticmethod
    def backward(ctx, out_grad, _lse_grad):
        query, key, value, out, lse = ctx.saved_tensor()
        _, backward_pass = _PASSES[ctx.problem.strategy]
        # The merged out/lse are the single-pass ones: dS = P * (dP - rowsum(dO * out)).
        return backward_pass(query, key, value, out, lse, out_grad.contiguous(), ctx.problem)


def context_parallel_flashmask_attention(query, key, value, startend_row_indices=None, *,
                                         causal=False, group=None, strategy="ring",
                                         shard_plan=None, softmax_scale=None,
                                         return_softmax_lse=False):
    """FlashMask attention with the sequence sharded over a process group (context parallelism).

    Every rank of `group` calls this together (it communicates), with:
        query: its query shard [B, L_rank, H, D]; key, value: the same tokens' [B, L_rank, Hk, D].
        startend_row_indices: the FULL mask, int32 [B, 1 | Hk | H, S, ncols], in ORIGINAL
            (global) row/column coordinates, identical on every rank (same layouts and meaning
            as paddle_flashmask.flashmask_attention); None = plain or causal attention.
        causal: as in flashmask_attention (Sq == Sk == S globally).
        group: a paddle.distributed group; None = the global group.
        strategy: "ring" (K/V blocks passed around the ring, transfers overlapped with
            compute, O(L_rank) memory) or "all_gather" (one gather of K/V, one kernel call,
            O(S) memory).
        shard_plan: the ShardPlan from balance_shards(...) that sharded the tokens (rank r holds
            plan.shard(x, r)); None = contiguous shards in rank order (lengths may differ).
        softmax_scale: default head_dim ** -0.5.
        return_softmax_lse: also return the float32 log-sum-exp [B, H, L_rank] (no gradient).

    Returns this rank's output shard [B, L_rank, H, D] (and lse); gradients flow to this
    rank's query, key and value. No dropout. Bad inputs raise ValueError/TypeError on every
    rank before any other communication. Fully masked key blocks are skipped (no kernel call).

    Example (2 ranks, `python -m paddle.distributed.launch --nproc_per_node 2 train.py`):
        plan = balance_shards(mask, causal=True, world_size=2)
        q_local = plan.shard(q, rank)       # and k, v; position ids: plan.position_ids(rank)
        out = context_parallel_flashmask_attention(q_local, k_local, v_local, mask, causal=True,
                                                   shard_plan=plan)
    """
    cp = CPGroup(group)
    error = local_error(query, key, value, startend_row_indices, causal=causal,
                        strategy=strategy, shard_plan=shard_plan, cp=cp,
                        softmax_scale=softmax_scale)
    lengths = agree_on_inputs(query, key, startend_row_indices, causal=causal, strategy=strategy,
                              shard_plan=shard_plan, cp=cp,
                              softmax_scale=softmax_scale, error=error)
    scale = float(softmax_scale) if softmax_scale is not None else query.shape[-1] ** -0.5
    problem = build_problem(query, startend_row_indices, causal, cp, lengths, shard_plan,
                            strategy, scale)
    out, lse = _ContextParallelFlashMask.apply(query, key, value, problem)
    return (out, lse) if return_softmax_lse else out
