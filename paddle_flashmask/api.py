"""`flashmask_attention`: the signature and semantics of Paddle 3.x's
`paddle.nn.functional.flashmask_attention`, on our CPU and CUDA kernels."""
from __future__ import annotations

import paddle

from . import checks
from .raw_ops import attention_forward
from .validation import normalize_window


# Plain Python under to_static: the checks read static shapes (-1 where unknown)
# and must not be rewritten into graph control flow.
@paddle.jit.not_to_static
def flashmask_attention(query: paddle.Tensor, key: paddle.Tensor, value: paddle.Tensor,
                        startend_row_indices: paddle.Tensor | None = None, *, dropout: float = 0.0,
                        causal: bool = False, window_size: int | tuple[int, int] | None = None,
                        return_softmax_lse: bool = False, return_seed_offset: bool = False,
                        fixed_seed_offset: paddle.Tensor | None = None, rng_name: str = "",
                        training: bool = True, name: str | None = None,
                        softmax_scale: float | None = None) -> paddle.Tensor | list[paddle.Tensor]:
    """Exact attention with a column-wise sparse mask (FlashMask, arXiv 2410.01359).

    Args:
        query: [batch, seqlen_q, num_heads, head_dim], float16/bfloat16 (float32 on CPU too).
        key, value: [batch, seqlen_k, num_heads_k, head_dim]; num_heads % num_heads_k == 0.
        startend_row_indices: int32 [batch, 1 | num_heads_k | num_heads, seqlen_k, ncols].
            For key column j, query row i is masked iff LTS <= i < LTE or UTS <= i < UTE:
            causal=True:  ncols 1 = [LTS] (LTE = seqlen_q), ncols 2 = [LTS, LTE];
            causal=False: ncols 2 = [LTS, UTE] (LTE = seqlen_q, UTS = 0),
                          ncols 4 = [LTS, LTE, UTS, UTE].
            None: plain (or causal) attention.
        dropout: probability of dropping an attention weight (training only).
        causal: also mask key j for row i when j > i + (seqlen_k - seqlen_q).
        window_size: int or (left, right): sliding-window attention (no startend_row_indices).
        return_softmax_lse: also return the float32 log-sum-exp [batch, num_heads, seqlen_q]
            (-inf for rows that see no key; it carries no gradient).
        return_seed_offset: also return the int64 [2] (seed, offset) the dropout used.
        fixed_seed_offset: int64 [2] (seed, offset) to reproduce a dropout pattern.
        rng_name: draw the dropout seed from this named RNG state (fleet's RNG tracker).
        training: dropout is applied only when True.
        softmax_scale: defaults to head_dim ** -0.5.
        name: unused; kept for Paddle's signature.

    Returns:
        out [batch, seqlen_q, num_heads, head_dim], or a list with softmax_lse and/or
        seed_offset appended, as Paddle does. Rows masked everywhere give 0.

    Raises:
        TypeError: query, key, value, startend_row_indices or fixed_seed_offset is not a
            paddle Tensor; query/key/value are not one float16/bfloat16/float32 dtype
            (float32 on GPU); startend_row_indices is not int32; causal is not a bool,
            dropout or softmax_scale not a number, rng_name not a str, window_size not
            an int or a pair of ints.
        ValueError: a tensor is not 4-D; key and value shapes differ; batch or head_dim
            differ between query and key; a zero size; num_heads is not a multiple of
            num_heads_k; head_dim outside [1, 512] (or not 64/96/128/192/256 on GPU);
            key/value on another device than query; startend_row_indices with the wrong
            batch, head count, seqlen_k or column count for `causal`, values outside
            [0, seqlen_q], or a start above its end; dropout outside [0, 1);
            softmax_scale not positive and finite; fixed_seed_offset not int64 [2];
            window_size negative, combined with startend_row_indices, or with
            seqlen_q != seqlen_k.

    Example:
        >>> import paddle
        >>> from paddle_flashmask import causal_document_mask, flashmask_attention
        >>> q = paddle.randn([2, 128, 4, 32])
        >>> k = v = paddle.randn([2, 128, 2, 32])  # GQA: 4 query heads share 2 key heads
        >>> spec = causal_document_mask([[50, 78], [128]]).to_paddle()  # two packed rows
        >>> out = flashmask_attention(q, k, v, spec.startend_row_indices, causal=spec.causal)
        >>> list(out.shape)
        [2, 128, 4, 32]
        >>> out, lse = flashmask_attention(q, k, v, causal=True, window_size=16,
        ...                                return_softmax_lse=True)
        >>> list(lse.shape)
        [2, 4, 128]
    """
    checks.check_attention_inputs(
        query, key, value, startend_row_indices, dropout=dropout, causal=causal,
        window_size=window_size, fixed_seed_offset=fixed_seed_offset, rng_name=rng_name,
        softmax_scale=softmax_scale)
    if window_size is not None:
        startend_row_indices = window_startend_row_indices(
            query.shape[0], query.shape[1], normalize_window(window_size), causal)
    scale = float(softmax_scale) if softmax_scale is not None else query.shape[-1] ** -0.5
    dropout_p = float(dropout) if training else 0.0
    seed_offset = _seed_offset(fixed_seed_offset, dropout_p, rng_name)

    out, softmax_lse = attention_forward(query, key, value, startend_row_indices, seed_offset,
                                         dropout_p=dropout_p, causal=causal, softmax_scale=scale)
    softmax_lse.stop_gradient = True

    outputs = [out]
    if return_softmax_lse:
        outputs.append(softmax_lse)
    if return_seed_offset:
        outputs.append(seed_offset)
    return outputs[0] if len(outputs) == 1 else outputs


def window_startend_row_indices(batch: int, seqlen: int, window: tuple[int, int],
                                causal: bool) -> paddle.Tensor:
    """The startend_row_indices of a sliding window, built as Paddle builds it:
    key j is seen by rows [j - right, j + left]. int32 [batch, 1, seqlen, 1 if
    causal else 2]; the arguments are not checked (flashmask_attention checks
    window_size before calling this).

    Example:
        >>> from paddle_flashmask import window_startend_row_indices
        >>> window_startend_row_indices(1, 4, (1, 1), causal=True).flatten().tolist()
        [2, 3, 4, 4]
    """
    left, right = window
    lts = paddle.clip(paddle.arange(left + 1, seqlen + left + 1, dtype="int32"), max=seqlen)
    if causal:
        idx = lts.reshape([1, 1, seqlen, 1])
    else:
        ute = paddle.clip(paddle.arange(-right, seqlen - right, dtype="int32"), min=0)
        idx = paddle.stack([lts, ute], axis=-1).reshape([1, 1, seqlen, 2])
    return paddle.tile(idx, [batch, 1, 1, 1])


def _seed_offset(fixed_seed_offset, dropout_p, rng_name):
    if fixed_seed_offset is not None:
        return fixed_seed_offset
    if dropout_p == 0.0:
        return paddle.zeros([2], dtype="int64")
    if rng_name:
        from paddle.distributed.fleet.meta_parallel import get_rng_state_tracker

        with get_rng_state_tracker().rng_state(rng_name):
            words = paddle.randint(0, 2**31 - 1, [2], dtype="int64")
    else:
        words = paddle.randint(0, 2**31 - 1, [2], dtype="int64")
    # randint draws below 2^31: two draws make a 62-bit seed; the offset starts at 0.
    seed = words[0:1] * (2**31) + words[1:2]
    return paddle.concat([seed, paddle.zeros([1], dtype="int64")])
