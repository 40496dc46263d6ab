"""Input checks of the Paddle door: the Paddle-specific facts (tensor types,
dtypes, places, index values) here, everything else in validation.py, shared
with the PyTorch door."""
import os

import paddle

from . import validation as v

FLOAT_DTYPES = (paddle.float16, paddle.bfloat16, paddle.float32)
_CHECKED = v.CheckedOnce()
_CHECKED_BLOCKS = v.CheckedOnce()


def _is_dygraph():
    return paddle.in_dynamic_mode()


def _check_tensor(name, t):
    if not isinstance(t, (paddle.Tensor, paddle.pir.Value, paddle.static.Variable)):
        raise TypeError(f"{name} must be a paddle.Tensor, got {type(t).__name__}")


def check_attention_inputs(query, key, value, startend_row_indices, *, dropout, causal,
                           window_size, fixed_seed_offset, rng_name, softmax_scale,
                           block_mask=None, learnable_sink=None):
    for name, t in (("query", query), ("key", key), ("value", value)):
        _check_tensor(name, t)
        v.check_rank4(name, t.shape, "[batch, seqlen, num_heads, head_dim]")
        if t.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{name} must be float16, bfloat16 or float32, got {t.dtype}")
    if key.dtype != query.dtype or value.dtype != query.dtype:
        raise TypeError(
            f"query, key and value must share one dtype, got {query.dtype}, {key.dtype}, {value.dtype}")
    on_gpu = _is_dygraph() and not query.place.is_cpu_place()
    if _is_dygraph():
        for name, t in (("key", key), ("value", value)):
            if str(t.place) != str(query.place):
                raise ValueError(f"{name} is on {t.place} but query is on {query.place}")
    if on_gpu and query.dtype == paddle.float32:
        raise TypeError("query: float32 is supported on CPU only; use float16 or bfloat16 on GPU")
    b, sq, h, _, sk, hk = v.check_qkv_shapes(query.shape, key.shape, value.shape, on_gpu)

    v.check_scalars(causal, dropout, softmax_scale)
    if not isinstance(rng_name, str):
        raise TypeError(f"rng_name must be a str, got {type(rng_name).__name__}")
    if fixed_seed_offset is not None:
        _check_tensor("fixed_seed_offset", fixed_seed_offset)
        v.check_seed_offset(fixed_seed_offset.dtype == paddle.int64, fixed_seed_offset.shape,
                            fixed_seed_offset.dtype)
    if window_size is not None:
        v.check_window(window_size, startend_row_indices is not None, sq, sk)
    if startend_row_indices is not None:
        check_startend_row_indices(startend_row_indices, causal=causal, batch=b, seqlen_q=sq,
                                   seqlen_k=sk, num_heads=h, num_heads_k=hk)
    if on_gpu:
        v.refuse_cpu_only_on_gpu(block_mask, learnable_sink)
    if block_mask is not None:
        mask_heads = startend_row_indices.shape[1] if startend_row_indices is not None else None
        check_block_mask(block_mask, batch=b, seqlen_q=sq, seqlen_k=sk, num_heads=h,
                         num_heads_k=hk, mask_heads=mask_heads, place=query.place)
    if learnable_sink is not None:
        check_learnable_sink(learnable_sink, query, h)


def check_startend_row_indices(idx, *, causal, batch, seqlen_q, seqlen_k, num_heads, num_heads_k):
    _check_tensor(v.INDICES, idx)
    if idx.dtype != paddle.int32:
        raise TypeError(f"{v.INDICES} must be int32, got {idx.dtype}")
    v.check_indices_shape(idx.shape, causal=causal, batch=batch, seqlen_k=seqlen_k,
                          num_heads=num_heads, num_heads_k=num_heads_k)
    # Values need the data: O(S) work and one sync on GPU, once per tensor version
    # (a mask shared by all layers is checked once); PADDLE_FLASHMASK_CHECK_INDICES=0 skips it.
    if (_is_dygraph() and os.environ.get("PADDLE_FLASHMASK_CHECK_INDICES", "1") != "0"
            and not _CHECKED.seen(idx, idx.inplace_version, seqlen_q, causal)):
        v.check_index_values(int(idx.min()), int(idx.max()), seqlen_q, causal, idx.shape[-1],
                             lambda s, e: bool((idx[..., s] > idx[..., e]).any()))
        _CHECKED.add(idx, idx.inplace_version, seqlen_q, causal)


def _check_place(name, t, place):
    if _is_dygraph() and str(t.place) != str(place):
        raise ValueError(f"{name} is on {t.place} but query is on {place}")


def check_block_mask(block_mask, *, batch, seqlen_q, seqlen_k, num_heads, num_heads_k, mask_heads,
                     place):
    _check_tensor("block_mask", block_mask)
    if block_mask.dtype != paddle.int32:
        raise TypeError(f"block_mask must be int32, got {block_mask.dtype}")
    v.check_block_mask_shape(block_mask.shape, batch=batch, seqlen_q=seqlen_q, seqlen_k=seqlen_k,
                             num_heads=num_heads, num_heads_k=num_heads_k, mask_heads=mask_heads)
    _check_place("block_mask", block_mask, place)
    if (_is_dygraph() and os.environ.get("PADDLE_FLASHMASK_CHECK_INDICES", "1") != "0"
            and not _CHECKED_BLOCKS.seen(block_mask, block_mask.inplace_version)):
        v.check_block_mask_values(int(block_mask.min()), int(block_mask.max()))
        _CHECKED_BLOCKS.add(block_mask, block_mask.inplace_version)


def check_learnable_sink(sink, query, num_heads):
    _check_tensor("learnable_sink", sink)
    if sink.dtype not in (paddle.float32, query.dtype):
        raise TypeError(f"learnable_sink must be float32 or query's dtype ({query.dtype}), got {sink.dtype}")
    v.check_sink_shape(sink.shape, num_heads)
    _check_place("learnable_sink", sink, query.place)
