"""`flashmask_attention` for torch tensors: the semantics of the Paddle API
(paddle_flashmask.api), with input checks that name the bad argument."""
from __future__ import annotations

import os

import torch

from .. import validation as v
from ._function import FlashMaskFunction

_FLOATS = (torch.float16, torch.bfloat16, torch.float32)
_CHECKED = v.CheckedOnce()


def flashmask_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                        startend_row_indices: torch.Tensor | None = None, *, dropout: float = 0.0,
                        causal: bool = False, window_size: int | tuple[int, int] | None = None,
                        return_softmax_lse: bool = False, return_seed_offset: bool = False,
                        fixed_seed_offset: torch.Tensor | None = None, training: bool = True,
                        softmax_scale: float | None = None,
                        deterministic: bool | None = None) -> torch.Tensor | list[torch.Tensor]:
    """Exact attention with a column-wise sparse mask (FlashMask, arXiv 2410.01359).

    Args:
        query: [batch, seqlen_q, num_heads, head_dim], float16/bfloat16 on CUDA
            (float32 too on the CPU); head_dim in 64, 96, 128, 192, 256 on CUDA.
        key, value: [batch, seqlen_k, num_heads_k, head_dim]; num_heads % num_heads_k == 0.
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

    Returns out, or a list [out, softmax_lse?, seed_offset?]. Rows masked everywhere give 0.

    Raises:
        RuntimeError: the extension is not built (`python custom_ops/torch/build.py`).
        TypeError: query, key, value, startend_row_indices or fixed_seed_offset is not a
            torch.Tensor; query/key/value are not one float16/bfloat16/float32 dtype
            (float32 on CUDA); startend_row_indices is not int32; causal or
            deterministic is not a bool, dropout or softmax_scale not a number,
            window_size not an int or a pair of ints.
        ValueError: the same shape, device, index-value and scalar-range errors as
            paddle_flashmask.flashmask_attention (a tensor not 4-D, num_heads not a
            multiple of num_heads_k, an unsupported head_dim, a mask of the wrong
            shape or column count, values outside [0, seqlen_q], dropout outside
            [0, 1), ...).

    Example (after `python custom_ops/torch/build.py`; CUDA tensors in 16-bit, or
    float32 on the CPU):
        >>> import torch
        >>> from paddle_flashmask.masks import causal_document_mask
        >>> from paddle_flashmask.torch import flashmask_attention
        >>> q = torch.randn(2, 128, 4, 64, device="cuda", dtype=torch.bfloat16)
        >>> k = v = torch.randn(2, 128, 2, 64, device="cuda", dtype=torch.bfloat16)
        >>> idx = torch.from_numpy(causal_document_mask([[50, 78], [128]]).startend_row_indices)
        >>> out = flashmask_attention(q, k, v, idx.cuda(), causal=True)
        >>> tuple(out.shape)
        (2, 128, 4, 64)
    """
    _check_inputs(query, key, value, startend_row_indices, dropout, causal, window_size,
                  fixed_seed_offset, softmax_scale, deterministic)
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
                                       dropout_p, bool(causal), scale, bool(deterministic))
    outputs = [out]
    if return_softmax_lse:
        outputs.append(lse)
    if return_seed_offset:
        outputs.append(seed_offset)
    return outputs[0] if len(outputs) == 1 else outputs


def window_startend_row_indices(batch: int, seqlen: int, window: tuple[int, int], causal: bool,
                                device: torch.device | str | None = None) -> torch.Tensor:
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
