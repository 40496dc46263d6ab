"""FlashMask on one packed causal-document batch: the op's output against the
dense-mask reference, the memory of startend_row_indices against a dense
mask, and the time of both.

    python examples/packed_attention_demo.py [--seqlen 4096] [--docs 8]
"""
import argparse
import time

import numpy as np
import paddle

import paddle_flashmask as pfm


def causal_document_indices(batch, seqlen, docs, rng):
    """[B, 1, S, 1]: each key's LTS is the end of its document."""
    cuts = np.sort(rng.choice(np.arange(1, seqlen), size=docs - 1, replace=False))
    ends = np.concatenate([cuts, [seqlen]])
    lts = np.repeat(ends, np.diff(np.concatenate([[0], ends])))
    return np.broadcast_to(lts.reshape(1, 1, seqlen, 1), (batch, 1, seqlen, 1)).astype(np.int32)


def dense_attention(q, k, v, allowed):
    """The O(S^2) baseline: softmax(QK^T / sqrt(D), masked by a dense bool
    [B, 1, S, S]) V. Every row of a causal document sees at least itself."""
    q, k, v = (t.transpose([0, 2, 1, 3]) for t in (q, k, v))
    scores = paddle.matmul(q, k, transpose_y=True) * q.shape[-1] ** -0.5
    scores = paddle.where(allowed, scores, paddle.full_like(scores, float("-inf")))
    return paddle.matmul(paddle.nn.functional.softmax(scores, axis=-1), v).transpose([0, 2, 1, 3])


def timed(fn, repeat=3):
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        result = fn()
    return result, (time.perf_counter() - start) / repeat


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seqlen", type=int, default=4096)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--head_dim", type=int, default=64)
    ap.add_argument("--docs", type=int, default=8)
    args = ap.parse_args()

    paddle.seed(0)
    b, s, h, d = args.batch, args.seqlen, args.heads, args.head_dim
    q, k, v = (paddle.randn([b, s, h, d]) for _ in range(3))
    idx = paddle.to_tensor(causal_document_indices(b, s, args.docs, np.random.default_rng(0)))

    out, t_flash = timed(lambda: pfm.flashmask_attention(q, k, v, idx, causal=True))
    allowed = paddle.to_tensor(pfm.to_dense(idx, causal=True))
    ref, t_dense = timed(lambda: dense_attention(q, k, v, allowed))

    err = float((out - ref).abs().max())
    print(f"packed batch: B={b} S={s} H={h} D={d}, {args.docs} causal documents per row")
    print(f"max |flashmask - dense reference| = {err:.2e}")
    print(f"mask memory: startend_row_indices {idx.numel() * 4 / 2**10:,.1f} KiB "
          f"vs dense bool mask {b * s * s / 2**20:,.1f} MiB "
          f"(vs dense fp32 additive mask {4 * b * s * s / 2**20:,.1f} MiB)")
    print(f"forward time: flashmask {t_flash * 1e3:,.1f} ms, dense-masked reference "
          f"{t_dense * 1e3:,.1f} ms ({t_dense / t_flash:.1f}x)")
    print("out[0, :3, 0, :4] =", np.array2string(out[0, :3, 0, :4].numpy(), precision=4,
                                                   floatmode="fixed", prefix="out[0, :3, 0, :4] = "))


if __name__ == "__main__":
    main()
