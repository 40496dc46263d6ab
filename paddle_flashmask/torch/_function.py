"""Autograd through the core: forward and backward kernels of the extension."""
import torch

from .. import switches
from . import _ext


class FlashMaskFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, startend, seed_offset, dropout, causal, scale, deterministic,
                block_mask=None, sink=None):
        """sink: float32 [H] or None (the caller casts it; autograd casts dsink back)."""
        out, lse = _ext.load().forward(q, k, v, startend, seed_offset, dropout, causal, scale,
                                       block_mask, sink, switches.kernel_options())
        ctx.save_for_backward(q, k, v, startend, seed_offset, out, lse, block_mask, sink)
        ctx.args = (dropout, causal, scale, deterministic)
        ctx.mark_non_differentiable(lse)
        return out, lse

    @staticmethod
    def backward(ctx, dout, _dlse):
        q, k, v, startend, seed_offset, out, lse, block_mask, sink = ctx.saved_tensors
        dropout, causal, scale, deterministic = ctx.args
        dq, dk, dv, dsink = _ext.load().backward(q, k, v, startend, seed_offset, out, lse,
                                                 dout, dropout, causal, scale, deterministic,
                                                 block_mask, sink, switches.kernel_options())
        return dq, dk, dv, None, None, None, None, None, None, None, dsink
