"""paddleformers integration: our FlashMask op as paddleformers' "flashmask" attention.

paddleformers models pick their attention function from a registry,
`paddleformers.nn.attention.interface.AttentionInterface`, by
`config._attn_implementation`. `enable()` puts our op there under "flashmask",
so every model that goes through the registry (Llama, Qwen, ...) runs our CPU
or CUDA kernel on the `attn_mask_startend_row_indices` its data collators emit.

    from paddle_flashmask.integrations import paddleformers as pf_flashmask

    pf_flashmask.use_flash_mask(model, flash_mask=True)   # registers + selects "flashmask"
    batch = pf_flashmask.attention_inputs(spec, flash_mask=True)
    loss = model(input_ids, labels=labels, position_ids=pos, **batch)[0]

`flash_mask=False` is the dense baseline on the same packed data, as PaddleNLP's
`--flash_mask` fine-tuning argument does: the model uses paddleformers' "sdpa"
attention and the batch carries a bool `attention_mask` [B, 1, S, S] instead of
the O(S) indices.
"""
import argparse

import numpy as np
import paddle

from ..api import flashmask_attention
from ..masks import MaskSpec, to_dense

ATTENTION_KEY = "flashmask"
DENSE_ATTENTION_KEY = "sdpa"
INDICES_KEY = "attn_mask_startend_row_indices"  # the batch key paddleformers models take

_replaced = {}  # key -> the function enable() replaced, for disable()


def flashmask_attention_forward(module, query, key, value, attention_mask=None,
                                attn_mask_startend_row_indices=None, dropout=0.0, sink=None,
                                scaling=None, is_causal=None, **kwargs):
    """paddleformers' attention-function signature, on paddle_flashmask.

    query/key/value: [batch, heads, seqlen, head_dim] (paddleformers' layout).
    attn_mask_startend_row_indices: int32 [B, 1 | Hk | H, Sk, ncols] or [B, 1, Sk]
    (read as one column). sink: per-head logits [H] (GPT-OSS), served as our
    learnable_sink with paddleformers' semantics (CPU only for now).
    Returns (out [batch, seqlen, heads * head_dim_v], None).
    """
    if attn_mask_startend_row_indices is None and attention_mask is not None:
        # An arbitrary dense mask need not be column-wise expressible (left padding in
        # generation, for one): leave it to the dense implementation.
        from paddleformers.nn.attention.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask=attention_mask,
                                      dropout=dropout, scaling=scaling, is_causal=is_causal,
                                      **kwargs)
    query, key, value = (t.transpose([0, 2, 1, 3]) for t in (query, key, value))
    indices = attn_mask_startend_row_indices
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


def _causal_for_columns(ncols, is_causal):
    """The causal flag paddleformers' own flashmask path infers: 1 column is
    causal, 4 non-causal, 2 causal unless the model says otherwise."""
    if ncols == 1:
        return True
    if ncols == 4:
        return False
    return True if is_causal is None else is_causal


def enable(key=ATTENTION_KEY):
    """Register our op as paddleformers' attention implementation `key`
    (default "flashmask", replacing the built-in one, which needs a CUDA Paddle).
    Idempotent; takes effect for models already built, since they look the
    function up on every forward."""
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
    """The run-level switch: FlashMask (our op on `attn_mask_startend_row_indices`)
    or the dense baseline (paddleformers' "sdpa" on a [B, 1, S, S] `attention_mask`).
    Pair it with attention_inputs(..., flash_mask) on the data side. Also turns off
    paddleformers' fused kernels that have no CPU implementation when running on CPU.
    Returns the config."""
    config = getattr(model_or_config, "config", model_or_config)
    if flash_mask:
        enable()
    config._attn_implementation = ATTENTION_KEY if flash_mask else DENSE_ATTENTION_KEY
    config.use_attn_mask_startend_row_indices = bool(flash_mask)
    if paddle.get_device() == "cpu":
        disable_gpu_only_fusions(config)
    return config


def disable_gpu_only_fusions(config):
    """paddleformers defaults to fused RMSNorm, whose kernel exists only for GPUs."""
    config.fuse_rms_norm = False
    config.fuse_swiglu = False
    return config


def attention_inputs(spec, flash_mask=True):
    """The mask entry of a batch for one run mode, from a MaskSpec (numpy or paddle):
    {"attn_mask_startend_row_indices": int32 [B, 1, S, k]} with flash_mask, else
    {"attention_mask": bool [B, 1, S, S]}, both numpy. The dense mask is exactly the
    FlashMask one (masks.to_dense), so both modes train on identical attention."""
    idx = spec.startend_row_indices
    idx = idx.numpy() if hasattr(idx, "numpy") else np.asarray(idx)
    if flash_mask:
        return {INDICES_KEY: np.ascontiguousarray(idx, dtype=np.int32)}
    return {"attention_mask": to_dense(idx, spec.causal)}


def dense_collator(collate_fn, causal=True):
    """Wrap a collator that emits `attn_mask_startend_row_indices` (paddleformers'
    collate_fn / dpo_collate_fn, or ours) so its batches carry the equivalent dense
    `attention_mask` instead: the flash_mask=False side of the switch for pipelines
    whose collator you do not own. paddleformers' decoder collators build causal masks."""
    def collate(*args, **kwargs):
        batch = dict(collate_fn(*args, **kwargs))
        idx = batch.pop(INDICES_KEY)
        idx = idx.numpy() if hasattr(idx, "numpy") else np.asarray(idx)
        if idx.ndim == 3:
            idx = idx[..., None]
        batch.update(attention_inputs(MaskSpec(idx, causal), flash_mask=False))
        return batch

    return collate


def add_flash_mask_argument(parser: argparse.ArgumentParser, default=True):
    """`--flash_mask / --no-flash_mask`, named as PaddleNLP's fine-tuning argument."""
    parser.add_argument("--flash_mask", action=argparse.BooleanOptionalAction, default=default,
                        help="FlashMask attention on column-wise mask indices (O(S) memory); "
                             "--no-flash_mask trains on the equivalent dense [B, 1, S, S] mask")
    return parser
