"""PyTorch door of paddle-flashmask: FlashMask attention on torch tensors,
through the same core (C ABI) as the Paddle ops; imports without Paddle.

    from paddle_flashmask.torch import flashmask_attention
    out = flashmask_attention(q, k, v, startend_row_indices, causal=True)

Build the extension once with `python custom_ops/torch/build.py` (torch +
nvcc; see that file). Deterministic backward: deterministic=True or
FLASHMASK_DETERMINISTIC=1.
"""
from .interface import flashmask_attention, window_startend_row_indices
from ._ext import is_available

__all__ = ["flashmask_attention", "window_startend_row_indices", "is_available"]
