"""paddle-flashmask: FlashMask attention for Paddle (CPU and CUDA custom ops)."""
from .api import flashmask_attention, window_startend_row_indices

__all__ = ["flashmask_attention", "window_startend_row_indices"]
__version__ = "0.1.0"
