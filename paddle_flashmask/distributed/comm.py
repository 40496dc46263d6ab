"""The context-parallel process group and the collectives the strategies use.

Works on NCCL (GPU) and gloo (CPU). Gloo has no reduce_scatter, so on CPU we
all_reduce and keep our slice. A world of one rank never communicates.
"""
import paddle
import paddle.distributed as dist


class CPGroup:
    """A paddle.distributed group (None = the global one) seen as ranks 0..W-1."""

    def __init__(self, group=None):
        self.group = group
        if group is None:
            self.world_size = dist.get_world_size()
            self.rank = dist.get_rank()
            self.ranks = list(range(self.world_size))
        else:
            self.world_size = group.nranks
            self.rank = group.rank
            self.ranks = list(group.ranks)
        if self.rank < 0:
            raise ValueError("this process is not a member of the context-parallel group")

    def global_rank(self, group_rank):
        return self.ranks[group_rank % self.world_size]

    def all_gather(self, tensor):
        """list of every rank's tensor (equal shapes), in group-rank order."""
        if self.world_size == 1:
            return [tensor]
        parts = []
        dist.all_gather(parts, tensor, group=self.group)
        return parts

    def all_reduce_sum(self, tensor):
        if self.world_size > 1:
            dist.all_reduce(tensor, group=self.group)
        return tensor

    def reduce_scatter_sum(self, stacked):
        """stacked [W, ...] per rank -> Σ over ranks of stacked[rank] (this rank's slot)."""
        if self.world_size == 1:
            return stacked[0]
        if stacked.place.is_cpu_place():  # gloo: no reduce_scatter
            return self.all_reduce_sum(stacked)[self.rank]
        out = paddle.empty(stacked.shape[1:], dtype=stacked.dtype)
        dist.reduce_scatter(out, list(paddle.unbind(stacked, axis=0)), group=self.group)
        return out


def pad_rows(x, length, axis):
    """Zero-pad x along `axis` to `length` (collectives need equal shapes)."""
    missing = length - x.shape[axis]
    if missing == 0:
        return x
    shape = list(x.shape)
    shape[axis] = missing
    return paddle.concat([x, paddle.zeros(shape, dtype=x.dtype)], axis=axis)
