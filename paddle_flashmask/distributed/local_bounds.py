"""Global FlashMask bounds -> the bounds of one (local query rows, key block) sub-problem.

A rank's query rows are any set of global positions kept in ascending order
(several chunks after balancing). A key block is any set of global key
positions (another rank's shard). Each sub-problem runs as one NON-causal
4-column call [LTS, LTE, UTS, UTE] in local row coordinates.

Why two bands always suffice: a key column j masks the global rows
    [LTS, LTE) ∪ [UTS, UTE) ∪ (causal ? [0, j) : ∅).
Causal layouts (1 or 2 columns) have no upper band, so the causal triangle
takes the upper slot as [0, j); non-causal layouts bring at most the two
bands the 4-column form holds. So every column is exactly two row intervals.

Why an interval stays an interval in local rows: let p_0 < p_1 < ... be the
global positions of the local rows and T(g) = #{k : p_k < g} (T: [0, S] ->
[0, Sq_local], non-decreasing). Local row k lies in [s, e) iff s <= p_k < e
iff T(s) <= k < T(e), because p is increasing. So the band [s, e) becomes
[T(s), T(e)) exactly, starts stay <= ends (T is monotone), and a band that
misses every local row becomes empty. The key side needs nothing: columns are
independent, so a key block may be in any order.
"""
import numpy as np
import paddle

from ..layouts import canonical_bands, decode


def global_bands(startend_row_indices, causal, seqlen, batch):
    """int32 [B, h, S, 4] = (LTS, LTE, UTS, UTE) per key column, the causal
    triangle folded into the upper band. None means no mask (h = 1)."""
    cols = paddle.arange(seqlen, dtype="int32").reshape([1, 1, seqlen])
    if startend_row_indices is None:
        empty = paddle.full([batch, 1, seqlen], seqlen, dtype="int32")
        zero = paddle.zeros([batch, 1, seqlen], dtype="int32")
        upper_end = paddle.expand_as(cols, zero) if causal else zero
        return paddle.stack([empty, empty, zero, upper_end], axis=-1)
    idx = startend_row_indices
    lts, lte, uts, ute = (b if isinstance(b, paddle.Tensor) else paddle.full_like(idx[..., 0], b)
                          for b in decode(idx, causal, seqlen))
    if causal:  # no upper band of its own: the triangle [0, j) takes its place
        ute = paddle.expand_as(cols, lts)
    # Clamped and ordered: T below is indexed by the bounds, and visible_pairs counts them.
    return paddle.stack(canonical_bands(lts, lte, uts, ute, seqlen, paddle.clip, paddle.maximum),
                        axis=-1)


def row_count_table(local_positions, seqlen):
    """T of the module docstring: int32 [S + 1], T[g] = local rows before global row g."""
    table = np.searchsorted(np.asarray(local_positions), np.arange(seqlen + 1), side="left")
    return table.astype(np.int32)


def block_bounds(bands, key_positions, table):
    """int32 [B, h, len(key_positions), 4]: non-causal 4-column bounds of the
    local rows against the keys at `key_positions` (int64 tensor)."""
    cols = paddle.index_select(bands, key_positions, axis=2)
    return paddle.gather(table, cols.flatten()).reshape(cols.shape)


def visible_pairs(bounds, num_rows):
    """int64 scalar tensor: unmasked (row, column) pairs of a block, summed
    over batch and mask heads (kept on device: callers sync once for all blocks)."""
    lts, lte, uts, ute = (bounds[..., i].astype("int64") for i in range(4))
    overlap = paddle.clip(paddle.minimum(lte, ute) - paddle.maximum(lts, uts), min=0)
    masked = (lte - lts) + (ute - uts) - overlap
    return (num_rows - masked).sum()
