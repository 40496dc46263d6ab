"""`flashmask_attention`: the signature and semantics of Paddle 3.x's
`paddle.nn.functional.flashmask_attention` (plus FlashMask V4's `learnable_sink`),
on our CPU and CUDA kernels."""
from __future__ import annotations

import paddle

from .checks import INDICES, TensorFacts, check_attention_inputs, known
from .layouts import window_columns
from .raw_ops import attention_forward


# Plain Python under to_static: the checks read static shapes (-1 where unknown)
# and must not be rewritten into graph control flow.
@paddle.jit.not_to_static
def flashmask_attention(query: paddle.Tensor, key: paddle.Tensor, value: paddle.Tensor,
                        startend_row_indices: paddle.Tensor | None = None, *, dropout: float = 0.0,
                        causal: bool = False, window_size: int | tuple[int, int] | None = None,
                        return_softmax_lse: bool = False, return_seed_offset: bool = False,
                        fixed_seed_offset: paddle.Tensor | None = None, rng_name: str = "",
                        training: bool = True, name: str | None = None,
                        softmax_scale: float | None = None, block_mask: paddle.Tensor | None = None,
                        learnable_sink: paddle.Tensor | None = None
                        ) -> paddle.Tensor | list[paddle.Tensor]:
    """Exact attention with a column-wise sparse mask (FlashMask, arXiv 2410.01359).

    Args:
        query: [batch, seqlen_q, num_heads, head_dim], float16/bfloat16 (float32 on CPU too);
            head_dim up to 512 on CPU, 256 on GPU (64/96/128/192/256 compiled, others zero-padded).
        key: [batch, seqlen_k, num_heads_k, head_dim]; num_heads % num_heads_k == 0.
        value: [batch, seqlen_k, num_heads_k, head_dim_v]; head_dim_v may differ from
            head_dim (e.g. MLA's 192 / 128); on GPU both run zero-padded to the next
            compiled size holding both (exact; no native Dv != D kernel yet).
        startend_row_indices: int32 [batch, 1 | num_heads_k | num_heads, seqlen_k, ncols].
            For key column j, query row i is masked iff LTS <= i < LTE or UTS <= i < UTE:
            causal=True:  ncols 1 = [LTS] (LTE = seqlen_q), ncols 2 = [LTS, LTE];
            causal=False: ncols 2 = [LTS, UTE] (LTE = seqlen_q, UTS = 0),
                          ncols 4 = [LTS, LTE, UTS, UTE].
            Any int32 is valid: a bound acts clamped into [0, seqlen_q], and a band
            whose start is at or past its end is empty (no value is read on the host).
            None: plain (or causal) attention.
        dropout: probability of dropping an attention weight (training only).
        causal: also mask key j for row i when j > i + (seqlen_k - seqlen_q).
        window_size: int or (left, right): row i sees keys [i - left, i + right] (no
            startend_row_indices); a window at least seqlen long means no limit.
        return_softmax_lse: also return the float32 log-sum-exp [batch, num_heads, seqlen_q]
            (-inf for rows that see no key; it carries no gradient).
        return_seed_offset: also return the int64 [2] (seed, offset) the dropout used.
        fixed_seed_offset: int64 [2] (seed, offset) to reproduce a dropout pattern.
        rng_name: draw the dropout seed from this named RNG state (fleet's RNG tracker).
        training: dropout is applied only when True.
        softmax_scale: defaults to head_dim ** -0.5 (the run-time head_dim in static graphs).
        block_mask: Paddle 3.x's block mask, int32 [batch, heads, ceil(seqlen_q / 128),
            ceil(seqlen_k / 128)]: 0 masks the whole 128 x 128 (query, key) block on top
            of startend_row_indices (or causal / window_size), 1 (any nonzero) keeps it. heads
            equals startend_row_indices.shape[1] (1, num_heads_k or num_heads when there is none;
            Paddle requires startend_row_indices, we also take it alone). Masked blocks are
            skipped, so they cost nothing. Any head dim and length (Paddle's needs head dim 128,
            S <= 128K).
        learnable_sink: FlashMask V4's attention sink, [num_heads], float32 or query's dtype:
            one logit per query head that joins every row's softmax denominator and carries
            no value: out_i = sum_j exp(s_ij - lse_i) v_j with s_ij = softmax_scale * q_i.k_j and
            lse_i = log(sum_j exp(s_ij) + exp(sink_h)). As in V4 and paddleformers' sink path,
            the sink logit is NOT multiplied by softmax_scale, the returned softmax_lse
            includes the sink, and dropout (if any) drops key weights only. Its gradient is
            dsink_h = -sum_{b,i} exp(sink_h - lse_i) * rowsum(dout_i * out_i). A row that sees
            no key gives out 0 and lse = sink_h (no NaN).
        name: unused; kept for Paddle's signature.
        Python or numpy scalars are accepted.

    Returns:
        out [batch, seqlen_q, num_heads, head_dim_v], or a list with softmax_lse and/or
        seed_offset appended, as Paddle does. Rows masked everywhere give 0; a row
        with a NaN score gives NaN (the README states the NaN/Inf rule). Double
        backward raises NotImplementedError.

    Raises:
        TypeError: query, key, value, startend_row_indices, fixed_seed_offset, block_mask or
            learnable_sink is not a paddle Tensor; query/key/value are not one
            float16/bfloat16/float32 dtype (float32 on GPU); startend_row_indices or
            block_mask is not int32; learnable_sink neither float32 nor query's dtype; causal
            is not a bool, dropout or softmax_scale not a number, rng_name not a str,
            window_size not an int or a pair of ints.
        ValueError: a tensor is not 4-D; value differs from key other than in head_dim;
            batch or head_dim differ between query and key; a zero size or one over
            2**31 - 1 (a seqlen over 2**31 - 2**16; num_heads over 65535 on GPU); num_heads is
            not a multiple of num_heads_k; head_dim or value head_dim outside [1, 512] (above
            256 on GPU, where head dims other than 64/96/128/192/256, and a value head_dim
            unlike head_dim, run zero-padded to a compiled one); a tensor on another device
            than query; startend_row_indices or block_mask with the wrong batch, head count or
            length, or a column count `causal` does not allow; learnable_sink not
            [num_heads]; dropout outside [0, 1) or softmax_scale not positive and finite as a
            float32; fixed_seed_offset not int64 [2]; window_size negative, combined with
            startend_row_indices, or with seqlen_q != seqlen_k. Under to_static and after
            jit.load, what is known only at run time raises from the op with the same words.
        NotImplementedError: double backward (a gradient of the gradient).

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
    scalars = check_inputs(query, key, value, startend_row_indices, fixed_seed_offset,
                           causal=causal, dropout=dropout, softmax_scale=softmax_scale,
                           window_size=window_size, rng_name=rng_name, block_mask=block_mask,
                           learnable_sink=learnable_sink)
    causal = scalars.causal
    if scalars.window is not None:
        startend_row_indices = window_startend_row_indices(
            *_batch_and_seqlen(query), scalars.window, causal)
    dropout_p = scalars.dropout if training else 0.0
    seed_offset = _seed_offset(fixed_seed_offset, dropout_p, rng_name)

    if learnable_sink is not None and learnable_sink.dtype != paddle.float32:
        learnable_sink = learnable_sink.astype("float32")  # its gradient casts back
    head_dim, value_dim, scale = query.shape[-1], value.shape[-1], scalars.softmax_scale
    if scalars.pad_head_dim_to is not None:  # GPU, head dims not compiled or Dv != D: exact zero padding
        query, key, value = (_zero_pad_head_dim(t, scalars.pad_head_dim_to) for t in (query, key, value))
        scale = scale if scale is not None else head_dim ** -0.5
    out, softmax_lse = attention_forward(query, key, value, startend_row_indices, seed_offset,
                                         dropout_p=dropout_p, causal=causal, softmax_scale=scale,
                                         block_mask=block_mask, learnable_sink=learnable_sink)
    if scalars.pad_head_dim_to is not None:
        out = out[..., :value_dim]
    softmax_lse.stop_gradient = True

    outputs = [out]
    if return_softmax_lse:
        outputs.append(softmax_lse)
    if return_seed_offset:
        outputs.append(seed_offset)
    return outputs[0] if len(outputs) == 1 else outputs


def window_startend_row_indices(batch: int | paddle.Tensor, seqlen: int | paddle.Tensor,
                                window: tuple[int, int], causal: bool) -> paddle.Tensor:
    """The startend_row_indices of a sliding window (key j is seen by rows
    [j - right, j + left]): int32 [batch, 1, seqlen, 1 if causal else 2]. batch
    and seqlen: ints, or scalar tensors where a static graph knows them only at
    run time; the arguments are not checked (flashmask_attention checks
    window_size before calling this).

    Example:
        >>> from paddle_flashmask import window_startend_row_indices
        >>> window_startend_row_indices(1, 4, (1, 1), causal=True).flatten().tolist()
        [2, 3, 4, 4]
    """
    if isinstance(seqlen, (paddle.Tensor, paddle.pir.Value)):
        seqlen = seqlen.astype("int64")
    cols = paddle.arange(seqlen, dtype="int64")
    columns = window_columns(cols, seqlen, window, causal, paddle.clip)
    idx = paddle.stack(columns, axis=-1).astype("int32").reshape([1, 1, -1, len(columns)])
    return paddle.tile(idx, [batch, 1, 1, 1])


def _zero_pad_head_dim(t, size):
    """t [B, S, H, d] -> [B, S, H, size], zeros appended (t itself when d ==
    size): q.k and the value columns kept are unchanged, the gradients flow
    back through the slice."""
    if t.shape[-1] == size:
        return t
    zeros = paddle.zeros_like(t[..., :1]).tile([1, 1, 1, size - t.shape[-1]])
    return paddle.concat([t, zeros], axis=-1)


def _batch_and_seqlen(query):
    """Static dims as ints; a dim a static graph knows only at run time from paddle.shape."""
    b, s = query.shape[0], query.shape[1]
    if known(b) and known(s):
        return b, s
    dims = paddle.shape(query)
    return (b if known(b) else dims[0]), (s if known(s) else dims[1])


def describe(name, t):
    """The checks' view of a Paddle tensor (dygraph, or a static-graph value)."""
    if not isinstance(t, (paddle.Tensor, paddle.pir.Value, paddle.static.Variable)):
        raise TypeError(f"{name} must be a paddle.Tensor, got {type(t).__name__}")
    device = ""
    if paddle.in_dynamic_mode():
        place = t.place
        device = ("cpu" if place.is_cpu_place() else
                  f"gpu:{place.gpu_device_id()}" if place.is_gpu_place() else str(place))
    return TensorFacts(tuple(-1 if d is None else d for d in t.shape), str(t.dtype).split(".")[-1],
                       device)


def check_inputs(query, key, value, startend_row_indices=None, fixed_seed_offset=None, *, causal,
                 dropout=0.0, softmax_scale=None, window_size=None, rng_name="", block_mask=None,
                 learnable_sink=None):
    """checks.check_attention_inputs on Paddle tensors; returns the checked Scalars."""
    if not isinstance(rng_name, str):
        raise TypeError(f"rng_name must be a str, got {type(rng_name).__name__}")
    facts = [describe(n, t) if t is not None else None for n, t in
             (("query", query), ("key", key), ("value", value),
              (INDICES, startend_row_indices), ("fixed_seed_offset", fixed_seed_offset))]
    extras = {n: describe(n, t) if t is not None else None for n, t in
              (("block_mask", block_mask), ("learnable_sink", learnable_sink))}
    return check_attention_inputs(*facts, causal=causal, dropout=dropout,
                                  softmax_scale=softmax_scale, window_size=window_size, **extras)


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
