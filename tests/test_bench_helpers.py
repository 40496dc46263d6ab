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


def _timing(fwd_ms, total_ms):
    return {"fwd_ms": fwd_ms, "total_ms": total_ms, "bwd_ms": total_ms - fwd_ms,
            "fwd_tflops": 500.0, "bwd_tflops": 400.0, "total_tflops": 430.0}


def _suite_row(mask, results, seqlen=8192, kv_heads=32):
    return {"mask": mask, "seqlen": seqlen, "head_dim": 128, "batch": 131072 // seqlen, "heads": 32,
            "kv_heads": kv_heads, "density": 0.5, "fwd_flops": 1e12, "results": results}


SUITE_META = {"date": "2026-12-06 00:00 UTC", "device": "NVIDIA H100 80GB HBM3", "torch": "2.11.0",
              "command": "python benchmarks/mask_suite.py run", "tokens": 131072, "heads": 32,
              "grad_reset": True}


def _table_rows(md, header_start):
    """{mask: cells} of the markdown table whose header line starts with header_start."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def test_suite_report_v3_columns_ratios_and_missing_entries():
    """x V3 = V3's time / ours (ours faster => > 1); a mask V3 did not run, or failed, shows "-"."""
    import mask_suite

    flex = _timing(15.0, 60.0)
    rows = [_suite_row("full", {"flashmask": _timing(10.0, 40.0), "flex": flex,
                                "fmv3": {**_timing(12.0, 50.0), "max_abs_diff_vs_flashmask": 0.0039}}),
            _suite_row("causal", {"flashmask": _timing(8.0, 30.0), "flex": flex}),
            _suite_row("sliding_window", {"flashmask": _timing(4.0, 16.0), "flex": flex,
                                          "fmv3": {"error": "RuntimeError: boom"}})]
    md = mask_suite.markdown(rows, [SUITE_META])
    table = _table_rows(md, "| mask | our fwd ms | V3 fwd ms")
    # fwd ours / V3 / x, bwd ours / V3 / x, total ours / V3 / x, diff
    assert table["full"] == ["10.00", "12.00", "1.20", "30.00", "38.00", "1.27", "40.00", "50.00", "1.25",
                             "3.9e-03"]
    assert table["causal"] == ["8.00", "-", "-", "22.00", "-", "-", "30.00", "-", "-", "-"]
    assert table["sliding_window"] == ["4.00", "-", "-", "12.00", "-", "-", "16.00", "-", "-", "-"]
    assert "x V3 = V3's time / ours: > 1 = ours faster" in md
    assert "- error: sliding_window fmv3: RuntimeError: boom" in md
    assert "- fmv3 = the official FlashMask V3" in md


def test_suite_report_names_each_runs_card_when_they_differ():
    import mask_suite

    rows = [_suite_row("causal", {"flashmask": _timing(8.0, 30.0), "flex": _timing(12.0, 45.0)})]
    h200 = {**SUITE_META, "device": "NVIDIA H200", "command": "python benchmarks/mask_suite.py run --seqlens 32768"}
    md = mask_suite.markdown(rows, [SUITE_META])
    assert "- device: NVIDIA H100 80GB HBM3; torch 2.11.0" in md and "devices:" not in md
    md = mask_suite.markdown(rows, [SUITE_META, h200])
    assert "- device:" not in md
    assert ("- command (NVIDIA H100 80GB HBM3, torch 2.11.0, 2026-12-06 00:00 UTC): "
            "`python benchmarks/mask_suite.py run`") in md
    assert "- command (NVIDIA H200, torch 2.11.0, 2026-12-06 00:00 UTC): `python benchmarks/mask_suite.py run --seqlens 32768`" in md


def test_suite_report_dates_the_rows_of_an_older_run_in_the_same_table():
    """A table (length, head dim) whose rows come from two runs: the older run's masks carry its
    date (in the main table and the V3 table); a table with a single run is not marked, even
    where a newer run filled another head dim at its length."""
    import mask_suite

    new, old = "2026-12-07 15:06 UTC", "2026-11-25 00:19 UTC"
    v3 = {**_timing(12.0, 50.0), "max_abs_diff_vs_flashmask": 0.0039}
    rows = [{**_suite_row("causal", {"flashmask": _timing(8.0, 30.0), "fmv3": v3}, seqlen=32768), "run_date": new},
            {**_suite_row("document", {"flashmask": _timing(8.0, 30.0)}, seqlen=32768), "run_date": old},
            {**_suite_row("causal", {"flashmask": _timing(8.0, 30.0)}), "run_date": old},
            # a newer run of another head dim at 8K dates nothing in the D = 128 table
            {**_suite_row("causal", {"flashmask": _timing(8.0, 30.0)}), "head_dim": 256, "run_date": new}]
    md = mask_suite.markdown(rows, [SUITE_META])
    assert "- a mask shown with a date comes from that earlier run" in md
    s32, s8 = md[md.index("### S = 32768"):], md[md.index("### S = 8192, D = 128"):md.index("### S = 32768")]
    assert set(_table_rows(s32, "| mask | density")) == {"causal", "document (2026-11-25)"}
    assert set(_table_rows(s32, "| mask | our fwd ms | V3 fwd ms")) == {"causal", "document (2026-11-25)"}
    assert set(_table_rows(s8, "| mask | density")) == {"causal"}
    # the bars are against flex: a length without its timings has no line (and does not fail)
    assert "S = 32768" not in mask_suite.targets(rows)


def test_suite_report_keeps_the_newest_run_of_each_config():
    import mask_suite

    def row(mask, date, ms, d=128):
        return {**_suite_row(mask, {"flashmask": _timing(ms, 4 * ms)}, seqlen=32768), "head_dim": d, "run_date": date}

    old, new = "2026-11-25 00:19 UTC", "2026-12-07 15:06 UTC"
    rows = [row("causal", old, 9.0), row("document", old, 7.0), row("causal", old, 5.0, d=256),
            row("causal", new, 8.0)]
    kept = mask_suite.newest_rows(rows)
    assert [(r["mask"], r["head_dim"], r["run_date"]) for r in kept] == [
        ("document", 128, old), ("causal", 256, old), ("causal", 128, new)]


def test_suite_report_without_v3_has_no_v3_table():
    import mask_suite

    rows = [_suite_row("causal", {"flashmask": _timing(8.0, 30.0), "flex": _timing(12.0, 45.0)})]
    del rows[0]["kv_heads"]  # JSON of runs before --kv-heads: MHA
    md = mask_suite.markdown(rows, [SUITE_META])
    assert "V3" not in md and "GQA" not in md
    assert "### S = 8192, D = 128 (B = 16)" in md


def test_suite_report_gqa_runs_get_their_own_sections_and_stay_out_of_the_targets():
    import mask_suite

    def mha_and_gqa(kv_heads, ours_ms):
        return [_suite_row(m, {"flashmask": _timing(ours_ms, 4 * ours_ms), "flex": _timing(15.0, 60.0)},
                           kv_heads=kv_heads) for m in ("causal", "document")]

    mha, gqa = mha_and_gqa(32, 8.0), mha_and_gqa(8, 20.0)
    md = mask_suite.markdown(mha + gqa, [SUITE_META])
    assert md.index("### S = 8192, D = 128 (B = 16)") < md.index("### S = 8192, D = 128, GQA H = 32, Hk = 8 (B = 16)")
    assert "- GQA sections:" in md
    assert mask_suite.targets(mha + gqa) == mask_suite.targets(mha)
    assert mask_suite.targets(gqa) == ""  # a GQA-only report has no bars to check: no empty heading


def test_suite_plots_include_v3_and_one_file_per_gqa_run(tmp_path):
    pytest.importorskip("matplotlib")
    import mask_suite

    rows = [_suite_row("full", {"flashmask": _timing(10.0, 40.0), "fmv3": _timing(12.0, 50.0)}),
            _suite_row("full", {"flashmask": _timing(10.0, 40.0), "flex": _timing(15.0, 60.0)}, kv_heads=8)]
    paths = mask_suite.plot(rows, str(tmp_path))
    assert [os.path.basename(p) for p in paths] == ["mask_suite_S8192.png", "mask_suite_S8192_gqa8.png"]


def test_suite_run_arguments_add_v3_only_with_its_build(monkeypatch):
    import mask_suite

    monkeypatch.delenv("FLASHMASK_FMV3_BUILD", raising=False)
    args = mask_suite.parse_args(["run"])
    assert "fmv3" not in args.impls and args.kv_heads == args.heads == 32
    args = mask_suite.parse_args(["run", "--fmv3", "/x/build", "--kv-heads", "8"])
    assert args.impls[-1] == "fmv3" and args.kv_heads == 8
    monkeypatch.setenv("FLASHMASK_FMV3_BUILD", "/y/build")
    assert mask_suite.parse_args(["run", "--impls", "fmv3"]).fmv3 == "/y/build"
    monkeypatch.delenv("FLASHMASK_FMV3_BUILD")
    for bad in (["--impls", "fmv3"], ["--kv-heads", "5"]):
        with pytest.raises(SystemExit):
            mask_suite.parse_args(["run", *bad])
