"""paddle-flashmask: FlashMask attention (arXiv 2410.01359) for Paddle and PyTorch.

    from paddle_flashmask import flashmask_attention          # Paddle (CPU + CUDA ops)
    from paddle_flashmask.torch import flashmask_attention    # PyTorch (CUDA), no Paddle needed

Submodules load lazily, so the torch door and the numpy mask builders import
without Paddle installed; `dir()` still lists every public name.
"""
from importlib import import_module as _import_module
import typing as _typing

if _typing.TYPE_CHECKING:  # what type checkers and IDEs see; at run time the names load lazily
    from .api import flashmask_attention, window_startend_row_indices
    from .masks import (MaskSpec, causal_blockwise_mask, causal_document_mask, document_mask,
                        from_dense, global_sliding_window_mask, prefix_lm_document_mask,
                        prefix_lm_mask, share_question_mask, sliding_window_mask, to_dense)
    from .paper_masks import PAPER_MASKS, make_paper_mask

__version__ = "0.1.0"

_LAZY = {
    "flashmask_attention": ".api",
    "window_startend_row_indices": ".api",
    # numpy mask builders (no Paddle needed)
    "MaskSpec": ".masks",
    "causal_document_mask": ".masks",
    "document_mask": ".masks",
    "share_question_mask": ".masks",
    "sliding_window_mask": ".masks",
    "global_sliding_window_mask": ".masks",
    "causal_blockwise_mask": ".masks",
    "prefix_lm_mask": ".masks",
    "prefix_lm_document_mask": ".masks",
    "to_dense": ".masks",
    "from_dense": ".masks",
    "PAPER_MASKS": ".paper_masks",
    "make_paper_mask": ".paper_masks",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(_import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'paddle_flashmask' has no attribute {name!r}")


def __dir__():
    # The lazy names are not in globals() until first use: list them for
    # dir() and tab completion.
    return sorted(set(globals()) | set(__all__))
