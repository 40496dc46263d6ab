"""The column layouts of startend_row_indices, in one table.

Key column j masks query row i iff LTS <= i < LTE or UTS <= i < UTE (plus the
causal triangle when causal). Which bounds are stored depends on `causal` and
the column count; the others take the implied value. Any int32 bound is valid
and means just that: below 0 acts as 0, above seqlen_q as seqlen_q, and a band
whose start is at or past its end is empty (canonical_bands below).
"""
BOUNDS = ("LTS", "LTE", "UTS", "UTE")

# (causal, ncols) -> the stored bounds, in column order.
LAYOUTS = {
    (True, 1): ("LTS",),                       # LTE = seqlen_q, no upper band
    (True, 2): ("LTS", "LTE"),                 # no upper band
    (False, 2): ("LTS", "UTE"),                # LTE = seqlen_q, UTS = 0
    (False, 4): ("LTS", "LTE", "UTS", "UTE"),
}


def column_counts(causal):
    """The column counts a causal flag allows."""
    return tuple(n for (c, n) in LAYOUTS if c == bool(causal))


def decode(indices, causal, seqlen_q):
    """(LTS, LTE, UTS, UTE) of every key column of `indices` [..., ncols]
    (numpy, Paddle or torch): indices[..., c] for a stored bound, the implied
    Python int (which broadcasts) for the others."""
    stored = LAYOUTS[(bool(causal), indices.shape[-1])]
    implied = {"LTE": seqlen_q, "UTS": 0, "UTE": 0}
    return tuple(indices[..., stored.index(b)] if b in stored else implied[b] for b in BOUNDS)


def window_columns(cols, seqlen, window, causal, clip):
    """The stored columns of a sliding window, as Paddle builds them: key j is
    seen by rows [j - right, j + left]. `cols`: the int64 key positions
    0..seqlen-1 as a tensor of either framework; `clip(x, lo, hi)` its clip.
    int64, so left + seqlen cannot wrap; a window >= seqlen has no limit.
    Returns [LTS] when causal, else [LTS, UTE]."""
    left, right = window
    lts = clip(cols + (left + 1), None, seqlen)
    return [lts] if causal else [lts, clip(cols - right, 0, None)]


def canonical_bands(lts, lte, uts, ute, seqlen_q, clip, maximum):
    """The same masked rows with every bound clamped into [0, seqlen_q] and
    each end raised to its start (an empty band): what counting code needs,
    as any int32 bound is valid (see the README)."""
    lts, lte, uts, ute = (clip(b, 0, seqlen_q) for b in (lts, lte, uts, ute))
    return lts, maximum(lte, lts), uts, maximum(ute, uts)
