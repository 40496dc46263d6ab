"""Exact merge of partial attention results through their log-sum-exp.

For key blocks K_1..K_n of one query row, with partial (out_i, lse_i):
    lse = log Σ exp(lse_i),   out = Σ exp(lse_i - lse) · out_i.
Rows that see no key in a block carry lse_i = -inf and out_i = 0; a row
that sees no key anywhere keeps lse = -inf and out = 0 (no NaN from -inf - -inf).
"""
import paddle


def empty_accumulators(query):
    """(out float32 [B, Sq, H, D] zeros, lse float32 [B, H, Sq] -inf)."""
    b, sq, h, _ = query.shape
    out = paddle.zeros(query.shape, dtype="float32")
    lse = paddle.full([b, h, sq], float("-inf"), dtype="float32")
    return out, lse


def merge_partial(acc_out, acc_lse, out, lse):
    """Fold one partial (out [B, Sq, H, D], lse [B, H, Sq]) into the float32 accumulators."""
    new_lse = _logaddexp(acc_lse, lse)
    finite = paddle.isfinite(new_lse)
    safe = paddle.where(finite, new_lse, paddle.zeros_like(new_lse))
    w_acc = paddle.where(finite, paddle.exp(acc_lse - safe), paddle.zeros_like(new_lse))
    w_new = paddle.where(finite, paddle.exp(lse - safe), paddle.zeros_like(new_lse))
    to_rows = lambda w: w.transpose([0, 2, 1]).unsqueeze(-1)  # [B, H, Sq] -> [B, Sq, H, 1]
    merged = acc_out * to_rows(w_acc) + out.astype("float32") * to_rows(w_new)
    return merged, new_lse


def _logaddexp(a, b):
    """-inf-safe (paddle.logaddexp gives NaN for two -inf)."""
    m = paddle.maximum(a, b)
    m = paddle.where(paddle.isfinite(m), m, paddle.zeros_like(m))
    return m + paddle.log(paddle.exp(a - m) + paddle.exp(b - m))
