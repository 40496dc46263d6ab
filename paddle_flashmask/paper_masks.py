"""The 12 mask types of the FlashMask paper (arXiv 2410.01359, Fig. 1 and its
kernel benchmark), with random parameters from a fixed-seed numpy Generator.

    spec = make_paper_mask("share_question", batch=2, seqlen=8192, seed=0)
    out = flashmask_attention(q, k, v, **spec.to_paddle()._asdict())

Parameters follow the paper's benchmark (PaddlePaddle/flash-attention,
benchmark_flashmask.py and its kernel_test_seq_info.txt):
  * documents: each batch row draws its own split of the whole row into
    3-7 documents (S <= 8K), 10-14 (S <= 32K) or 11-15 (longer), capped at S,
    at uniformly random cut points; no padding. Used by causal_document,
    document, causal_blockwise (documents as blocks) and the ones below.
  * prefix_lm_document: each document's prefix is 10-30% of it.
  * share_question: each document is a question plus 2-6 answers, every part
    >= 1 token, the rest spread uniformly (fewer answers for tiny documents).
  * qk_sparse: each document but the first is masked out with probability
    1/3 (at least one is): its keys are hidden from its own rows, its rows
    see only the keys before it; rows after it see it again. Causal [LTS, LTE].
  * random_eviction: key positions are evicted, one per row from row S/2 on,
    at random (the benchmark's draw); drawn per (row, head), so only this mask
    has dim 1 = num_heads.
  * fixed, as in the paper: sliding_window sees S/16 keys (left = S/16 - 1);
    global_sliding_window has min(16, max(1, S/16)) global tokens and a
    (S/16, S/16) window, bidirectional; prefix_lm_causal has prefix S/2.
  * full is a non-causal no-op mask [LTS = S, UTE = 0]; causal is causal with
    a no-op column [LTS = S] (flashmask_attention also takes None for these).
Generation is vectorised over tokens (loops run over rows and documents only).
"""
from __future__ import annotations

import numpy as np

from . import masks
from .masks import MaskSpec

__all__ = ["PAPER_MASKS", "make_paper_mask"]

PAPER_MASKS = (
    "full", "causal", "sliding_window", "causal_document", "document", "share_question",
    "global_sliding_window", "causal_blockwise", "prefix_lm_causal", "prefix_lm_document",
    "qk_sparse", "random_eviction",
)


def _num_docs(rng, seqlen):
    """The benchmark's document count ranges for 8K / 32K / 128K rows."""
    low = 3 if seqlen <= 8192 else 10 if seqlen <= 32768 else 11
    return min(int(rng.integers(low, low + 5)), seqlen)


def _random_docs(rng, seqlen):
    """A random split of seqlen into positive document lengths."""
    n = _num_docs(rng, seqlen)
    cuts = np.sort(rng.choice(seqlen - 1, n - 1, replace=False)) + 1
    return np.diff(np.concatenate([[0], cuts, [seqlen]]))


def _doc_rows(rng, batch, seqlen):
    return [_random_docs(rng, seqlen) for _ in range(batch)]


def _share_question_groups(rng, doc_lens):
    """Split each document into a question and 2-6 answers (paper's split_sequence)."""
    groups = []
    for doc_len in doc_lens:
        parts = min(int(rng.integers(2, 7)), int(doc_len) - 1) + 1
        lens = 1 + rng.multinomial(doc_len - parts, np.full(parts, 1.0 / parts))
        groups.append((int(lens[0]), lens[1:].tolist()))
    return groups


def _prefix_docs(rng, doc_lens):
    prefixes = (doc_lens * rng.uniform(0.1, 0.3, size=len(doc_lens))).astype(np.int64)
    return list(zip(doc_lens.tolist(), prefixes.tolist()))


def _qk_sparse_row(rng, seqlen):
    """Causal [LTS, LTE] per key: keys of a masked-out document [s, e) hide from rows [j, e)."""
    doc_lens = _random_docs(rng, seqlen)
    drop = rng.random(len(doc_lens)) < 1.0 / 3.0
    drop[0] = False  # the first rows would see nothing
    if len(doc_lens) > 1 and not drop.any():
        drop[rng.integers(1, len(doc_lens))] = True
    end = masks._segments(doc_lens, seqlen)[1]
    hidden = np.repeat(drop, doc_lens)
    j = np.arange(seqlen, dtype=np.int64)
    return [np.where(hidden, j, seqlen), np.where(hidden, end, seqlen)]


def _random_eviction_row(rng, seqlen):
    """The benchmark's draw: from row S/2 on, each row evicts one random key
    (LTS = that row); keys never evicted get LTS = S."""
    start_row = seqlen // 2
    count = min(seqlen - start_row, seqlen - 1)
    lts = np.full(seqlen, seqlen, dtype=np.int64)
    if count > 0:
        pos = rng.choice(seqlen - 1, count, replace=False)
        evict_at = np.arange(start_row, start_row + count)
        early = pos < evict_at - 1  # the benchmark's reordering: keys due before their row first
        lts[np.concatenate([pos[early], pos[~early]])] = evict_at
    return lts


def _fixed_masks(name, batch, seqlen):
    s16 = seqlen // 16
    if name == "full":
        return masks.sliding_window_mask(seqlen, (seqlen, seqlen), causal=False, batch=batch)
    if name == "causal":
        return masks.sliding_window_mask(seqlen, seqlen, causal=True, batch=batch)
    if name == "sliding_window":
        return masks.sliding_window_mask(seqlen, max(s16 - 1, 0), causal=True, batch=batch)
    if name == "global_sliding_window":
        return masks.global_sliding_window_mask(seqlen, min(16, max(1, s16)), (s16, s16), batch=batch)
    if name == "prefix_lm_causal":
        return masks.prefix_lm_mask([seqlen // 2] * batch, seqlen)
    return None


def make_paper_mask(name: str, batch: int, seqlen: int, seed: int = 0, *, num_heads: int = 1,
                    return_tensor: bool = False) -> MaskSpec:
    """The paper's mask `name` (one of PAPER_MASKS) for [batch, seqlen] as a
    MaskSpec; the same (name, batch, seqlen, seed, num_heads) gives the same mask.

    num_heads: heads of random_eviction's per-head draw; every other mask is
    head-independent (dim 1 = 1).
    return_tensor: the indices as a paddle int32 tensor instead of numpy.

    Raises:
        ValueError: name is not in PAPER_MASKS; batch, seqlen or num_heads is below 1,
            or seed is negative.
        TypeError: batch, seqlen, seed or num_heads is not an int.

    Example:
        >>> from paddle_flashmask import PAPER_MASKS, make_paper_mask
        >>> len(PAPER_MASKS)
        12
        >>> spec = make_paper_mask("share_question", batch=2, seqlen=1024, seed=0)
        >>> spec.causal, spec.startend_row_indices.shape
        (True, (2, 1, 1024, 1))
    """
    if name not in PAPER_MASKS:
        raise ValueError(f"name must be one of {PAPER_MASKS}, got {name!r}")
    batch = masks._int("batch", batch, 1)
    seqlen = masks._int("seqlen", seqlen, 1)
    seed = masks._int("seed", seed)
    num_heads = masks._int("num_heads", num_heads, 1)
    spec = _fixed_masks(name, batch, seqlen)
    if spec is None:
        spec = _random_mask(name, batch, seqlen, num_heads, np.random.default_rng(seed))
    return spec.to_paddle() if return_tensor else spec


def _random_mask(name, batch, seqlen, num_heads, rng):
    if name == "causal_document":
        return masks.causal_document_mask(_doc_rows(rng, batch, seqlen), seqlen)
    if name == "document":
        return masks.document_mask(_doc_rows(rng, batch, seqlen), seqlen)
    if name == "causal_blockwise":
        return masks.causal_blockwise_mask(_doc_rows(rng, batch, seqlen), seqlen)
    if name == "share_question":
        rows = [_share_question_groups(rng, d) for d in _doc_rows(rng, batch, seqlen)]
        return masks.share_question_mask(rows, seqlen)
    if name == "prefix_lm_document":
        rows = [_prefix_docs(rng, d) for d in _doc_rows(rng, batch, seqlen)]
        return masks.prefix_lm_document_mask(rows, seqlen)
    if name == "qk_sparse":
        rows = [_qk_sparse_row(rng, seqlen) for _ in range(batch)]
        return masks._spec(rows, True, seqlen, False)
    # random_eviction
    lts = [[_random_eviction_row(rng, seqlen) for _ in range(num_heads)] for _ in range(batch)]
    return MaskSpec(np.asarray(lts, dtype=np.int32)[..., None], True)
