"""Mask builders: batch metadata (document lengths, windows, prefixes) in,
FlashMask `startend_row_indices` out; plus dense <-> column-bound conversion.

Pure numpy. Paddle is imported only by `MaskSpec.to_paddle` (and so by
`return_tensor=True`), so this module works without Paddle installed.

Column semantics (custom_ops/core/mask_bounds.h): key column j masks query
row i iff LTS <= i < LTE or UTS <= i < UTE, plus j > i + (Sk - Sq) when
causal. Layouts: causal [LTS] | [LTS, LTE]; non-causal [LTS, UTE] (LTE = Sq,
UTS = 0) | [LTS, LTE, UTS, UTE]. Every builder returns int32
[batch, 1, seqlen, ncols] with the fewest columns its mask needs (switching
to the causal layout when the mask contains the causal triangle), except
sliding_window_mask, which mirrors Paddle's window_size layout exactly.

Padding: tokens after a row's last document / group / block are padding. Each
padding token is its own 1-token document: it attends to itself only and no
real token attends to it. So no row is ever fully masked, no information flows
through padding, and padding costs only diagonal tiles. (causal_blockwise_mask
has one documented exception: its padding rows also see the real tokens.)
"""
from __future__ import annotations

import reprlib
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from .layouts import column_counts, decode

__all__ = [
    "MaskSpec", "causal_document_mask", "document_mask", "share_question_mask",
    "sliding_window_mask", "global_sliding_window_mask", "causal_blockwise_mask",
    "prefix_lm_mask", "prefix_lm_document_mask", "to_dense", "from_dense",
]


class MaskSpec(NamedTuple):
    """A FlashMask mask: int32 indices [B, h, Sk, ncols] and the causal flag.

    The field names are flashmask_attention's argument names:
        flashmask_attention(q, k, v, **spec.to_paddle()._asdict())

    Example:
        >>> import numpy as np
        >>> from paddle_flashmask import MaskSpec
        >>> spec = MaskSpec(np.array([[[[2], [2]]]], dtype=np.int32), causal=True)
        >>> spec.ncols, spec.to_dense()[0, 0].tolist()
        (1, [[True, False], [True, True]])
    """
    startend_row_indices: Any
    causal: bool

    @property
    def ncols(self) -> int:
        return int(self.startend_row_indices.shape[-1])

    def to_paddle(self, place: Any = None) -> MaskSpec:
        """The same spec with the indices as a paddle int32 tensor."""
        idx = self.startend_row_indices
        if not isinstance(idx, np.ndarray):  # already a tensor
            return self
        import paddle  # lazy: the numpy builders must not need Paddle

        idx = paddle.to_tensor(np.ascontiguousarray(idx, dtype=np.int32), dtype="int32", place=place)
        return MaskSpec(idx, self.causal)

    def to_dense(self, sq: int | None = None) -> np.ndarray:
        """bool [B, h, Sq, Sk], True where attention is allowed."""
        return to_dense(self.startend_row_indices, self.causal, sq)


# ----------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------

def _short(x):
    return reprlib.repr(x)


def _int(name, value, minimum=0):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {_short(value)}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _lengths(name, lens):
    """One row's lengths: a 1-D sequence of non-negative ints -> int64 array."""
    if isinstance(lens, (str, bytes)) or not hasattr(lens, "__len__"):
        raise TypeError(f"{name} must be a sequence of ints, got {type(lens).__name__} {_short(lens)}")
    if len(lens) == 0:
        return np.zeros(0, np.int64)
    try:
        arr = np.asarray(lens)
    except ValueError:  # ragged nesting
        arr = None
    if arr is None or arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be a sequence of ints, got {_short(lens)}")
    if (arr < 0).any():
        raise ValueError(f"{name} must be non-negative, got {int(arr.min())} in {_short(lens)}")
    return arr.astype(np.int64)


def _rows(name, rows):
    """The per-batch-row list: a non-empty sequence whose items are rows (not ints)."""
    if isinstance(rows, (str, bytes)) or not hasattr(rows, "__len__"):
        raise TypeError(f"{name} must be a list with one entry per batch row, got {type(rows).__name__}")
    if len(rows) == 0:
        raise ValueError(f"{name} must hold at least one batch row")
    for r in rows:
        if isinstance(r, (int, np.integer)):
            raise TypeError(f"{name} must be a list of per-row lists (wrap a single row in a list), "
                            f"got the int {r} as a row")
    return list(rows)


def _seqlen(seqlen, totals, name):
    """seqlen, defaulting to the longest row; every row must fit."""
    longest = max(totals)
    if seqlen is None:
        if longest == 0:
            raise ValueError(f"every row of {name} is empty: pass seqlen")
        return longest
    seqlen = _int("seqlen", seqlen, 1)
    if longest > seqlen:
        row = int(np.argmax(totals))
        raise ValueError(f"{name}: row {row} holds {longest} tokens, more than seqlen={seqlen}")
    return seqlen


def _window(window, causal):
    """(left, right) from an int or a pair; right is moot when causal."""
    if isinstance(window, (int, np.integer)) and not isinstance(window, bool):
        pair = (window, window)
    elif isinstance(window, (tuple, list)) and len(window) == 2:
        pair = tuple(window)
    else:
        raise TypeError(f"window must be an int or a (left, right) pair of ints, got {_short(window)}")
    left, right = (_int("window", w) for w in pair)
    return left, (0 if causal else right)


# ----------------------------------------------------------------------------
# Assembly
# ----------------------------------------------------------------------------

def _segments(lens, seqlen):
    """Per token, the [start, end) of its segment; padding tokens get [j, j + 1)."""
    cum = np.concatenate([[0], np.cumsum(lens)])
    total = int(cum[-1])
    start = np.arange(seqlen, dtype=np.int64)
    end = start + 1
    start[:total] = np.repeat(cum[:-1], lens)
    end[:total] = np.repeat(cum[1:], lens)
    return start, end


def _fewest_columns(cols, causal, seqlen):
    """Drop columns the mask does not need (Sq == Sk == seqlen): a band that is
    empty or pinned to a sequence edge, or an upper band that is exactly the
    causal triangle [0, j), is folded into a shorter layout."""
    j = np.arange(seqlen)
    if not causal and len(cols) == 4:
        lts, lte, uts, ute = cols
        lower_empty, upper_empty = lts >= lte, uts >= ute
        if ((uts == 0) & (ute == j)).all():  # upper band == causal triangle
            return _fewest_columns([lts, lte], True, seqlen)
        if ((lte == seqlen) | lower_empty).all() and ((uts == 0) | upper_empty).all():
            cols = [np.where(lower_empty, seqlen, lts), np.where(upper_empty, 0, ute)]
    if not causal and len(cols) == 2 and (cols[1] == j).all():
        return [cols[0]], True
    if causal and len(cols) == 2:
        lts, lte = cols
        empty = lts >= lte
        if ((lte == seqlen) | empty).all():
            cols = [np.where(empty, seqlen, lts)]
    return cols, causal


def _spec(rows, causal, seqlen, return_tensor, fold=True):
    """rows: per batch row, the list of column arrays [seqlen] -> MaskSpec
    (fold: drop the columns the mask does not need)."""
    cols = [np.stack(col) for col in zip(*rows)]  # per column, [B, S]
    if fold:
        cols, causal = _fewest_columns(cols, causal, seqlen)
    idx = np.stack(cols, axis=-1)[:, None].astype(np.int32)
    spec = MaskSpec(np.ascontiguousarray(idx), causal)
    return spec.to_paddle() if return_tensor else spec


# ----------------------------------------------------------------------------
# Builders
# ----------------------------------------------------------------------------

def causal_document_mask(doc_lens: Sequence[Sequence[int]], seqlen: int | None = None, *,
                         return_tensor: bool = False) -> MaskSpec:
    """Packed documents, causal within each document, none across them.

    doc_lens: per batch row, the lengths of its packed documents; the tail
    after them (up to seqlen, default the longest row) is padding: 1-token
    documents. Causal, 1 column: LTS = end of the key's document.
    return_tensor: the indices as a paddle int32 tensor instead of numpy
    (as for every builder).

    Raises:
        TypeError: doc_lens is not a list of per-row lists of ints, or seqlen is not an int.
        ValueError: doc_lens is empty or holds a negative length; seqlen is below 1
            or shorter than a row; every row is empty and seqlen is not given.

    Example:
        >>> from paddle_flashmask import causal_document_mask
        >>> spec = causal_document_mask([[3, 2], [4]], seqlen=5)  # 2 rows; row 1 pads 1 token
        >>> spec.causal, spec.startend_row_indices.shape
        (True, (2, 1, 5, 1))
        >>> spec.startend_row_indices[:, 0, :, 0].tolist()  # LTS: end of each key's document
        [[3, 3, 3, 5, 5], [4, 4, 4, 4, 5]]
    """
    rows = [_lengths(f"doc_lens[{b}]", r) for b, r in enumerate(_rows("doc_lens", doc_lens))]
    seqlen = _seqlen(seqlen, [int(r.sum()) for r in rows], "doc_lens")
    cols = [[_segments(r, seqlen)[1]] for r in rows]
    return _spec(cols, True, seqlen, return_tensor)


def document_mask(doc_lens: Sequence[Sequence[int]], seqlen: int | None = None, *,
                  return_tensor: bool = False) -> MaskSpec:
    """Packed documents, bidirectional within each document, none across them.

    Padding as in causal_document_mask. Non-causal, 2 columns:
    [LTS, UTE] = [end, start] of the key's document.

    Raises:
        TypeError, ValueError: bad doc_lens or seqlen, as in causal_document_mask.

    Example:
        >>> from paddle_flashmask import document_mask
        >>> spec = document_mask([[3, 2]])
        >>> spec.causal, spec.startend_row_indices[0, 0].tolist()  # [LTS, UTE] per key
        (False, [[3, 0], [3, 0], [3, 0], [5, 3], [5, 3]])
    """
    rows = [_lengths(f"doc_lens[{b}]", r) for b, r in enumerate(_rows("doc_lens", doc_lens))]
    seqlen = _seqlen(seqlen, [int(r.sum()) for r in rows], "doc_lens")
    cols = []
    for r in rows:
        start, end = _segments(r, seqlen)
        cols.append([end, start])
    return _spec(cols, False, seqlen, return_tensor)


def _group(name, group):
    if not (isinstance(group, (tuple, list)) and len(group) == 2):
        raise TypeError(f"{name} must be a (question_len, [answer_len, ...]) pair, got {_short(group)}")
    question = _int(f"{name} question_len", group[0])
    return question, _lengths(f"{name} answer lengths", group[1])


def share_question_mask(groups: Sequence[Sequence[tuple[int, Sequence[int]]]],
                        seqlen: int | None = None, *, return_tensor: bool = False) -> MaskSpec:
    """Shared-question packing: each answer sees its question and itself
    (causally), never the other answers; questions are causal; groups are
    isolated from each other.

    groups: per batch row, a list of (question_len, [answer_len, ...]) packed
    one after the other; the tail is padding (1-token documents). Causal,
    1 column: LTS = end of the group for question keys, end of the answer for
    answer keys.

    Raises:
        TypeError: groups is not a list of per-row lists of (question_len,
            [answer_len, ...]) pairs, or seqlen is not an int.
        ValueError: groups is empty or holds a negative length; seqlen is below 1
            or shorter than a row; every row is empty and seqlen is not given.

    Example:
        >>> from paddle_flashmask import share_question_mask
        >>> spec = share_question_mask([[(2, [2, 1])]])  # question of 2, answers of 2 and 1
        >>> spec.causal, spec.startend_row_indices[0, 0, :, 0].tolist()
        (True, [5, 5, 4, 4, 5])
    """
    rows = _rows("groups", groups)
    parsed = []
    for b, row in enumerate(rows):
        if isinstance(row, (str, bytes)) or not hasattr(row, "__len__"):
            raise TypeError(f"groups[{b}] must be a list of (question_len, answers) pairs")
        parsed.append([_group(f"groups[{b}][{g}]", grp) for g, grp in enumerate(row)])
    totals = [sum(q + int(a.sum()) for q, a in row) for row in parsed]
    seqlen = _seqlen(seqlen, totals, "groups")
    cols = []
    for row, total in zip(parsed, totals):
        seg_lens, seg_lts, offset = [], [], 0
        for question, answers in row:  # loop over groups; tokens are vectorised
            answer_ends = offset + question + np.cumsum(answers)
            group_end = offset + question + int(answers.sum())
            seg_lens.append(np.concatenate([[question], answers]))
            seg_lts.append(np.concatenate([[group_end], answer_ends]))
            offset = group_end
        lts = np.arange(1, seqlen + 1, dtype=np.int64)  # padding: 1-token documents
        if seg_lens:
            lts[:total] = np.repeat(np.concatenate(seg_lts), np.concatenate(seg_lens))
        cols.append([lts])
    return _spec(cols, True, seqlen, return_tensor)


def sliding_window_mask(seqlen: int, window: int | tuple[int, int], causal: bool = True,
                        batch: int = 1, *, return_tensor: bool = False) -> MaskSpec:
    """Sliding window: row i sees keys [i - left, i + right] (right = 0 when causal).

    window: the left size w (an int), or (left, right) when not causal (an int
    is (w, w) there, as in Paddle's window_size). Returns exactly
    paddle_flashmask.window_startend_row_indices (what window_size builds),
    causal flag included: causal 1 column [LTS = min(j + left + 1, S)],
    non-causal 2 columns [LTS, UTE = max(j - right, 0)] (even for right = 0,
    which the causal layout would store in one column).

    Raises:
        TypeError: seqlen, batch or a window size is not an int; window is not an
            int or a pair; causal is not a bool.
        ValueError: seqlen or batch is below 1, or a window size is negative.

    Example:
        >>> from paddle_flashmask import sliding_window_mask
        >>> spec = sliding_window_mask(5, 1)  # key j is seen by rows j and j + 1
        >>> spec.startend_row_indices[0, 0, :, 0].tolist()
        [2, 3, 4, 5, 5]
        >>> sliding_window_mask(5, (1, 2), causal=False).startend_row_indices[0, 0].tolist()
        [[2, 0], [3, 0], [4, 0], [5, 1], [5, 2]]
    """
    seqlen = _int("seqlen", seqlen, 1)
    batch = _int("batch", batch, 1)
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__}")
    left, right = _window(window, causal)
    j = np.arange(seqlen, dtype=np.int64)
    lts = np.minimum(j + left + 1, seqlen)
    cols = [lts] if causal else [lts, np.maximum(j - right, 0)]
    return _spec([cols] * batch, causal, seqlen, return_tensor, fold=False)


def global_sliding_window_mask(seqlen: int, num_global: int, window: int | tuple[int, int],
                               batch: int = 1, causal: bool = False, *,
                               return_tensor: bool = False) -> MaskSpec:
    """The first num_global tokens attend to and are attended by every token;
    the others use a sliding window of (left, right).

    Bidirectional by default, as in the FlashMask paper (Fig. 1, "Global +
    Sliding Window"; its benchmark builds it with causal=False and a symmetric
    window): 4 columns [LTS = min(j + left + 1, S), LTE = S, UTS = num_global,
    UTE = max(j - right, num_global)], global keys unmasked. causal=True gives
    the causal variant (global keys seen by all later rows; global rows see
    only earlier keys): 1 column.

    Raises:
        TypeError: seqlen, num_global, batch or a window size is not an int; window
            is not an int or a pair; causal is not a bool.
        ValueError: seqlen or batch is below 1, num_global or a window size is
            negative, or num_global exceeds seqlen.

    Example:
        >>> from paddle_flashmask import global_sliding_window_mask
        >>> spec = global_sliding_window_mask(6, num_global=1, window=(1, 1))
        >>> print(spec.to_dense()[0, 0].astype(int))
        [[1 1 1 1 1 1]
         [1 1 1 0 0 0]
         [1 1 1 1 0 0]
         [1 0 1 1 1 0]
         [1 0 0 1 1 1]
         [1 0 0 0 1 1]]
    """
    seqlen = _int("seqlen", seqlen, 1)
    num_global = _int("num_global", num_global)
    batch = _int("batch", batch, 1)
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__}")
    if num_global > seqlen:
        raise ValueError(f"num_global ({num_global}) must not exceed seqlen ({seqlen})")
    left, right = _window(window, causal)
    j = np.arange(seqlen, dtype=np.int64)
    lts = np.minimum(j + left + 1, seqlen)
    lts[:num_global] = seqlen  # global keys: seen by every row
    if causal:
        cols = [lts]
    else:
        # Rows [g, j - right) are above the window; global rows [0, g) see every key.
        cols = [lts, np.full(seqlen, seqlen), np.full(seqlen, num_global),
                np.maximum(j - right, num_global)]
    return _spec([cols] * batch, causal, seqlen, return_tensor)


def causal_blockwise_mask(block_lens: Sequence[Sequence[int]], seqlen: int | None = None, *,
                          return_tensor: bool = False) -> MaskSpec:
    """Blockwise (in-context learning): every block is causal within itself;
    the last block also sees all earlier blocks.

    block_lens: per batch row, the block lengths; the tail after them is
    padding. Padding keys are seen by nobody but themselves; padding rows,
    though, also see the real tokens (a causal key column holds one masked
    row interval, and an earlier block's interval is already
    [block end, last block start)). Causal, 2 columns [LTS, LTE]
    (1 when the second is not needed).

    Raises:
        TypeError, ValueError: bad block_lens or seqlen, as causal_document_mask for
            doc_lens.

    Example:
        >>> from paddle_flashmask import causal_blockwise_mask
        >>> spec = causal_blockwise_mask([[2, 2, 2]])  # the third block sees the first two
        >>> spec.startend_row_indices[0, 0].tolist()  # [LTS, LTE] per key
        [[2, 4], [2, 4], [4, 4], [4, 4], [6, 6], [6, 6]]
    """
    rows = [_lengths(f"block_lens[{b}]", r) for b, r in enumerate(_rows("block_lens", block_lens))]
    seqlen = _seqlen(seqlen, [int(r.sum()) for r in rows], "block_lens")
    cols = []
    for r in rows:
        total = int(r.sum())
        last_start = total - (int(r[-1]) if len(r) else 0)
        lts = _segments(r, seqlen)[1]
        lte = np.full(seqlen, seqlen, dtype=np.int64)
        lte[:last_start] = last_start  # earlier blocks: hidden from the blocks after them, not the last
        lts[last_start:total] = seqlen  # last block: plain causal
        cols.append([lts, lte])
    return _spec(cols, True, seqlen, return_tensor)


def prefix_lm_mask(prefix_lens: int | Sequence[int], seqlen: int, *,
                   return_tensor: bool = False) -> MaskSpec:
    """Prefix LM: the first prefix_len tokens are bidirectional, the rest causal.

    prefix_lens: an int (one row) or one int per batch row, each in [0, seqlen].
    Non-causal, 2 columns [LTS = S, UTE = 0 for prefix keys else j].

    Raises:
        TypeError: seqlen is not an int; prefix_lens is not an int or a non-empty
            sequence of ints.
        ValueError: seqlen is below 1, or a prefix length is negative or exceeds seqlen.

    Example:
        >>> from paddle_flashmask import prefix_lm_mask
        >>> prefix_lm_mask(2, 4).to_dense()[0, 0].astype(int).tolist()
        [[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]
    """
    seqlen = _int("seqlen", seqlen, 1)
    if isinstance(prefix_lens, (int, np.integer)) and not isinstance(prefix_lens, bool):
        prefix_lens = [prefix_lens]
    if isinstance(prefix_lens, (str, bytes)) or not hasattr(prefix_lens, "__len__") or len(prefix_lens) == 0:
        raise TypeError(f"prefix_lens must be an int or a non-empty sequence of ints, got {_short(prefix_lens)}")
    prefixes = _lengths("prefix_lens", prefix_lens)
    if (prefixes > seqlen).any():
        raise ValueError(f"prefix_lens must not exceed seqlen={seqlen}, got {int(prefixes.max())}")
    j = np.arange(seqlen, dtype=np.int64)
    lts = np.full(seqlen, seqlen, dtype=np.int64)
    cols = [[lts, np.where(j < p, 0, j)] for p in prefixes]
    return _spec(cols, False, seqlen, return_tensor)


def _prefix_doc(name, doc):
    if not (isinstance(doc, (tuple, list, np.ndarray)) and len(doc) == 2):
        raise TypeError(f"{name} must be a (doc_len, prefix_len) pair, got {_short(doc)}")
    doc_len, prefix = _int(f"{name} doc_len", doc[0]), _int(f"{name} prefix_len", doc[1])
    if prefix > doc_len:
        raise ValueError(f"{name}: prefix_len {prefix} exceeds doc_len {doc_len}")
    return doc_len, prefix


def prefix_lm_document_mask(docs: Sequence[Sequence[tuple[int, int]]],
                            seqlen: int | None = None, *, return_tensor: bool = False) -> MaskSpec:
    """Packed prefix-LM documents: within each document the prefix is
    bidirectional and the rest causal; documents are isolated.

    docs: per batch row, a list of (doc_len, prefix_len); the tail is padding
    (1-token documents). Non-causal, 2 columns [LTS = document end,
    UTE = document start for prefix keys else j].

    Raises:
        TypeError: docs is not a list of per-row lists of (doc_len, prefix_len) pairs,
            or seqlen is not an int.
        ValueError: docs is empty or holds a negative length, or a prefix_len exceeds
            its doc_len; seqlen is below 1 or shorter than a row; every row is empty
            and seqlen is not given.

    Example:
        >>> from paddle_flashmask import prefix_lm_document_mask
        >>> spec = prefix_lm_document_mask([[(3, 1), (2, 2)]])
        >>> spec.startend_row_indices[0, 0].tolist()  # [LTS, UTE] per key
        [[3, 0], [3, 1], [3, 2], [5, 3], [5, 3]]
    """
    rows = []
    for b, row in enumerate(_rows("docs", docs)):
        if isinstance(row, (str, bytes)) or not hasattr(row, "__len__"):
            raise TypeError(f"docs[{b}] must be a list of (doc_len, prefix_len) pairs")
        pairs = [_prefix_doc(f"docs[{b}][{d}]", doc) for d, doc in enumerate(row)]
        rows.append(np.asarray(pairs, dtype=np.int64).reshape(-1, 2))
    seqlen = _seqlen(seqlen, [int(r[:, 0].sum()) for r in rows], "docs")
    j = np.arange(seqlen, dtype=np.int64)
    cols = []
    for r in rows:
        lens, prefixes = r[:, 0], r[:, 1]
        start, end = _segments(lens, seqlen)
        prefix_end = start + 1  # padding: no prefix beyond itself
        total = int(lens.sum())
        prefix_end[:total] = np.repeat(np.cumsum(lens) - lens + prefixes, lens)
        cols.append([end, np.where(j < prefix_end, start, j)])
    return _spec(cols, False, seqlen, return_tensor)


# ----------------------------------------------------------------------------
# Dense conversion
# ----------------------------------------------------------------------------

def _as_numpy(x):
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "numpy"):  # paddle / torch tensor
        return np.asarray(x.numpy())
    return np.asarray(x)


def to_dense(startend_row_indices: Any, causal: bool | None = None,
             sq: int | None = None) -> np.ndarray:
    """bool [B, h, Sq, Sk]: True where query row i may attend to key j.

    startend_row_indices: numpy array or paddle tensor [B, h, Sk, ncols], or a
    MaskSpec (then causal comes from it). sq defaults to Sk.

    Raises:
        TypeError: causal is not a bool (and startend_row_indices no MaskSpec), or
            sq is not an int.
        ValueError: startend_row_indices is not a 4-D int array, or has a column
            count that `causal` does not allow; sq is below 1.

    Example:
        >>> from paddle_flashmask import causal_document_mask, to_dense
        >>> to_dense(causal_document_mask([[2, 2]]))[0, 0].astype(int).tolist()
        [[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]]
    """
    if isinstance(startend_row_indices, MaskSpec):
        startend_row_indices, causal = startend_row_indices
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__}")
    idx = _as_numpy(startend_row_indices)
    if idx.ndim != 4 or idx.dtype.kind not in "iu":
        raise ValueError(f"startend_row_indices must be an int array [B, h, Sk, ncols], "
                         f"got {idx.dtype} shape {list(idx.shape)}")
    counts = column_counts(causal)
    if idx.shape[-1] not in counts:
        raise ValueError(f"startend_row_indices must have {' or '.join(map(str, counts))} "
                         f"columns with causal={causal}, got {idx.shape[-1]}")
    sk = idx.shape[2]
    sq = sk if sq is None else _int("sq", sq, 1)
    idx = idx.astype(np.int64)
    lts, lte, uts, ute = (b[:, :, None, :] if isinstance(b, np.ndarray) else b
                          for b in decode(idx, causal, sq))
    rows = np.arange(sq).reshape(1, 1, sq, 1)
    masked = ((rows >= lts) & (rows < lte)) | ((rows >= uts) & (rows < ute))
    if causal:
        masked |= np.arange(sk).reshape(1, 1, 1, sk) > rows + (sk - sq)
    return ~masked


def _runs(masked):
    """Per key column of masked [B, h, Sq, Sk]: number of masked row runs, the
    first run [start, end) and the last run [start, end) (Sq, Sq if none)."""
    sq = masked.shape[2]
    prev = np.zeros_like(masked)
    prev[:, :, 1:] = masked[:, :, :-1]
    nxt = np.zeros_like(masked)
    nxt[:, :, :-1] = masked[:, :, 1:]
    starts = masked & ~prev
    ends = masked & ~nxt  # last row of a run
    count = starts.sum(axis=2)
    none = count == 0
    first_start = np.where(none, sq, starts.argmax(axis=2))
    first_end = np.where(none, sq, ends.argmax(axis=2) + 1)
    last_start = np.where(none, sq, sq - 1 - starts[:, :, ::-1].argmax(axis=2))
    last_end = np.where(none, sq, sq - ends[:, :, ::-1].argmax(axis=2))
    return count, first_start, first_end, last_start, last_end


def _column_error(count, limit, what):
    b, h, j = np.argwhere(count > limit)[0]  # the first offending column
    return ValueError(f"from_dense: key column {j} (batch {b}, head {h}) has {count[b, h, j]} "
                      f"masked row intervals; FlashMask {what}")


def from_dense(mask: Any) -> MaskSpec:
    """The smallest MaskSpec whose to_dense equals `mask` exactly.

    mask: bool [B, h, Sq, Sk] (or [Sq, Sk]), True where attention is allowed.
    Picks causal when the mask contains the causal triangle, then the fewest
    columns (causal 1 < causal 2 < non-causal 2 < non-causal 4); heads that are
    all equal collapse to h = 1.

    Raises:
        TypeError: mask is not a bool array.
        ValueError: mask is not 2-D or 4-D, or empty; or a key column's masked rows
            form more than two intervals, which no layout can express.

    Example:
        >>> import numpy as np
        >>> from paddle_flashmask import from_dense
        >>> spec = from_dense(np.tril(np.ones((4, 4), dtype=bool)))  # plain causal
        >>> spec.causal, spec.startend_row_indices[0, 0, :, 0].tolist()
        (True, [4, 4, 4, 4])
    """
    allowed = _as_numpy(mask)
    if allowed.dtype != np.bool_:
        raise TypeError(f"mask must be a bool array, got {allowed.dtype}")
    if allowed.ndim == 2:
        allowed = allowed[None, None]
    if allowed.ndim != 4 or 0 in allowed.shape:
        raise ValueError(f"mask must be a non-empty [B, h, Sq, Sk] array, got shape {list(allowed.shape)}")
    if allowed.shape[1] > 1 and (allowed == allowed[:, :1]).all():
        allowed = allowed[:, :1]
    sq, sk = allowed.shape[2], allowed.shape[3]
    masked = ~allowed
    rows = np.arange(sq).reshape(1, 1, sq, 1)
    triangle = np.arange(sk).reshape(1, 1, 1, sk) > rows + (sk - sq)

    if masked[np.broadcast_to(triangle, masked.shape)].all():
        count, start, end, _, _ = _runs(masked & ~triangle)  # rows the triangle leaves free
        if (count <= 1).all():
            if ((count == 0) | (end == sq)).all():
                return MaskSpec(start[..., None].astype(np.int32), True)
            return MaskSpec(np.stack([start, end], -1).astype(np.int32), True)

    count, first_start, first_end, last_start, last_end = _runs(masked)
    if (count > 2).any():
        raise _column_error(count, 2, "can express at most two ([LTS, LTE) and [UTS, UTE))")
    prefix = (count >= 1) & (first_start == 0)  # a run touching row 0: the upper band [0, UTE)
    suffix = (count >= 1) & (last_end == sq)  # a run touching the last row: [LTS, Sq)
    if ((count == 0) | ((count == 1) & (prefix | suffix)) | (prefix & suffix)).all():
        lts = np.where(suffix, last_start, sq)
        ute = np.where(prefix, first_end, 0)
        return MaskSpec(np.stack([lts, ute], -1).astype(np.int32), False)
    # Two bands: the first run is the upper band, the last the lower; a lone
    # run at row 0 goes to the upper band, any other lone run to the lower.
    upper = (count == 2) | prefix
    lower = (count == 2) | ((count == 1) & ~prefix)
    cols = [np.where(lower, last_start, sq), np.where(lower, last_end, sq),
            np.where(upper, first_start, 0), np.where(upper, first_end, 0)]
    return MaskSpec(np.stack(cols, -1).astype(np.int32), False)
