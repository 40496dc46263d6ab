"""The benchmarks' FLOP count and Flex mask conversion agree with the dense
mask for every paper mask (a wrong count would misstate every TFLOP/s)."""
import os
import sys

import numpy as np
import pytest

from paddle_flashmask import masks
from paddle_flashmask.paper_masks import PAPER_MASKS, make_paper_mask

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
from gpu_common import four_column_bounds, unmasked_pairs  # noqa: E402


@pytest.mark.parametrize("name", PAPER_MASKS)
@pytest.mark.parametrize("seqlen", [97, 256])
def test_pairs_and_four_columns_match_dense(name, seqlen):
    spec = make_paper_mask(name, batch=2, seqlen=seqlen, seed=3, num_heads=2)
    dense = spec.to_dense()  # [B, Hm, S, S] True = visible
    assert unmasked_pairs(spec.startend_row_indices, spec.causal, seqlen, seqlen) == int(dense.sum())
    four = four_column_bounds(spec.startend_row_indices, spec.causal, seqlen)
    np.testing.assert_array_equal(masks.to_dense(four, False), dense)


@pytest.mark.parametrize("causal,sq,sk", [(True, 64, 64), (False, 64, 64), (True, 40, 70)])
def test_pairs_without_mask_tensor(causal, sq, sk):
    dense = masks.to_dense(np.full([1, 1, sk, 1], sq, np.int32), True, sq) if causal else np.ones([1, 1, sq, sk])
    assert unmasked_pairs(None, causal, sq, sk, batch=3) == 3 * int(dense.sum())


@pytest.mark.parametrize("seqlen,window", [(1000, 300), (1000, 128), (1000, 1000), (640, 64), (513, 129)])
def test_tile_cost_blocks_per_tile_counts_visible_key_blocks(seqlen, window):
    from tile_cost import BLOCK_M, BLOCK_N, blocks_per_tile

    lts = np.minimum(np.arange(seqlen) + window, seqlen).astype(np.int32).reshape(1, 1, seqlen, 1)
    visible = masks.to_dense(lts, causal=True)[0, 0]
    counts = [sum(visible[m * BLOCK_M:(m + 1) * BLOCK_M, n * BLOCK_N:(n + 1) * BLOCK_N].any()
                  for n in range((seqlen + BLOCK_N - 1) // BLOCK_N))
              for m in range((seqlen + BLOCK_M - 1) // BLOCK_M)]
    assert blocks_per_tile(seqlen, window) == pytest.approx(np.mean(counts))


def test_tile_cost_fit_recovers_the_line():
    from tile_cost import blocks_per_tile, fit_tile_cost

    assert blocks_per_tile(8192, 8192) == pytest.approx(32.5)  # causal: (1 + 64) / 2

    blocks = [8.4, 14.9, 24.8, 32.5]
    a, b = fit_tile_cost(blocks, [4.6 + 1.72 * n for n in blocks])
    assert a == pytest.approx(4.6) and b == pytest.approx(1.72)


@pytest.mark.parametrize("name", PAPER_MASKS)
@pytest.mark.parametrize("seqlen,bm,bn", [(97, 32, 16), (256, 64, 64), (256, 16, 32)])
def test_block_census_is_conservative_and_exact_where_it_claims(name, seqlen, bm, bn):
    """block_efficiency.py's block kinds against the dense mask: a skipped block has no visible
    pair, an unmasked one no masked pair (nor padding keys), a causal-only one is exactly the
    causal triangle; the census counts the computed blocks' area."""
    from block_efficiency import block_census, classify_blocks

    spec = make_paper_mask(name, batch=2, seqlen=seqlen, seed=5, num_heads=2)
    idx = spec.startend_row_indices
    visible = spec.to_dense()
    computed, partial, causal_only = classify_blocks(idx, spec.causal, seqlen, bm, bn)
    mb, nb = computed.shape[2:]
    area = 0
    for b, h, m, n in np.ndindex(computed.shape):
        rows, keys = slice(m * bm, (m + 1) * bm), slice(n * bn, (n + 1) * bn)
        block = visible[b, h, rows, keys]
        padded = (n + 1) * bn > seqlen
        if not computed[b, h, m, n]:
            assert not block.any(), (b, h, m, n)
            continue
        area += block.size
        if not partial[b, h, m, n]:
            assert block.all() and not padded, (b, h, m, n)
        if causal_only[b, h, m, n]:
            r = np.arange(m * bm, min((m + 1) * bm, seqlen))[:, None]
            c = np.arange(n * bn, min((n + 1) * bn, seqlen))[None, :]
            np.testing.assert_array_equal(block, c <= r)
    census = block_census(idx, spec.causal, seqlen, bm, bn)
    assert census["blocks"] == int(computed.sum()) and census["pairs"] == area
    assert census["all_blocks"] == 2 * idx.shape[1] * mb * nb
    assert unmasked_pairs(idx, spec.causal, seqlen, seqlen) <= area


def test_block_census_of_a_sliding_window_counts_its_edges():
    """A causal window of w keys over 128-row tiles and 128-key blocks computes w + 128 keys per
    tile in the steady state: efficiency w / (w + 128) (RESULTS.md "Block efficiency")."""
    from block_efficiency import block_census

    s, w = 8192, 512
    lts = np.minimum(np.arange(s) + w, s).astype(np.int32).reshape(1, 1, s, 1)
    census = block_census(lts, True, s, 128, 128)
    useful = unmasked_pairs(lts, True, s, s)
    assert census["tiles"] == s // 128
    assert useful / census["pairs"] == pytest.approx(w / (w + 128), abs=0.01)
