"""Mask-aware sharding: which chunks of the sequence each rank owns.

Each rank computes attention for its own query rows against every key, so its
work is the number of unmasked (query, key) pairs whose query row it owns.
Contiguous shards are badly skewed under a causal mask (the last rank sees
every key, the first almost none). We cut the sequence into equal chunks,
give every rank the same number of chunks (equal tokens, so the rest of the
model stays balanced too), and pick the assignment with the smallest maximum
load among:
  * zigzag ("snake"): chunk c of round c // W goes to rank c % W on even
    rounds and W - 1 - c % W on odd ones. Exact for a causal triangle.
  * greedy: largest chunks first, each to the least loaded rank that still
    has room (documents, share-question masks).
  * contiguous: the baseline.
Each rank keeps its chunks in ascending order: the kernels rely on local rows
being sorted by global position (see local_bounds.py).
"""
from dataclasses import dataclass

import numpy as np

from .pair_counts import pairs_per_chunk

DEFAULT_CHUNKS_PER_RANK = 8


@dataclass(frozen=True)
class ShardPlan:
    """Which global token positions each rank owns (ascending per rank).

    perm[k] is the original position of the k-th token of the permuted
    sequence (rank 0's tokens, then rank 1's, ...); inverse undoes it.
    """
    seqlen: int
    world_size: int
    chunk_size: int
    strategy: str                     # "zigzag", "greedy" or "contiguous"
    rank_chunks: tuple                # tuple of sorted chunk-id tuples, one per rank
    pairs_per_rank: np.ndarray        # int64 [world_size]

    @property
    def imbalance(self):
        """max / mean unmasked pairs per rank (1.0 is perfect)."""
        mean = self.pairs_per_rank.mean()
        return float(self.pairs_per_rank.max() / mean) if mean > 0 else 1.0

    @property
    def shard_lengths(self):
        return tuple(len(c) * self.chunk_size for c in self.rank_chunks)

    def positions(self, rank):
        """int64 [S / W]: the original (global) positions of rank's tokens, ascending."""
        chunks = np.asarray(self.rank_chunks[rank], dtype=np.int64)
        return (chunks[:, None] * self.chunk_size + np.arange(self.chunk_size)).ravel()

    @property
    def perm(self):
        return np.concatenate([self.positions(r) for r in range(self.world_size)])

    @property
    def inverse(self):
        inv = np.empty(self.seqlen, dtype=np.int64)
        inv[self.perm] = np.arange(self.seqlen)
        return inv

    def position_ids(self, rank):
        """The original position ids of rank's tokens (RoPE must use these)."""
        return self.positions(rank)

    def shard(self, x, rank, axis=1):
        """Rank's tokens of a full-sequence tensor or array (sequence on `axis`)."""
        return _take(x, self.positions(rank), axis)

    def unshard(self, shards, axis=1):
        """Inverse of shard: the full sequence from every rank's shard, in rank order."""
        return _take(_concat(shards, axis), self.inverse, axis)


def _take(x, index, axis):
    if isinstance(x, np.ndarray):
        return np.take(x, index, axis=axis)
    import paddle

    if x.dtype == paddle.float16 and x.place.is_cpu_place():  # no CPU fp16 gather kernel
        return _take(x.astype("float32"), index, axis).astype("float16")  # exact round trip
    return paddle.index_select(x, paddle.to_tensor(index, place=x.place), axis=axis)


def _concat(parts, axis):
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts, axis=axis)
    import paddle

    return paddle.concat(list(parts), axis=axis)


def default_chunk_size(seqlen, world_size):
    for per_rank in (DEFAULT_CHUNKS_PER_RANK, 4, 2, 1):
        if seqlen % (world_size * per_rank) == 0:
            return seqlen // (world_size * per_rank)
    raise ValueError(f"seqlen {seqlen} must be a multiple of world_size {world_size}")


def contiguous_assignment(num_chunks, world_size):
    per = num_chunks // world_size
    return [list(range(r * per, (r + 1) * per)) for r in range(world_size)]


def zigzag_assignment(num_chunks, world_size):
    ranks = [[] for _ in range(world_size)]
    for c in range(num_chunks):
        rnd, pos = divmod(c, world_size)
        ranks[pos if rnd % 2 == 0 else world_size - 1 - pos].append(c)
    return ranks


def greedy_assignment(chunk_pairs, world_size):
    per = len(chunk_pairs) // world_size
    loads = np.zeros(world_size, dtype=np.int64)
    ranks = [[] for _ in range(world_size)]
    for c in np.argsort(-chunk_pairs, kind="stable"):
        open_ranks = [r for r in range(world_size) if len(ranks[r]) < per]
        r = min(open_ranks, key=lambda r: loads[r])
        ranks[r].append(int(c))
        loads[r] += chunk_pairs[c]
    return [sorted(c) for c in ranks]


def balance_shards(startend_row_indices, causal, world_size, chunk_size=None):
    """Assign equal-size chunks of the sequence to ranks, balancing unmasked pairs.

    Args:
        startend_row_indices: the full mask's int32 [B, h, S, ncols] (numpy or
            paddle), global row coordinates; None means plain (or causal) attention.
        causal: the flag the attention call uses.
        world_size: ranks in the context-parallel group.
        chunk_size: tokens per chunk; S must be a multiple of world_size * chunk_size.
            Default: S / (8 * world_size) (or the largest of 4, 2, 1 chunks per rank that divides).
    Returns:
        ShardPlan with positions(rank), perm/inverse, shard/unshard, position_ids,
        pairs_per_rank and imbalance (max / mean).
    Cost: O(B * h * S) numpy work, no S x S matrix.
    """
    idx = _as_numpy(startend_row_indices)
    seqlen = idx.shape[2]
    if chunk_size is None:
        chunk_size = default_chunk_size(seqlen, world_size)
    if chunk_size <= 0 or seqlen % (chunk_size * world_size) != 0:
        raise ValueError(
            f"seqlen {seqlen} must be a multiple of world_size * chunk_size "
            f"({world_size} * {chunk_size})")
    chunk_pairs = pairs_per_chunk(idx, causal, chunk_size)
    num_chunks = len(chunk_pairs)
    candidates = {
        "zigzag": zigzag_assignment(num_chunks, world_size),
        "greedy": greedy_assignment(chunk_pairs, world_size),
        "contiguous": contiguous_assignment(num_chunks, world_size),
    }
    best = None
    for name, ranks in candidates.items():  # dict order breaks ties
        loads = np.array([chunk_pairs[c].sum() for c in ranks], dtype=np.int64)
        if best is None or loads.max() < best[2].max():
            best = (name, ranks, loads)
    name, ranks, loads = best
    return ShardPlan(seqlen=seqlen, world_size=world_size, chunk_size=chunk_size, strategy=name,
                     rank_chunks=tuple(tuple(sorted(c)) for c in ranks), pairs_per_rank=loads)


def contiguous_plan(startend_row_indices, causal, world_size):
    """The naive split into world_size equal contiguous shards, with its pair counts."""
    idx = _as_numpy(startend_row_indices)
    seqlen = idx.shape[2]
    if seqlen % world_size:
        raise ValueError(f"seqlen {seqlen} must be a multiple of world_size {world_size}")
    chunk = seqlen // world_size
    loads = pairs_per_chunk(idx, causal, chunk)
    return ShardPlan(seqlen=seqlen, world_size=world_size, chunk_size=chunk, strategy="contiguous",
                     rank_chunks=tuple((r,) for r in range(world_size)), pairs_per_rank=loads)


def _as_numpy(startend_row_indices):
    if startend_row_indices is None:
        raise ValueError("balance_shards needs startend_row_indices (use a [B, 1, S, 1] causal "
                         "mask of all S for plain causal attention)")
    if isinstance(startend_row_indices, np.ndarray):
        idx = startend_row_indices
    else:
        idx = startend_row_indices.numpy()
    if idx.ndim != 4:
        raise ValueError(
            f"startend_row_indices must be 4-D [B, h, S, ncols], got shape {idx.shape}")
    return idx
