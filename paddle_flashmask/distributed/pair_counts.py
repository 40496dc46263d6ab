"""How many keys each query row sees, in O(B * h * S) numpy work.

The balancer needs the unmasked (query, key) pairs of every query row. A dense
S x S mask is out of the question at S = 1M, but each key column masks at most
two row intervals (its lower band and its upper or causal band), so a
difference array over rows counts every column's masked rows in O(1).
"""
import numpy as np

from ..layouts import canonical_bands, decode


def column_bands(startend_row_indices, causal):
    """The two masked row intervals of every key column, global coordinates.

    Returns (lts, lte, uts, ute), each int64 [B, h, S]. The causal triangle
    (rows i < j masked for key j) becomes the upper band [0, j): causal layouts
    carry no upper band of their own, so two bands always suffice.
    """
    idx = np.asarray(startend_row_indices).astype(np.int64)
    seqlen = idx.shape[2]
    lts, lte, uts, ute = (np.broadcast_to(b, idx.shape[:-1]) for b in decode(idx, causal, seqlen))
    if causal:  # no upper band of its own: the triangle [0, j) takes its place
        ute = np.broadcast_to(np.arange(seqlen, dtype=np.int64), lts.shape)
    return canonical_bands(lts, lte, uts, ute, seqlen, np.clip, np.maximum)


def visible_keys_per_row(startend_row_indices, causal):
    """int64 [S]: unmasked keys of each query row, summed over batch and mask heads."""
    lts, lte, uts, ute = column_bands(startend_row_indices, causal)
    seqlen = lts.shape[-1]
    columns = lts.size
    # Masked rows of a column = band A + band B - (A ∩ B); each interval adds
    # +1 at its start and -1 at its end of a difference array over rows.
    ov_start = np.maximum(lts, uts)
    ov_end = np.minimum(lte, ute)
    has_overlap = ov_start < ov_end
    starts = [lts, uts, ov_end[has_overlap]]
    ends = [lte, ute, ov_start[has_overlap]]
    diff = np.zeros(seqlen + 1, dtype=np.int64)
    for s in starts:
        diff += np.bincount(s.ravel(), minlength=seqlen + 1)
    for e in ends:
        diff -= np.bincount(e.ravel(), minlength=seqlen + 1)
    # Empty bands (start == end) add and remove at the same row: no effect.
    masked = np.cumsum(diff[:seqlen])
    return columns - masked


def pairs_per_chunk(startend_row_indices, causal, chunk_size):
    """int64 [S / chunk_size]: unmasked pairs whose query row lies in each chunk."""
    rows = visible_keys_per_row(startend_row_indices, causal)
    return rows.reshape(-1, chunk_size).sum(axis=1)
