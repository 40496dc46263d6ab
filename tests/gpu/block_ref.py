"""fp32 references on one block of a long sequence, for sequences whose dense
[Sq, Sk] reference does not fit: rows [q0, q1) against keys [k0, k1), with the
mask given as a rule on global (row, key) indices.

A block gives the exact out, lse and dq of a row when every key the row sees
lies in [k0, k1), and the exact dk, dv of a key when every row that sees it
lies in [q0, q1); the callers choose blocks that way (one document, or a
window's reach around a query chunk) and compare only those rows and keys."""
import torch

from flashmask_ref import attention_ref


def block_allowed(rule, q0, q1, k0, k1, device):
    """bool [1, 1, q1 - q0, k1 - k0]: rule(rows, cols) on global indices."""
    rows = torch.arange(q0, q1, device=device).view(-1, 1)
    cols = torch.arange(k0, k1, device=device).view(1, -1)
    return rule(rows, cols).view(1, 1, q1 - q0, k1 - k0)


def block_reference(q, k, v, dout, rule, q0, q1, k0, k1, scale):
    """(ref, pt) for the block: each a dict of out, lse, dq, dk, dv (dq for rows
    [q0, q1), dk / dv for keys [k0, k1)); ref in fp32, pt with the matmuls in
    the inputs' dtype (the error baseline of the GPU tests)."""
    allowed = block_allowed(rule, q0, q1, k0, k1, q.device)
    results = []
    for upcast in (True, False):
        as_leaf = (lambda t: t.detach().float().requires_grad_()) if upcast else \
            (lambda t: t.detach().clone().requires_grad_())  # fp32 leaves: fp32 gradients
        qb, kb, vb = as_leaf(q[:, q0:q1]), as_leaf(k[:, k0:k1]), as_leaf(v[:, k0:k1])
        out, lse = attention_ref(qb, kb, vb, allowed, scale, upcast=upcast)
        out.backward(dout[:, q0:q1].to(out.dtype))
        results.append(dict(out=out.detach(), lse=lse.detach(), dq=qb.grad, dk=kb.grad, dv=vb.grad))
    return results[0], results[1]


def rounding_noise(x):
    return 2 * ((x + 0.3 - 0.3) - x).abs().max().item()


def assert_close_to_ref(name, ours, ref, pt, dtype, floor):
    """The GPU tests' tolerance: at most twice the error of the same math in the
    inputs' dtype, plus the dtype's rounding noise and a floor."""
    ref = ref.float()
    err = (ours.float() - ref).abs().max().item()
    err_pt = (pt.float() - ref).abs().max().item()
    tol = 2 * err_pt + rounding_noise(ref.to(dtype).float()) + floor
    assert err <= tol, (name, err, err_pt, tol)
