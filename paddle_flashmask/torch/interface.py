"""`flashmask_attention` for torch tensors: the semantics of the Paddle API
(paddle_flashmask.api), with input checks that name the bad argument."""
import os

import torch

from .. import validation as v
from ._function import FlashMaskFunction

_FLOATS = (torch.float16, torch.bfloat16, torch.float32)
_CHECKED = v.CheckedOnce()
_CHECKED_BLOCKS = v.CheckedOnce()


def flashmask_attention(query, key, value, startend_row_indices=None, *, dropout=0.0, causal=False,
                        window_size=None, return_softmax_lse=False, return_seed_offset=False,
                        fixed_seed_offset=None, training=True, softmax_scale=None,
                        deterministic=None, block_mask=None, learnable_sink=None):
    """Exact attention with a column-wise sparse mask (FlashMask, arXiv 2410.01359).

    Args:
        query: [batch, seqlen_q, num_heads, head_dim], float16/bfloat16 on CUDA
            (float32 too on the CPU); head_dim in 64, 96, 128, 192, 256 on CUDA.
        key: [batch, seqlen_k, num_heads_k, head_dim]; num_heads % num_heads_k == 0.
        value: [batch, seqlen_k, num_heads_k, head_dim_v]; head_dim_v != head_dim on CPU only.
        startend_row_indices: int32 [batch, 1 | num_heads_k | num_heads, seqlen_k, ncols];
            for key column j, row i is masked iff LTS <= i < LTE or UTS <= i < UTE:
            causal: ncols 1 = [LTS] (LTE = seqlen_q), 2 = [LTS, LTE];
            non-causal: ncols 2 = [LTS, UTE] (LTE = seqlen_q, UTS = 0), 4 = [LTS, LTE, UTS, UTE].
        dropout: probability of dropping an attention weight (when training).
        causal: also mask key j for row i when j > i + (seqlen_k - seqlen_q).
        window_size: int or (left, right): sliding window (no startend_row_indices).
        return_softmax_lse: also return the float32 lse [batch, num_heads, seqlen_q].
        return_seed_offset: also return the int64 [2] (seed, offset) the dropout used.
        fixed_seed_offset: int64 [2] (seed, offset) to reproduce a dropout pattern.
        training: dropout applies only when True.
        softmax_scale: defaults to head_dim ** -0.5.
        deterministic: bit-reproducible backward (slower); None reads
            FLASHMASK_DETERMINISTIC=1 from the environment.
        block_mask: Paddle 3.x's int32 [batch, heads, ceil(seqlen_q/128), ceil(seqlen_k/128)]
            of 0/1; 0 masks a 128 x 128 block. CPU only for now.
        learnable_sink: [num_heads] float32 or query's dtype: FlashMask V4's attention sink
            (unscaled logit in every row's denominator, no value; lse includes it). CPU only
            for now. Exact semantics: paddle_flashmask.flashmask_attention.

    Returns out [batch, seqlen_q, num_heads, head_dim_v], or a list [out, softmax_lse?,
    seed_offset?]. Rows masked everywhere give 0.
    """
    _check_inputs(query, key, value, startend_row_indices, dropout, causal, window_size,
                  fixed_seed_offset, softmax_scale, deterministic)
    _check_extras(query, key, startend_row_indices, block_mask, learnable_sink)
    if block_mask is not None:
        block_mask = block_mask.contiguous()
    if learnable_sink is not None:
        learnable_sink = learnable_sink.float().contiguous()  # autograd casts dsink back
    if window_size is not None:
        w = v.normalize_window(window_size)
        startend_row_indices = window_startend_row_indices(query.shape[0], query.shape[1], w, causal,
                                                           device=query.device)
    if startend_row_indices is not None and not startend_row_indices.is_contiguous():
        startend_row_indices = startend_row_indices.contiguous()
    scale = float(softmax_scale) if softmax_scale is not None else query.shape[-1] ** -0.5
    dropout_p = float(dropout) if training else 0.0
    if deterministic is None:
        deterministic = os.environ.get("FLASHMASK_DETERMINISTIC", "0") == "1"
    seed_offset = _seed_offset(fixed_seed_offset, dropout_p, query.device)
    out, lse = FlashMaskFunction.apply(query, key, value, startend_row_indices, seed_offset,
                                       dropout_p, bool(causal), scale, bool(deterministic),
                                       block_mask, learnable_sink)
    outputs = [out]
    if return_softmax_lse:
        outputs.append(lse)
    if return_seed_offset:
        outputs.append(seed_offset)
    return outputs[0] if len(outputs) == 1 else outputs


def window_startend_row_indices(batch, seqlen, window, causal, device=None):
    """startend_row_indices of a sliding window (key j seen by rows [j - right, j + left])."""
    left, right = window
    lts = torch.clamp(torch.arange(left + 1, seqlen + left + 1, dtype=torch.int32, device=device),
                      max=seqlen)
    if causal:
        idx = lts.reshape(1, 1, seqlen, 1)
    else:
        ute = torch.clamp(torch.arange(-right, seqlen - right, dtype=torch.int32, device=device), min=0)
        idx = torch.stack([lts, ute], dim=-1).reshape(1, 1, seqlen, 2)
    return idx.expand(batch, 1, seqlen, idx.shape[-1]).contiguous()


def _seed_offset(fixed, dropout_p, device):
    if fixed is not None:
        return fixed.to(device=device, dtype=torch.int64).contiguous()
    if dropout_p == 0.0:
        return torch.zeros(2, dtype=torch.int64, device=device)
    seed = torch.randint(0, 2**62, (1,), dtype=torch.int64, device=device)
    return torch.cat([seed, torch.zeros(1, dtype=torch.int64, device=device)])


def _check_inputs(query, key, value, idx, dropout, causal, window_size, fixed_seed_offset,
                  softmax_scale, deterministic):
    """The torch-specific facts here; the rest in paddle_flashmask/validation.py,
    shared with the Paddle door."""
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        v.check_rank4(name, t.shape, "[batch, seqlen, num_heads, head_dim]")
        if t.dtype not in _FLOATS:
            raise TypeError(f"{name} must be float16, bfloat16 or float32, got {t.dtype}")
    if key.dtype != query.dtype or value.dtype != query.dtype:
        raise TypeError(f"query, key and value must share one dtype, got {query.dtype}, {key.dtype}, {value.dtype}")
    for name, t in (("key", key), ("value", value)):
        if t.device != query.device:
            raise ValueError(f"{name} is on {t.device} but query is on {query.device}")
    on_gpu = query.is_cuda
    if on_gpu and query.dtype == torch.float32:
        raise TypeError("query: float32 is supported on CPU only; use float16 or bfloat16 on GPU")
    b, sq, h, _, sk, hk = v.check_qkv_shapes(tuple(query.shape), tuple(key.shape),
                                              tuple(value.shape), on_gpu)
    v.check_scalars(causal, dropout, softmax_scale)
    if deterministic is not None and not isinstance(deterministic, bool):
        raise TypeError(f"deterministic must be a bool or None, got {type(deterministic).__name__}")
    if fixed_seed_offset is not None:
        if not isinstance(fixed_seed_offset, torch.Tensor):
            raise TypeError(f"fixed_seed_offset must be a torch.Tensor, got {type(fixed_seed_offset).__name__}")
        v.check_seed_offset(fixed_seed_offset.dtype == torch.int64, fixed_seed_offset.shape,
                            fixed_seed_offset.dtype)
    if window_size is not None:
        v.check_window(window_size, idx is not None, sq, sk)
    if idx is not None:
        _check_indices(idx, causal, b, sq, sk, h, hk, query.device)


def _check_indices(idx, causal, b, sq, sk, h, hk, device):
    if not isinstance(idx, torch.Tensor):
        raise TypeError(f"{v.INDICES} must be a torch.Tensor, got {type(idx).__name__}")
    if idx.dtype != torch.int32:
        raise TypeError(f"{v.INDICES} must be int32, got {idx.dtype}")
    v.check_indices_shape(tuple(idx.shape), causal=causal, batch=b, seqlen_k=sk, num_heads=h,
                          num_heads_k=hk)
    if idx.device != device:
        raise ValueError(f"{v.INDICES} is on {idx.device} but query is on {device}")
    # Values need the data: one device sync, once per tensor version (a mask
    # shared by all layers is checked once); PADDLE_FLASHMASK_CHECK_INDICES=0 skips it.
    if os.environ.get("PADDLE_FLASHMASK_CHECK_INDICES", "1") != "0" and not _CHECKED.seen(
            idx, idx._version, sq, causal):
        v.check_index_values(int(idx.min()), int(idx.max()), sq, causal, idx.shape[-1],
                             lambda s, e: bool((idx[..., s] > idx[..., e]).any()))
        _CHECKED.add(idx, idx._version, sq, causal)


def _check_extras(query, key, idx, block_mask, sink):
    b, sq, h = query.shape[:3]
    sk, hk = key.shape[1:3]
    if query.is_cuda:
        v.refuse_cpu_only_on_gpu(block_mask, sink)
    if block_mask is not None:
        if not isinstance(block_mask, torch.Tensor):
            raise TypeError(f"block_mask must be a torch.Tensor, got {type(block_mask).__name__}")
        if block_mask.dtype != torch.int32:
            raise TypeError(f"block_mask must be int32, got {block_mask.dtype}")
        v.check_block_mask_shape(tuple(block_mask.shape), batch=b, seqlen_q=sq, seqlen_k=sk,
                                 num_heads=h, num_heads_k=hk,
                                 mask_heads=None if idx is None else idx.shape[1])
        if block_mask.device != query.device:
            raise ValueError(f"block_mask is on {block_mask.device} but query is on {query.device}")
        if os.environ.get("PADDLE_FLASHMASK_CHECK_INDICES", "1") != "0" and not _CHECKED_BLOCKS.seen(
                block_mask, block_mask._version):
            v.check_block_mask_values(int(block_mask.min()), int(block_mask.max()))
            _CHECKED_BLOCKS.add(block_mask, block_mask._version)
    if sink is not None:
        if not isinstance(sink, torch.Tensor):
            raise TypeError(f"learnable_sink must be a torch.Tensor, got {type(sink).__name__}")
        if sink.dtype not in (torch.float32, query.dtype):
            raise TypeError(f"learnable_sink must be float32 or query's dtype ({query.dtype}), got {sink.dtype}")
        v.check_sink_shape(tuple(sink.shape), h)
        if sink.device != query.device:
            raise ValueError(f"learnable_sink is on {sink.device} but query is on {query.device}")
