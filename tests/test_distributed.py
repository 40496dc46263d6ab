"""Context-parallel FlashMask (paddle_flashmask.distributed) on CPU/gloo.

The multi-rank checks run in tests/dist_worker.py under
`python -m paddle.distributed.launch` (2 and 4 ranks, one launch each: every
mask layout, causal on/off, GQA, per-head and the paper's masks, both
strategies, with and without the balancer, and the bad-input cases), guarded
by a timeout that kills the whole process group. The rest runs in-process.
"""
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

from paddle_flashmask.distributed.balance import balance_shards, contiguous_plan
from paddle_flashmask.distributed.pair_counts import visible_keys_per_row
from paddle_flashmask.masks import to_dense
from paddle_flashmask.paper_masks import PAPER_MASKS, make_paper_mask

import paddle_flashmask

TESTS = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(TESTS, "dist_worker.py")
# The workers import the same paddle_flashmask this process imported (the
# installed package in CI, the source tree with an in-place build in development).
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(paddle_flashmask.__file__)))
LAUNCH_TIMEOUT_S = 240


def _launch(nproc, log_dir):
    env = dict(os.environ, PYTHONPATH=PACKAGE_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", str(nproc),
           "--log_dir", str(log_dir), WORKER]
    proc = subprocess.Popen(cmd, cwd=str(log_dir), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=LAUNCH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # launcher and every worker
        proc.communicate()
        pytest.fail(f"{nproc}-rank launch did not finish in {LAUNCH_TIMEOUT_S}s:\n"
                    + _worker_logs(log_dir))
    return proc.returncode, out.decode(errors="replace")


def _worker_logs(log_dir):
    texts = []
    for name in sorted(os.listdir(log_dir)):
        if name.startswith("workerlog."):
            with open(os.path.join(log_dir, name), errors="replace") as f:
                texts.append(f"--- {name}\n{f.read()[-4000:]}")
    return "\n".join(texts)


@pytest.mark.parametrize("nproc", [2, 4])
def test_context_parallel_matches_single_process(nproc, tmp_path):
    rc, out = _launch(nproc, tmp_path)
    logs = _worker_logs(tmp_path)
    results = re.findall(r"RESULT rank=(\d+) world=(\d+) cases=(\d+) failures=(\d+)", logs)
    assert rc == 0 and len(results) == nproc, f"launch rc={rc}\n{out[-3000:]}\n{logs}"
    assert all(int(f) == 0 for *_, f in results), logs
    assert all(int(c) >= 90 for _, _, c, _ in results), results


def _dense_visible_rows(idx, causal):
    allowed = to_dense(idx, causal)  # [B, h, S, S]
    return allowed.sum(axis=(0, 1, 3))


@pytest.mark.parametrize("name", PAPER_MASKS)
def test_pair_counts_match_dense(name):
    spec = make_paper_mask(name, batch=2, seqlen=96, seed=3, num_heads=2)
    got = visible_keys_per_row(spec.startend_row_indices, spec.causal)
    np.testing.assert_array_equal(got, _dense_visible_rows(spec.startend_row_indices, spec.causal))


def test_pair_counts_random_four_column():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 65, (2, 3, 64, 2)), rng.integers(0, 65, (2, 3, 64, 2))
    # [..., band, (start, end)] -> [LTS, LTE, UTS, UTE] with start <= end in each band
    idx = np.stack([np.minimum(a, b), np.maximum(a, b)], -1).reshape(2, 3, 64, 4).astype(np.int32)
    np.testing.assert_array_equal(visible_keys_per_row(idx, False), _dense_visible_rows(idx, False))


@pytest.mark.parametrize("causal,ncols", [(True, 1), (True, 2), (False, 2), (False, 4)])
def test_pair_counts_any_int32_bounds(causal, ncols):
    """Out-of-range and start > end bounds count as the kernels read them."""
    rng = np.random.default_rng(1)
    idx = rng.integers(-70, 140, (2, 2, 64, ncols)).astype(np.int32)
    np.testing.assert_array_equal(visible_keys_per_row(idx, causal), _dense_visible_rows(idx, causal))


def test_plan_permutation_roundtrip():
    spec = make_paper_mask("share_question", batch=1, seqlen=256, seed=0)
    plan = balance_shards(spec.startend_row_indices, True, world_size=4)
    assert sorted(plan.perm.tolist()) == list(range(256))
    np.testing.assert_array_equal(plan.perm[plan.inverse], np.arange(256))
    x = np.arange(256)[None, :, None] * np.ones((2, 1, 3))
    shards = [plan.shard(x, r) for r in range(4)]
    np.testing.assert_array_equal(plan.unshard(shards), x)
    for r in range(4):
        pos = plan.position_ids(r)
        assert np.all(np.diff(pos) > 0) and len(pos) == 64  # ascending, equal tokens per rank
        np.testing.assert_array_equal(shards[r][0, :, 0], pos)


def test_zigzag_balances_causal():
    seqlen, world = 1 << 16, 8
    causal = np.full((1, 1, seqlen, 1), seqlen, dtype=np.int32)
    assert contiguous_plan(causal, True, world).imbalance >= 1.5
    plan = balance_shards(causal, True, world)
    assert plan.strategy == "zigzag" and plan.imbalance <= 1.0001


@pytest.mark.parametrize("name", ["causal_document", "share_question"])
def test_balancer_beats_contiguous_on_documents(name):
    spec = make_paper_mask(name, batch=1, seqlen=1 << 15, seed=0)
    plan = balance_shards(spec.startend_row_indices, spec.causal, 8)
    naive = contiguous_plan(spec.startend_row_indices, spec.causal, 8)
    assert plan.imbalance <= min(naive.imbalance, 1.05)


def test_balancer_rejects_bad_chunking():
    causal = np.full((1, 1, 100, 1), 100, dtype=np.int32)
    with pytest.raises(ValueError, match="multiple of world_size"):
        balance_shards(causal, True, world_size=8)
    with pytest.raises(ValueError, match="multiple of world_size"):
        balance_shards(causal, True, world_size=2, chunk_size=30)


def test_single_rank_is_the_plain_op():
    """World of one (no launch): the CP path must reproduce the op exactly."""
    import paddle

    from paddle_flashmask import flashmask_attention
    from paddle_flashmask.distributed import context_parallel_flashmask_attention

    spec = make_paper_mask("prefix_lm_document", batch=2, seqlen=64, seed=1).to_paddle()
    paddle.seed(0)
    q, k, v = (paddle.randn([2, 64, h, 8]) for h in (4, 2, 2))
    want = flashmask_attention(q, k, v, spec.startend_row_indices, causal=spec.causal)
    for strategy in ("ring", "all_gather"):
        got = context_parallel_flashmask_attention(q, k, v, spec.startend_row_indices,
                                                   causal=spec.causal, strategy=strategy)
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-6)
