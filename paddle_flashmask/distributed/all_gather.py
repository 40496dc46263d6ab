"""All-gather strategy: every rank gathers all K/V, keeps the blocks visible to
its queries, and runs ONE kernel call over their concatenation (key columns are
independent, so block order does not matter). Backward gathers K/V again
(nothing of size S is kept between passes) and reduce-scatters dK/dV to
their owners. Simple, one collective per pass; memory O(S) per rank.
Every rank joins every collective, even when all its blocks are masked.
"""
import paddle

from ..raw_ops import attention_backward, attention_forward
from .comm import pad_rows
from .lse_merge import empty_accumulators


def _gather_visible(k, v, problem):
    """(K, V, bounds) over the visible owners' blocks; None if none is visible."""
    kv = pad_rows(paddle.stack([k, v]), problem.max_len, axis=2)
    gathered = problem.cp.all_gather(kv)
    owners = problem.visible_owners()
    if not owners:
        return None
    keys = paddle.concat([gathered[o][:, :, :problem.lengths[o]] for o in owners], axis=2)
    bounds = paddle.concat([problem.bounds[o] for o in owners], axis=2)
    return keys[0].contiguous(), keys[1].contiguous(), bounds


def all_gather_forward(q, k, v, problem):
    visible = _gather_visible(k, v, problem)
    if visible is None:
        out, lse = empty_accumulators(q)
        return out.astype(q.dtype), lse
    keys, values, bounds = visible
    return attention_forward(q, keys, values, bounds, problem.seed_offset, dropout_p=0.0,
                             causal=False, softmax_scale=problem.softmax_scale)


def all_gather_backward(q, k, v, out, lse, dout, problem):
    visible = _gather_visible(k, v, problem)
    world, max_len = problem.cp.world_size, problem.max_len
    slot_shape = [2] + list(k.shape)
    slot_shape[2] = max_len
    slots = [paddle.zeros(slot_shape, dtype="float32") for _ in range(world)]
    dq = paddle.zeros(q.shape, dtype=q.dtype)
    if visible is not None:
        keys, values, bounds = visible
        dq, dk, dv = attention_backward(q, keys, values, bounds, problem.seed_offset, out, lse,
                                        dout, dropout_p=0.0, causal=False,
                                        softmax_scale=problem.softmax_scale)
        owners = problem.visible_owners()
        dkv = paddle.stack([dk, dv]).astype("float32")
        parts = paddle.split(dkv, [problem.lengths[o] for o in owners], axis=2)
        for o, part in zip(owners, parts):
            slots[o] = pad_rows(part, max_len, axis=2)
    mine = problem.cp.reduce_scatter_sum(paddle.stack(slots))
    own = problem.lengths[problem.cp.rank]
    return dq, mine[0, :, :own].astype(k.dtype), mine[1, :, :own].astype(v.dtype)
