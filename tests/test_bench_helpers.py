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
