"""`flashmask_attention` for torch tensors: the semantics of the Paddle API
(paddle_flashmask.api), with input checks that name the bad argument."""
from __future__ import annotations

import torch

from .. import switches
from ..checks import INDICES, TensorFacts, as_bool, check_attention_inputs
from ..layouts import window_columns
from ._function import FlashMaskFunction


def flashmask_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                        startend_row_indices: torch.Tensor | None = None, *, dropout: float = 0.0,
                        causal: bool = False, window_size: int | tuple[int, int] | None = None,
                        return_softmax_lse: bool = False, return_seed_offset: bool = False,
                        fixed_seed_offset: torch.Tensor | None = None, training: bool = True,
                        softmax_scale: float | None = None,
                        deterministic: bool | None = None, block_mask: torch.Tensor | None = None,
                        learnable_sink: torch.Tensor | None = None
                        ) -> torch.Tensor | list[torch.Tensor]:
    """Exact attention with a column-wise sparse mask (FlashMask, arXiv 2410.01359).

    Args:
        query: [batch, seqlen_q, num_heads, head_dim], float16/bfloat16 on CUDA
            (float32 too on the CPU); head_dim up to 256 on CUDA (64/96/128/192/256 compiled,
            others zero-padded to the next).
        key: [batch, seqlen_k, num_heads_k, head_dim]; num_heads % num_heads_k == 0.
        value: [batch, seqlen_k, num_heads_k, head_dim_v]; head_dim_v may differ from head_dim
            (on CUDA, both zero-padded to the next compiled size holding both).
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
            of 0/1; 0 masks a 128 x 128 block (masked blocks are skipped).
        learnable_sink: [num_heads] float32 or query's dtype: FlashMask V4's attention sink
            (unscaled logit in every row's denominator, no value; lse includes it).
            Exact semantics: paddle_flashmask.flashmask_attention.

    Returns out [batch, seqlen_q, num_heads, head_dim_v], or a list [out, softmax_lse?,
    seed_offset?]. Rows masked everywhere give 0.

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
            shape or column count, dropout outside [0, 1), a value head dim
            unlike the key one on CUDA, ...).

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
    scalars = _check_inputs(query, key, value, startend_row_indices, fixed_seed_offset, causal,
                            dropout, softmax_scale, window_size, deterministic, block_mask,
                            learnable_sink)
    if block_mask is not None:
        block_mask = block_mask.contiguous()
    if learnable_sink is not None:
        learnable_sink = learnable_sink.float().contiguous()  # autograd casts dsink back
    if scalars.window is not None:
        startend_row_indices = window_startend_row_indices(query.shape[0], query.shape[1],
                                                           scalars.window, scalars.causal,
                                                           device=query.device)
    if startend_row_indices is not None and not startend_row_indices.is_contiguous():
        startend_row_indices = startend_row_indices.contiguous()
    scale = scalars.softmax_scale if scalars.softmax_scale is not None else query.shape[-1] ** -0.5
    dropout_p = scalars.dropout if training else 0.0
    if deterministic is None:
        deterministic = switches.deterministic()
    seed_offset = _seed_offset(fixed_seed_offset, dropout_p, query.device)
    value_dim = value.shape[-1]
    if scalars.pad_head_dim_to is not None:  # CUDA, head dims not compiled or Dv != D: exact zero padding
        query, key, value = (torch.nn.functional.pad(t, (0, scalars.pad_head_dim_to - t.shape[-1]))
                             for t in (query, key, value))
    out, lse = FlashMaskFunction.apply(query, key, value, startend_row_indices, seed_offset,
                                       dropout_p, scalars.causal, scale, bool(deterministic),
                                       block_mask, learnable_sink)
    if scalars.pad_head_dim_to is not None:
        out = out[..., :value_dim]
    outputs = [out]
    if return_softmax_lse:
        outputs.append(lse)
    if return_seed_offset:
        outputs.append(seed_offset)
    return outputs[0] if len(outputs) == 1 else outputs


def window_startend_row_indices(batch: int, seqlen: int, window: tuple[int, int], causal: bool,
                                device: torch.device | str | None = None) -> torch.Tensor:
    """startend_row_indices of a sliding window (key j seen by rows [j - right, j + left])."""
    cols = torch.arange(seqlen, dtype=torch.int64, device=device)
    columns = window_columns(cols, seqlen, window, causal, torch.clamp)
    idx = torch.stack(columns, dim=-1).to(torch.int32).reshape(1, 1, seqlen, len(columns))
    return idx.expand(batch, 1, seqlen, len(columns)).contiguous()


def _seed_offset(fixed, dropout_p, device):
    if fixed is not None:
        return fixed.to(device=device, dtype=torch.int64).contiguous()
    if dropout_p == 0.0:
        return torch.zeros(2, dtype=torch.int64, device=device)
    seed = torch.randint(0, 2**62, (1,), dtype=torch.int64, device=device)
    return torch.cat([seed, torch.zeros(1, dtype=torch.int64, device=device)])


def _describe(name, t):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    return TensorFacts(tuple(t.shape), str(t.dtype).split(".")[-1], str(t.device))


def _check_inputs(query, key, value, idx, fixed_seed_offset, causal, dropout, softmax_scale,
                  window_size, deterministic, block_mask, learnable_sink):
    """checks.check_attention_inputs on torch tensors; returns the checked Scalars."""
    if deterministic is not None:
        as_bool("deterministic", deterministic)
    facts = [_describe(n, t) if t is not None else None for n, t in
             (("query", query), ("key", key), ("value", value), (INDICES, idx),
              ("fixed_seed_offset", fixed_seed_offset))]
    extras = {n: _describe(n, t) if t is not None else None for n, t in
              (("block_mask", block_mask), ("learnable_sink", learnable_sink))}
    return check_attention_inputs(*facts, causal=causal, dropout=dropout,
                                  softmax_scale=softmax_scale, window_size=window_size, **extras)
