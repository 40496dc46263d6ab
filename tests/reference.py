"""Dense reference FlashMask attention from plain Paddle ops.

O(S^2) memory: the ground truth of the tests and the "dense mask" baseline of
the CPU benchmark; differentiable and usable under to_static. Test-only: it
does not ship in the package.
"""
import paddle

from paddle_flashmask.layouts import decode


def dense_allowed(startend_row_indices, causal, seqlen_q, seqlen_k, block_mask=None):
    """bool [B, h, Sq, Sk]: True where query row i may attend to key j.
    With no indices, [1, 1, Sq, Sk] (all True, or the causal triangle).
    block_mask (Paddle's, int32 [B, h, ceil(Sq/128), ceil(Sk/128)]) also masks the
    128 x 128 blocks where it is 0."""
    rows = paddle.arange(seqlen_q, dtype="int32").reshape([1, 1, seqlen_q, 1])
    cols = paddle.arange(seqlen_k, dtype="int32").reshape([1, 1, 1, seqlen_k])
    if startend_row_indices is None:
        masked = paddle.zeros([1, 1, seqlen_q, seqlen_k], dtype="bool")
    else:
        lts, lte, uts, ute = (t.unsqueeze(2) if isinstance(t, paddle.Tensor) else t for t in
                              decode(startend_row_indices, causal, seqlen_q))
        masked = ((rows >= lts) & (rows < lte)) | ((rows >= uts) & (rows < ute))
    if causal:
        masked = masked | (cols > rows + (seqlen_k - seqlen_q))
    allowed = ~masked
    if block_mask is not None:
        kept = paddle.repeat_interleave(block_mask, 128, axis=2)
        kept = paddle.repeat_interleave(kept, 128, axis=3)[:, :, :seqlen_q, :seqlen_k]
        allowed = allowed & (kept != 0)
    return allowed


def dense_attention(query, key, value, allowed=None, *, softmax_scale=None, dropout_keep=None,
                    dropout=0.0, sink=None, compute_dtype="float64"):
    """softmax(QK^T * scale, masked) V in compute_dtype, rows with no allowed key -> 0.

    allowed: bool [B | 1, 1 | Hk | H, Sq, Sk] or None. dropout_keep: optional bool
    [B, H, Sq, Sk] keep pattern, applied as keep / (1 - dropout). sink: optional [H]
    learnable-sink logits (unscaled), an extra softmax column with no value; lse then
    includes it. value may have its own head dim. Returns (out, lse) (lse in compute_dtype).
    """
    dtype = query.dtype
    b, sq, h, d = query.shape
    hk = key.shape[2]
    scale = softmax_scale if softmax_scale is not None else d ** -0.5
    q = query.astype(compute_dtype).transpose([0, 2, 1, 3])
    k = key.astype(compute_dtype).transpose([0, 2, 1, 3])
    v = value.astype(compute_dtype).transpose([0, 2, 1, 3])
    if hk != h:
        k = paddle.repeat_interleave(k, h // hk, axis=1)
        v = paddle.repeat_interleave(v, h // hk, axis=1)
    scores = paddle.matmul(q, k, transpose_y=True) * scale
    if allowed is not None:
        if allowed.shape[1] not in (1, h):
            allowed = paddle.repeat_interleave(allowed.astype("int32"), h // allowed.shape[1],
                                               axis=1).astype("bool")
        scores = paddle.where(allowed, scores, paddle.full_like(scores, float("-inf")))
    # The shift carries no gradient (softmax is shift invariant); detaching it also
    # avoids Paddle's very slow CPU max backward.
    row_max = scores.max(axis=-1, keepdim=True).detach()
    if sink is not None:
        sink = sink.astype(compute_dtype).reshape([1, h, 1, 1])
        row_max = paddle.maximum(row_max, sink.detach().expand(row_max.shape))
    safe_max = paddle.where(paddle.isinf(row_max), paddle.zeros_like(row_max), row_max)
    e = paddle.exp(scores - safe_max)
    # Zero masked scores explicitly (Paddle's CPU float32 exp(-inf) is ~1e-38, not 0).
    e = paddle.where(paddle.isinf(scores), paddle.zeros_like(e), e)
    denom = e.sum(axis=-1, keepdim=True)
    if sink is not None:
        denom = denom + paddle.exp(sink - safe_max)
    probs = e / paddle.where(denom > 0, denom, paddle.ones_like(denom))
    lse = (paddle.log(denom) + safe_max).squeeze(-1)
    if dropout_keep is not None:
        probs = probs * dropout_keep.astype(compute_dtype) / (1.0 - dropout)
    out = paddle.matmul(probs, v).transpose([0, 2, 1, 3])
    return out.astype(dtype), lse.astype("float32")


def reference_flashmask_attention(query, key, value, startend_row_indices=None, *, causal=False,
                                  softmax_scale=None, block_mask=None, learnable_sink=None,
                                  compute_dtype="float32"):
    """Dense equivalent of flashmask_attention (no dropout): returns (out, lse)."""
    allowed = dense_allowed(startend_row_indices, causal, query.shape[1], key.shape[1],
                            block_mask=block_mask)
    return dense_attention(query, key, value, allowed, softmax_scale=softmax_scale,
                           sink=learnable_sink, compute_dtype=compute_dtype)
