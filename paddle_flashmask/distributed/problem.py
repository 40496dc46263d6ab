"""Everything a strategy needs about one context-parallel call, computed once
in the forward and reused by the backward: who owns which rows, and the
sub-problem bounds of the local queries against every rank's key block
(None where the block is fully masked for the local queries: no compute)."""
from dataclasses import dataclass

import numpy as np
import paddle

from .local_bounds import block_bounds, global_bands, row_count_table, visible_pairs


@dataclass
class CPProblem:
    cp: object                 # CPGroup
    strategy: str
    lengths: list              # tokens per rank
    bounds: list               # per owner rank: int32 [B, h, L_owner, 4] or None (skip)
    softmax_scale: float
    seed_offset: paddle.Tensor

    @property
    def max_len(self):
        return max(self.lengths)

    def visible_owners(self):
        return [o for o, b in enumerate(self.bounds) if b is not None]


def rank_positions(lengths, shard_plan):
    """Sorted global positions of every rank's tokens."""
    if shard_plan is not None:
        return [shard_plan.positions(r) for r in range(shard_plan.world_size)]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return [np.arange(offsets[r], offsets[r + 1], dtype=np.int64) for r in range(len(lengths))]


def build_problem(query, startend_row_indices, causal, cp, lengths, shard_plan, strategy,
                  softmax_scale):
    seqlen = int(sum(lengths))
    positions = rank_positions(lengths, shard_plan)
    place = query.place
    bands = global_bands(startend_row_indices, causal, seqlen, query.shape[0])
    table = paddle.to_tensor(row_count_table(positions[cp.rank], seqlen), place=place)
    bounds = [block_bounds(bands, paddle.to_tensor(p, place=place), table) for p in positions]
    counts = paddle.stack([visible_pairs(b, query.shape[1]) for b in bounds]).numpy()
    bounds = [b if n > 0 else None for b, n in zip(bounds, counts)]
    return CPProblem(cp=cp, strategy=strategy, lengths=[int(n) for n in lengths], bounds=bounds,
                     softmax_scale=softmax_scale,
                     seed_offset=paddle.zeros([2], dtype="int64"))
