"""paddleformers integration: our FlashMask op as paddleformers' "flashmask" attention.

paddleformers models pick their attention function from a registry,
`paddleformers.nn.attention.interface.AttentionInterface`, by
`config._attn_implementation`. `enable()` puts our op there under "flashmask",
so every model that goes through the registry (Llama, ERNIE 4.5, Gemma 3,
Phi-3, Qwen, ...) runs our CPU or CUDA kernel on the
`attn_mask_startend_row_indices` its data collators emit.

    from paddle_flashmask.integrations import paddleformers as pf_flashmask

    pf_flashmask.use_flash_mask(model, flash_mask=True)   # registers + selects "flashmask"
    loss = model(input_ids, labels=labels, position_ids=pos,
                 attn_mask_startend_row_indices=indices)[0]

The registered function computes what paddleformers' `eager` attention computes
for every caller, and hands the calls our kernel cannot serve to paddleformers'
own implementations (see `flashmask_attention_forward`).

`flash_mask=False` is the dense baseline on the same batch (PaddleNLP's
`--flash_mask` switch): the model runs paddleformers' `eager` attention, which
expands the very same indices (after the model's own sliding-window
adjustment) into a dense [B, 1, S, S] mask in every layer. Both modes therefore
attend through the same mask for every model family.
"""
import argparse
import sys

import numpy as np
import paddle

from ..api import flashmask_attention

ATTENTION_KEY = "flashmask"
DENSE_ATTENTION_KEY = "eager"
INDICES_KEY = "attn_mask_startend_row_indices"  # the batch key paddleformers models take

# Modules that call the registry with q already multiplied by the scale they
# want and pass `scaling=` only for the record: they were written against
# paddleformers' built-in "flashmask", which ignores `scaling` (it always uses
# 1/sqrt(head_dim)) unless the call has a sink. DeepSeek-V3 pre-scales q by
# softmax_scale * sqrt(head_dim) when _attn_implementation == "flashmask".
BUILTIN_SCALE_CALLERS = frozenset({"paddleformers.transformers.deepseek_v3.modeling"})

_replaced = {}  # key -> the function enable() replaced, for disable()


def flashmask_attention_forward(module, query, key, value, attention_mask=None,
                                attn_mask_startend_row_indices=None, dropout=0.0, sink=None,
                                scaling=None, is_causal=None, **kwargs):
    """paddleformers' attention-function signature, on paddle_flashmask.

    query/key/value: [batch, heads, seqlen, head_dim] (paddleformers' layout).
    attn_mask_startend_row_indices: int32 [B, 1 | Hk | H, Sk, ncols] or [B, 1, Sk]
    (read as one column). sink: per-head logits [H] (GPT-OSS), served as our
    learnable_sink with paddleformers' semantics (CPU and GPU). Returns (out [batch, seqlen, heads * head_dim_v], None).

    The result equals paddleformers' `eager` attention on the same call:
    `scaling` is honoured, except for the callers in BUILTIN_SCALE_CALLERS,
    which get the built-in "flashmask" convention they were written for.
    Calls with only a dense `attention_mask` (which need not be column-wise
    expressible) go to paddleformers' `eager` attention.
    """
    if scaling is None or sys._getframe(1).f_globals.get("__name__") in BUILTIN_SCALE_CALLERS:
        scaling = query.shape[-1] ** -0.5
    indices = attn_mask_startend_row_indices
    if not _kernel_serves(attention_mask, indices):
        from paddleformers.nn.attention.eager_attention import eager_attention_forward

        return eager_attention_forward(module, query, key, value, attention_mask=attention_mask,
                                       attn_mask_startend_row_indices=indices, dropout=dropout, sink=sink,
                                       scaling=scaling, is_causal=is_causal, **kwargs)
    query, key, value = (t.transpose([0, 2, 1, 3]) for t in (query, key, value))
    if indices is None:
        causal = is_causal if is_causal is not None else (
            query.shape[1] > 1 and getattr(module, "is_causal", True))
    else:
        if indices.ndim == 3:
            indices = indices.unsqueeze(-1)
        if indices.dtype != paddle.int32:
            indices = indices.astype("int32")
        causal = _causal_for_columns(indices.shape[-1], is_causal)
    out = flashmask_attention(query, key, value, indices, dropout=dropout, causal=bool(causal),
                              softmax_scale=scaling, training=getattr(module, "training", True),
                              learnable_sink=sink)
    return out.reshape([0, 0, out.shape[2] * out.shape[3]]), None


def _kernel_serves(attention_mask, indices):
    """Whether our kernel takes this call; the one place that decides: every
    call with column indices, or with no mask at all (sinks included)."""
    return indices is not None or attention_mask is None


def _causal_for_columns(ncols, is_causal):
    """The causal flag paddleformers infers from the column count: 1 column is
    causal, 4 non-causal, 2 causal unless the model says otherwise."""
    if ncols == 1:
        return True
    if ncols == 4:
        return False
    return True if is_causal is None else is_causal


def enable(key=ATTENTION_KEY):
    """Register our op as paddleformers' attention implementation `key`
    (default "flashmask", replacing the built-in one, which needs a CUDA Paddle).
    Idempotent; models already built pick it up on their next forward."""
    from paddleformers.nn.attention.interface import AttentionInterface

    current = AttentionInterface._global_mapping.get(key)
    if current is not flashmask_attention_forward:
        _replaced[key] = current
        AttentionInterface.register(key, flashmask_attention_forward)


def disable(key=ATTENTION_KEY):
    """Undo enable(key): restore whatever was registered before."""
    from paddleformers.nn.attention.interface import AttentionInterface

    if key not in _replaced:
        return
    previous = _replaced.pop(key)
    if previous is None:
        del AttentionInterface._global_mapping[key]
    else:
        AttentionInterface.register(key, previous)


def is_enabled(key=ATTENTION_KEY):
    from paddleformers.nn.attention.interface import AttentionInterface

    return AttentionInterface._global_mapping.get(key) is flashmask_attention_forward


def use_flash_mask(model_or_config, flash_mask=True):
    """The run-level switch: FlashMask (our op) or the dense baseline
    (paddleformers' `eager`), both on the batch's `attn_mask_startend_row_indices`.
    Takes a config (before the model is built) or a built model, whose layers
    that cached the attention choice (ERNIE 4.5, Gemma 3) are updated too. On
    CPU it also turns off paddleformers' fused kernels that exist only for GPUs.
    Returns the config."""
    if not isinstance(flash_mask, bool):
        raise TypeError(f"flash_mask must be a bool, got {type(flash_mask).__name__}")
    config = getattr(model_or_config, "config", model_or_config)
    if flash_mask:
        enable()
    implementation = ATTENTION_KEY if flash_mask else DENSE_ATTENTION_KEY
    config._attn_implementation = implementation
    config.use_attn_mask_startend_row_indices = True  # the data side is the same in both modes
    if isinstance(model_or_config, paddle.nn.Layer):
        for layer in model_or_config.sublayers():
            if hasattr(layer, "attn_implementation"):
                layer.attn_implementation = implementation
    if paddle.get_device() == "cpu":
        disable_gpu_only_fusions(config)
    return config


def disable_gpu_only_fusions(config):
    """paddleformers defaults to fused RMSNorm, whose kernel exists only for GPUs."""
    config.fuse_rms_norm = False
    config.fuse_swiglu = False
    return config


def attention_inputs(spec):
    """The mask entry of a batch from a MaskSpec (numpy or paddle):
    {"attn_mask_startend_row_indices": int32 numpy [B, 1, S, k]}, for both
    modes of the switch."""
    if not hasattr(spec, "startend_row_indices"):
        raise TypeError(f"spec must be a paddle_flashmask.masks.MaskSpec, got {type(spec).__name__}")
    idx = spec.startend_row_indices
    idx = idx.numpy() if hasattr(idx, "numpy") else idx
    return {INDICES_KEY: np.ascontiguousarray(idx, dtype=np.int32)}


def add_flash_mask_argument(parser: argparse.ArgumentParser, default=True):
    """`--flash_mask / --no-flash_mask`, named as PaddleNLP's fine-tuning argument."""
    parser.add_argument("--flash_mask", action=argparse.BooleanOptionalAction, default=default,
                        help="FlashMask attention on column-wise mask indices (O(S) memory); "
                             "--no-flash_mask runs paddleformers' eager attention on the same "
                             "mask expanded to [B, 1, S, S]")
    return parser
