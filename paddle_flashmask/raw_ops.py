"""The custom ops without the user-facing layer: for code that drives the
forward and backward itself (context parallelism, custom autograd).

No Python checks here (call paddle_flashmask.api.check_inputs where inputs come
from users); the ops' own C++ checks refuse bad shapes with a ValueError.
softmax_scale=None means head_dim ** -0.5, taken from the run-time head_dim
(the op's attribute 0.0), so it also works where a static graph knows head_dim
only at run time. The user's switches (paddle_flashmask/switches.py) become the
ops' deterministic and kernel_options attributes when the op is called (under
to_static: when the graph is built).
"""
from . import switches
from ._ops import op


def _attrs(dropout_p, causal, softmax_scale):
    scale = 0.0 if softmax_scale is None else float(softmax_scale)
    return (float(dropout_p), bool(causal), scale, _deterministic(), switches.kernel_options())


def _deterministic():
    """FLASHMASK_DETERMINISTIC=1, or Paddle's FLAGS_cudnn_deterministic (which
    Paddle's own flashmask_attention honours; CPU builds of Paddle lack it)."""
    if switches.deterministic():
        return True
    import paddle

    try:
        return bool(paddle.get_flags(["FLAGS_cudnn_deterministic"])["FLAGS_cudnn_deterministic"])
    except ValueError:
        return False


def attention_forward(query, key, value, startend_row_indices, seed_offset, *, dropout_p,
                      causal, softmax_scale, block_mask=None, learnable_sink=None):
    """Returns (out [B, Sq, H, Dv], softmax_lse [B, H, Sq] float32; -inf where a row sees
    no key, or the sink's logit with one). learnable_sink: float32 [H] or None; the grad
    op gives its gradient."""
    attrs = _attrs(dropout_p, causal, softmax_scale)
    if learnable_sink is None:
        return op("pfm_flashmask_attention")(query, key, value, startend_row_indices, seed_offset,
                                             block_mask, *attrs)
    return op("pfm_flashmask_attention_sink")(query, key, value, startend_row_indices, seed_offset,
                                              block_mask, learnable_sink, *attrs)


def attention_backward(query, key, value, startend_row_indices, seed_offset, out, softmax_lse,
                       out_grad, *, dropout_p, causal, softmax_scale, block_mask=None):
    """Returns (dq, dk, dv). `out` and `softmax_lse` may be the merged results of
    several partial forwards: dS = P * (dP - rowsum(dO * out)) only needs the final ones."""
    return op("pfm_flashmask_attention_bwd")(query, key, value, startend_row_indices, seed_offset,
                                             block_mask, out, softmax_lse, out_grad,
                                             *_attrs(dropout_p, causal, softmax_scale))
