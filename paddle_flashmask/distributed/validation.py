"""Input checks that fail on EVERY rank, never leaving a peer blocked in a collective.

Each rank checks what it can see locally and records the failure instead of
raising; then one small all_gather of [tokens, global length, shapes, flags,
error] runs before any other communication, and every rank raises from the
same gathered facts: its own message where it failed, a pointer to the failing
ranks elsewhere, and cross-rank mismatches (shard sizes that do not add up to
the mask's length, differing shapes or flags) identically everywhere.
"""
import paddle

from .. import checks

STRATEGIES = ("ring", "all_gather")
_FIELDS = ("local tokens", "global length", "batch", "num_heads", "num_heads_k", "head_dim",
           "mask columns", "causal", "strategy")


def local_error(query, key, value, startend_row_indices, *, causal, strategy, shard_plan, cp,
                softmax_scale):
    """The first problem visible on this rank, as an exception (not raised), or None."""
    try:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        checks.check_attention_inputs(query, key, value, None, dropout=0.0, causal=causal,
                                      window_size=None, fixed_seed_offset=None, rng_name="",
                                      softmax_scale=softmax_scale)
        if query.shape[1] != key.shape[1]:
            raise ValueError(
                f"query and key shards must hold the same tokens; got {query.shape[1]} query "
                f"and {key.shape[1]} key tokens on rank {cp.rank}")
        if startend_row_indices is not None:
            if len(startend_row_indices.shape) != 4:
                raise ValueError("startend_row_indices must be the full mask [B, h, S, ncols], got "
                                 f"shape {list(startend_row_indices.shape)}")
            seqlen = startend_row_indices.shape[2]
            checks.check_startend_row_indices(
                startend_row_indices, causal=causal, batch=query.shape[0], seqlen_q=seqlen,
                seqlen_k=seqlen, num_heads=query.shape[2], num_heads_k=key.shape[2])
        if shard_plan is not None:
            _check_plan(shard_plan, cp, query.shape[1], startend_row_indices)
    except (ValueError, TypeError) as e:
        return e
    return None


def _check_plan(plan, cp, local_tokens, startend_row_indices):
    if plan.world_size != cp.world_size:
        raise ValueError(f"shard_plan is for {plan.world_size} ranks but the group has "
                         f"{cp.world_size}")
    if startend_row_indices is not None and plan.seqlen != startend_row_indices.shape[2]:
        raise ValueError(f"shard_plan covers {plan.seqlen} tokens but startend_row_indices "
                         f"has global length {startend_row_indices.shape[2]}")
    if plan.shard_lengths[cp.rank] != local_tokens:
        raise ValueError(f"shard_plan gives rank {cp.rank} {plan.shard_lengths[cp.rank]} tokens "
                         f"but its query shard has {local_tokens}")


def agree_on_inputs(query, key, startend_row_indices, *, causal, strategy, shard_plan, cp, error):
    """Exchange the facts, raise the same way on every rank; returns the tokens per rank."""
    def dim(t, i):
        return t.shape[i] if t is not None and len(t.shape) > i else -1

    facts = [query.shape[1], dim(startend_row_indices, 2), dim(query, 0), dim(query, 2),
             dim(key, 2), dim(query, 3), dim(startend_row_indices, 3), int(causal),
             STRATEGIES.index(strategy) if strategy in STRATEGIES else -1, int(error is not None)]
    if startend_row_indices is None:
        facts[1] = shard_plan.seqlen if shard_plan is not None else -1
    rows = cp.all_gather(paddle.to_tensor(facts, dtype="int64", place=query.place))
    table = [[int(x) for x in r.numpy()] for r in rows]
    failed = [r for r, row in enumerate(table) if row[-1]]
    if error is not None:
        raise error
    if failed:
        raise ValueError(f"context_parallel_flashmask_attention: rank(s) {failed} rejected their "
                         "inputs (see the error on those ranks); nothing was computed")
    for i, name in enumerate(_FIELDS[1:], start=1):
        values = [row[i] for row in table]
        if len(set(values)) > 1:
            raise ValueError(f"context_parallel_flashmask_attention: ranks disagree on {name}: "
                             f"{values} (rank order)")
    lengths = [row[0] for row in table]
    seqlen = table[0][1]
    if seqlen >= 0 and sum(lengths) != seqlen:
        raise ValueError(f"context_parallel_flashmask_attention: the shards hold {lengths} tokens "
                         f"(rank order), {sum(lengths)} in all, but startend_row_indices has "
                         f"global length {seqlen}")
    return lengths
