"""Dropout: exact against the dense reference with the same Philox keep
pattern, and reproducible through (seed, offset)."""
import numpy as np
import paddle

import paddle_flashmask as pfm
from attention_cases import random_qkv, random_startend, rel_err
from philox import dropout_keep_mask, philox4x32_10
from reference import dense_allowed, dense_attention

P = 0.3


def seed_offset(seed, offset):
    return paddle.to_tensor(np.array([seed, offset], dtype=np.int64))


def test_dropout_matches_reference_fwd_and_grads():
    b, s, h, hk, d = 2, 77, 4, 2, 32
    q, k, v = random_qkv(b, s, s, h, hk, d)
    startend = random_startend(np.random.default_rng(0), b, 1, s, s, True, 2)
    so = seed_offset(2**40 + 12345, 7)
    out = pfm.flashmask_attention(q, k, v, startend, causal=True, dropout=P, fixed_seed_offset=so)
    keep = dropout_keep_mask(2**40 + 12345, 7, b, h, s, s, P)
    assert abs(keep.mean() - (1 - P)) < 0.01
    ref, _ = dense_attention(q, k, v, dense_allowed(startend, True, s, s),
                             dropout_keep=paddle.to_tensor(keep), dropout=P)
    assert rel_err(out, ref) <= 1e-5
    dout = paddle.randn(out.shape)
    for g, rg in zip(paddle.grad([out], [q, k, v], [dout]), paddle.grad([ref], [q, k, v], [dout])):
        assert rel_err(g, rg) <= 1e-4


def test_keep_pattern_is_the_kernels_for_a_p_inexact_in_float32():
    """p = 0.6 is not a float32: the op (a float32 attribute) keeps a word iff
    it lies below (1 - float32(0.6)) * 2**32, about 100 lower than with the
    double 0.6. This seed draws one word in that gap, at (b, h, i, j) =
    (1, 1, 168, 205) (found by the property test); the mirror must give the
    kernel's pattern there too. The pattern is read off the output: q = k = 0
    gives every key the same probability, v = one-hot keys puts key j in
    column j."""
    b, h, sq, sk, p = 2, 3, 251, 206, 0.6
    seed, offset = 3760276609654141963, 3
    # the word of (1, 1, 168, 205): counter (offset + j // 4, row (b * h + h) * sq + i), word j % 4
    row, col = (1 * h + 1) * sq + 168, offset + 205 // 4
    word = philox4x32_10(col, 0, row, 0, seed & 0xFFFFFFFF, seed >> 32)[205 % 4]
    assert int((1 - np.float32(p)) * 2.0**32) <= int(word) < int((1 - p) * 2.0**32)  # in the gap
    q = paddle.zeros([b, sq, h, 8])
    k = paddle.zeros([b, sk, h, 8])
    v = paddle.to_tensor(np.broadcast_to(np.eye(sk, dtype=np.float32)[None, :, None, :], (b, sk, h, sk)).copy())
    out = pfm.flashmask_attention(q, k, v, dropout=p, fixed_seed_offset=seed_offset(seed, offset))
    kept = out.numpy().transpose(0, 2, 1, 3) > 0  # [b, h, sq, sk]
    assert not kept[1, 1, 168, 205]
    assert (kept == dropout_keep_mask(seed, offset, b, h, sq, sk, p)).all()


def test_same_seed_same_result_and_returned_seed_reproduces():
    q, k, v = random_qkv(1, 64, 64, 2, 2, 16)
    out1, so = pfm.flashmask_attention(q, k, v, dropout=0.5, return_seed_offset=True)
    out2 = pfm.flashmask_attention(q, k, v, dropout=0.5, fixed_seed_offset=so)
    out3 = pfm.flashmask_attention(q, k, v, dropout=0.5)  # fresh seed
    assert float((out1 - out2).abs().max()) == 0.0
    assert float((out1 - out3).abs().max()) > 0.0


def test_paddle_seed_makes_runs_reproducible():
    q, k, v = random_qkv(1, 40, 40, 2, 2, 16)
    paddle.seed(99)
    a = pfm.flashmask_attention(q, k, v, dropout=0.2)
    paddle.seed(99)
    b = pfm.flashmask_attention(q, k, v, dropout=0.2)
    assert float((a - b).abs().max()) == 0.0


def test_no_dropout_outside_training():
    q, k, v = random_qkv(1, 40, 40, 2, 2, 16)
    plain = pfm.flashmask_attention(q, k, v, causal=True)
    evaluated = pfm.flashmask_attention(q, k, v, causal=True, dropout=0.5, training=False)
    assert float((plain - evaluated).abs().max()) == 0.0


def test_offset_changes_pattern():
    q, k, v = random_qkv(1, 40, 40, 2, 2, 16)
    a = pfm.flashmask_attention(q, k, v, dropout=0.5, fixed_seed_offset=seed_offset(5, 0))
    b = pfm.flashmask_attention(q, k, v, dropout=0.5, fixed_seed_offset=seed_offset(5, 64))
    assert float((a - b).abs().max()) > 0.0
