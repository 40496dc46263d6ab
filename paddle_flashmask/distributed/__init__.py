"""Context-parallel FlashMask: the sequence sharded over a paddle.distributed group.

    from paddle_flashmask.distributed import (
        balance_shards, context_parallel_flashmask_attention)

See docs/distributed.md.
"""
from .attention import context_parallel_flashmask_attention
from .balance import ShardPlan, balance_shards, contiguous_plan

__all__ = ["ShardPlan", "balance_shards", "contiguous_plan", "context_parallel_flashmask_attention"]
