"""Ring strategy: K/V blocks travel around the ring (W - 1 hops), each rank
folding every visible block into its output through the LSE merge; the
transfer of the next block overlaps the compute of the current one.

Backward: K/V travel again, together with float32 dK/dV accumulators. At
step t rank r holds the block of owner r - t and the accumulator holding the
contributions of ranks r - t .. r - 1; it adds its own and passes it on.
After W steps one last hop brings each accumulator home.
Memory: O(local tokens) per rank, never the full K/V.
"""
import paddle

from ..raw_ops import attention_backward, attention_forward
from .comm import pad_rows
from .lse_merge import empty_accumulators, merge_partial
from .ring_exchange import RingExchange


def _block(kv, length):
    """(k, v) of a stacked, padded [2, B, Lmax, Hk, D] block, trimmed to `length` rows."""
    return kv[0, :, :length].contiguous(), kv[1, :, :length].contiguous()


def _owner(problem, step):
    return (problem.cp.rank - step) % problem.cp.world_size


def ring_forward(q, k, v, problem):
    world = problem.cp.world_size
    ring = RingExchange(problem.cp)
    kv = pad_rows(paddle.stack([k, v]), problem.max_len, axis=2)
    acc_out, acc_lse = empty_accumulators(q)
    for step in range(world):
        last = step == world - 1
        incoming = None if last else paddle.empty_like(kv)
        handle = ring.start([] if last else [(kv, incoming)])
        owner = _owner(problem, step)
        bounds = problem.bounds[owner]
        if bounds is not None:
            kb, vb = _block(kv, problem.lengths[owner])
            out, lse = attention_forward(q, kb, vb, bounds, problem.seed_offset, dropout_p=0.0,
                                         causal=False, softmax_scale=problem.softmax_scale)
            acc_out, acc_lse = merge_partial(acc_out, acc_lse, out, lse)
        handle.wait()
        kv = incoming
    return acc_out.astype(q.dtype), acc_lse


def ring_backward(q, k, v, out, lse, dout, problem):
    world = problem.cp.world_size
    ring = RingExchange(problem.cp)
    kv = pad_rows(paddle.stack([k, v]), problem.max_len, axis=2)
    dq = paddle.zeros(q.shape, dtype="float32")
    dkv_out = None  # accumulator leaving this rank at the next step
    for step in range(world):
        transfers = []
        kv_in = dkv_in = None
        if step < world - 1:
            kv_in = paddle.empty_like(kv)
            transfers.append((kv, kv_in))
        if dkv_out is not None:
            dkv_in = paddle.empty_like(dkv_out)
            transfers.append((dkv_out, dkv_in))
        handle = ring.start(transfers)
        owner = _owner(problem, step)
        partial = None
        if problem.bounds[owner] is not None:
            kb, vb = _block(kv, problem.lengths[owner])
            dq_i, dk_i, dv_i = attention_backward(
                q, kb, vb, problem.bounds[owner], problem.seed_offset, out, lse, dout,
                dropout_p=0.0, causal=False, softmax_scale=problem.softmax_scale)
            dq = dq + dq_i.astype("float32")
            partial = pad_rows(paddle.stack([dk_i, dv_i]).astype("float32"), problem.max_len,
                               axis=2)
        handle.wait()
        acc = dkv_in if dkv_in is not None else paddle.zeros(kv.shape, dtype="float32")
        dkv_out = acc if partial is None else acc + partial
        kv = kv_in
    home = dkv_out
    if world > 1:
        home = paddle.empty_like(dkv_out)
        ring.start([(dkv_out, home)]).wait()
    own = problem.lengths[problem.cp.rank]
    return dq.astype(q.dtype), home[0, :, :own].astype(k.dtype), home[1, :, :own].astype(v.dtype)
