"""Input checks that fail on EVERY rank, never leaving a peer blocked in a collective.

Each rank checks what it can see locally and records the failure instead of
raising; then one small all_gather of [tokens, global length, shapes, flags,
error] runs before any other communication, and every rank raises from the
same gathered facts: its own message where it failed, a pointer to the failing
ranks elsewhere, and cross-rank mismatches (shard sizes that do not add up to
the mask's length, differing shapes, flags, softmax_scale or mask values: a
fingerprint of the mask, O(S) on the device and gathered with the facts)
identically everywhere.
"""
import numpy as np
import paddle

from ..api import check_inputs, describe
from ..checks import CP_STRATEGIES, INDICES, check_context_parallel, check_indices

_FIELDS = ("local tokens", "global length", "batch", "num_heads", "num_heads_k", "head_dim",
           "mask columns", "causal", "strategy", "softmax_scale", "mask values")


def local_error(query, key, value, startend_row_indices, *, causal, strategy, shard_plan, cp,
                softmax_scale):
    """The first problem visible on this rank, as an exception (not raised), or None."""
    try:
        scalars = check_inputs(query, key, value, None, causal=causal, softmax_scale=softmax_scale)
        q, k = describe("query", query), describe("key", key)
        indices = None if startend_row_indices is None else describe(INDICES, startend_row_indices)
        check_context_parallel(q, k, indices, strategy=strategy, shard_plan=shard_plan,
                               rank=cp.rank, world_size=cp.world_size)
        if indices is not None:  # the full mask: global length
            check_indices(indices, causal=scalars.causal, batch=q.shape[0],
                          seqlen_k=indices.shape[2], num_heads=q.shape[2], num_heads_k=k.shape[2],
                          device=q.device)
    except (ValueError, TypeError) as e:
        return e
    return None


def _fingerprint(startend_row_indices, place):
    """Two int64 sums that differ between ranks whose masks differ (almost
    surely): O(S) on the device, read with the facts' one all_gather."""
    if startend_row_indices is None:
        return paddle.to_tensor([0, 0], dtype="int64", place=place)
    flat = startend_row_indices.flatten().astype("int64")
    weights = paddle.arange(flat.shape[0], dtype="int64") % 65521 + 1
    return paddle.stack([flat.sum(), (flat * weights).sum()])


def agree_on_inputs(query, key, startend_row_indices, *, causal, strategy, shard_plan, cp,
                    softmax_scale, error):
    """Exchange the facts, raise the same way on every rank; returns the tokens per rank."""
    def dim(t, i):
        return t.shape[i] if t is not None and len(t.shape) > i else -1

    # The scale's float64 bits: equal scales, equal words.
    scale = (-1 if softmax_scale is None or error is not None
             else int(np.float64(softmax_scale).view(np.int64)))
    facts = [query.shape[1], dim(startend_row_indices, 2), dim(query, 0), dim(query, 2),
             dim(key, 2), dim(query, 3), dim(startend_row_indices, 3), int(bool(causal)),
             CP_STRATEGIES.index(strategy) if strategy in CP_STRATEGIES else -1, scale]
    if startend_row_indices is None:
        facts[1] = shard_plan.seqlen if shard_plan is not None else -1
    fingerprint = _fingerprint(None if error is not None else startend_row_indices, query.place)
    row = paddle.concat([paddle.to_tensor(facts, dtype="int64", place=query.place),
                         fingerprint.astype("int64"),
                         paddle.to_tensor([int(error is not None)], dtype="int64",
                                          place=query.place)])
    table = [[int(x) for x in r.numpy()] for r in cp.all_gather(row)]
    failed = [r for r, row in enumerate(table) if row[-1]]
    if error is not None:
        raise error
    if failed:
        raise ValueError(f"context_parallel_flashmask_attention: rank(s) {failed} rejected their "
                         "inputs (see the error on those ranks); nothing was computed")
    for i, name in enumerate(_FIELDS[1:], start=1):
        values = [tuple(row[i:i + 2]) if name == "mask values" else row[i] for row in table]
        if len(set(values)) > 1:
            if name in ("softmax_scale", "mask values"):
                raise ValueError(f"context_parallel_flashmask_attention: ranks disagree on {name} "
                                 "(every rank must pass the same)")
            raise ValueError(f"context_parallel_flashmask_attention: ranks disagree on {name}: "
                             f"{values} (rank order)")
    lengths = [row[0] for row in table]
    seqlen = table[0][1]
    if seqlen >= 0 and sum(lengths) != seqlen:
        raise ValueError(f"context_parallel_flashmask_attention: the shards hold {lengths} tokens "
                         f"(rank order), {sum(lengths)} in all, but startend_row_indices has "
                         f"global length {seqlen}")
    return lengths
