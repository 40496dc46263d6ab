"""Input checks of both doors (Paddle, PyTorch) and the context-parallel path.

Framework-neutral: a door describes each tensor as a TensorFacts (shape, -1
where a static graph knows a dim only at run time; dtype name; device) and
passes its scalars; every refusal is a ValueError or TypeError that names the
argument. `check_attention_inputs` returns the scalars as plain Python values
(numpy scalars accepted), so the op receives exactly what was checked.

Index VALUES are not checked here: any int32 bound has a meaning (see
layouts.py and the README), and so has any block_mask value (0 masks a block,
anything else keeps it), so no call needs to read a mask from the device.
"""
import math
import numbers
from typing import NamedTuple, Optional, Tuple

import numpy as np

from .kernel_table import CUDA_HEAD_DIMS
from .layouts import column_counts

# CUDA_HEAD_DIMS: the head dims the CUDA kernels are instantiated for (generated
# from custom_ops/generate_kernels.py); the CPU kernel takes any up to 512.
MAX_CPU_HEAD_DIM = 512
FLOAT_DTYPES = ("float16", "bfloat16", "float32")
INDICES = "startend_row_indices"
# Sizes and row bounds are int32 in the kernels.
MAX_INT32 = 2**31 - 1
# Longest seqlen_q / seqlen_k: the kernels index rows and keys in int32 and
# round lengths up to whole tiles and blocks (<= 128) or shift them by
# seqlen_k - seqlen_q; 2**16 below 2**31 leaves every such sum in range
# (custom_ops/core/flashmask_params.h, kMaxSeqlen, the same number).
MAX_SEQLEN = 2**31 - 2**16
# The CUDA grids are (tiles, num_heads, batch): grid dims y and z stop at 65535.
# Batches beyond run as several launches; num_heads must fit.
MAX_GPU_GRID_YZ = 65535
# Paddle 3.x's block_mask granularity: one entry per 128 x 128 (query, key) block.
BLOCK_MASK_SIZE = 128


class TensorFacts(NamedTuple):
    shape: Tuple[int, ...]  # -1 where unknown until run time
    dtype: str              # "float32", "int32", ...
    device: str             # "cpu", "gpu:0", "cuda:1", ... or "" when unknown (static graph)

    @property
    def on_gpu(self):
        return self.device.startswith(("gpu", "cuda"))


class Scalars(NamedTuple):
    causal: bool
    dropout: float
    softmax_scale: Optional[float]
    window: Optional[Tuple[int, int]]
    # On GPU, a head dim the CUDA kernels are not compiled for, or a value head
    # dim unlike the query/key one, runs at the next compiled size with q, k, v
    # zero-padded (exact); None when no padding is needed.
    pad_head_dim_to: Optional[int] = None


def known(dim):
    return dim is not None and dim >= 0


# ---- scalars: Python or numpy --------------------------------------------------------------

def as_bool(name, x):
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    raise TypeError(f"{name} must be a bool, got {type(x).__name__}")


def as_float(name, x, what="a float"):
    if isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_)):
        return float(x)
    raise TypeError(f"{name} must be {what}, got {type(x).__name__}")


def as_int(name, x):
    if isinstance(x, numbers.Integral) and not isinstance(x, (bool, np.bool_)):
        return int(x)
    raise TypeError(f"{name} must be an int, got {type(x).__name__}")


def check_dropout(dropout):
    p = as_float("dropout", dropout)
    # The op takes a float32: 1 - 1e-9 would become 1.0 there (every weight dropped).
    if not (0.0 <= p < 1.0 and np.float32(p) < 1.0):
        raise ValueError(f"dropout must lie in [0, 1) as a float32, got {dropout!r}")
    return p


def check_softmax_scale(softmax_scale):
    if softmax_scale is None:
        return None
    s = as_float("softmax_scale", softmax_scale, "a float or None")
    # The op takes a float32: 1e39 would become inf there, 1e-50 zero.
    with np.errstate(over="ignore", under="ignore"):
        s32 = np.float32(s)
    if not (math.isfinite(s) and s > 0 and np.isfinite(s32) and s32 > 0):
        raise ValueError("softmax_scale must be positive and finite as a float32 "
                         f"(about 1.2e-38 to 3.4e38), got {softmax_scale!r}")
    return s


def normalize_window(window_size):
    """(left, right), each at most MAX_INT32: a window at least seqlen long
    has no limit, and no seqlen exceeds MAX_INT32."""
    if isinstance(window_size, (tuple, list)):
        if len(window_size) != 2:
            raise TypeError(f"window_size must be an int or a (left, right) pair of ints, got "
                            f"{window_size!r}")
        pair = tuple(as_int("window_size", w) for w in window_size)
    else:
        try:
            w = as_int("window_size", window_size)
        except TypeError:
            raise TypeError("window_size must be an int or a (left, right) pair of ints, got "
                            f"{window_size!r}") from None
        pair = (w, w)
    if min(pair) < 0:
        raise ValueError(f"window_size must be non-negative, got {window_size!r}")
    return tuple(min(w, MAX_INT32) for w in pair)


# ---- tensors --------------------------------------------------------------------------------

def check_rank4(name, shape, layout):
    if len(shape) != 4:
        raise ValueError(f"{name} must be a 4-D tensor {layout}, got shape {list(shape)}")


def check_qkv(query, key, value):
    """Returns (batch, seqlen_q, num_heads, head_dim, seqlen_k, num_heads_k).
    value may have its own head dim (Dv)."""
    for name, t in (("query", query), ("key", key), ("value", value)):
        check_rank4(name, t.shape, "[batch, seqlen, num_heads, head_dim]")
        if t.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{name} must be float16, bfloat16 or float32, got {t.dtype}")
    if not query.dtype == key.dtype == value.dtype:
        raise TypeError(f"query, key and value must share one dtype, got {query.dtype}, "
                        f"{key.dtype}, {value.dtype}")
    for name, t in (("key", key), ("value", value)):
        if query.device and t.device and t.device != query.device:
            raise ValueError(f"{name} is on {t.device} but query is on {query.device}")
    on_gpu = query.on_gpu
    if on_gpu and query.dtype == "float32":
        raise TypeError("query: float32 is supported on CPU only; use float16 or bfloat16 on GPU")

    b, sq, h, d = query.shape
    bk, sk, hk, dk = key.shape
    if list(value.shape[:3]) != list(key.shape[:3]):
        raise ValueError(f"value shape {list(value.shape)} must equal key shape {list(key.shape)} "
                         "except in the last (head_dim) axis")
    dv = value.shape[3]
    if known(dv) and known(dk) and dv != dk:
        if on_gpu and gpu_head_dim(dv) is None:
            raise ValueError(f"value head_dim {dv} is not supported on GPU: at most {CUDA_HEAD_DIMS[-1]}")
        if not 1 <= dv <= MAX_CPU_HEAD_DIM:
            raise ValueError(f"value head_dim must lie in [1, {MAX_CPU_HEAD_DIM}], got {dv}")
    if known(b) and known(bk) and b != bk:
        raise ValueError(f"key batch size {bk} differs from query batch size {b}")
    if known(d) and known(dk) and d != dk:
        raise ValueError(f"key head_dim {dk} differs from query head_dim {d}")
    grid_limited = ("query num_heads",) if on_gpu else ()
    for name, n in (("query batch size", b), ("query seqlen", sq), ("key seqlen", sk),
                    ("query num_heads", h), ("key num_heads", hk)):
        if not known(n):
            continue
        if n == 0:
            raise ValueError(f"{name} must be positive, got 0")
        if n > MAX_INT32:
            raise ValueError(f"{name} must be at most {MAX_INT32} (int32 in the kernels), got {n}")
        if name.endswith("seqlen") and n > MAX_SEQLEN:
            raise ValueError(f"{name} must be at most {MAX_SEQLEN} (2**31 - 2**16: the kernels index "
                             f"rows and keys in int32, with room to round up to whole tiles), got {n}")
        if name in grid_limited and n > MAX_GPU_GRID_YZ:
            raise ValueError(f"{name} must be at most {MAX_GPU_GRID_YZ} on GPU (a CUDA grid "
                             f"dimension), got {n}")
    if known(h) and known(hk) and h % hk != 0:
        raise ValueError(f"query num_heads ({h}) must be a multiple of key num_heads ({hk}) for "
                         "GQA/MQA")
    if known(d):
        if on_gpu and gpu_head_dim(d) is None:
            raise ValueError(f"query head_dim {d} is not supported on GPU: at most {CUDA_HEAD_DIMS[-1]} "
                             f"(compiled: {CUDA_HEAD_DIMS}; others run zero-padded to the next one)")
        if not 1 <= d <= MAX_CPU_HEAD_DIM:
            raise ValueError(f"query head_dim must lie in [1, {MAX_CPU_HEAD_DIM}], got {d}")
    return b, sq, h, d, sk, hk


def gpu_head_dim(d, dv=None):
    """The compiled head dim that serves head_dim d (and value head dim dv) on
    GPU: d itself, or the next compiled size at least both (q, k and v
    zero-padded to it: exact, at that size's cost; out sliced back to dv);
    None above the largest."""
    need = d if dv is None else max(d, dv)
    return next((c for c in CUDA_HEAD_DIMS if c >= need), None)


def check_seed_offset(seed_offset):
    if seed_offset.dtype != "int64" or list(seed_offset.shape) not in ([2], [-1]):
        raise ValueError("fixed_seed_offset must be an int64 tensor of shape [2] (seed, offset), "
                         f"got {seed_offset.dtype} {list(seed_offset.shape)}")


def check_indices(indices, *, causal, batch, seqlen_k, num_heads, num_heads_k, device):
    if indices.dtype != "int32":
        raise TypeError(f"{INDICES} must be int32, got {indices.dtype}")
    check_rank4(INDICES, indices.shape, "[batch, 1 | num_heads_k | num_heads, seqlen_k, ncols]")
    ib, ih, isk, ncols = indices.shape
    if known(ib) and known(batch) and ib != batch:
        raise ValueError(f"{INDICES}.shape[0] must equal batch size {batch}, got {ib}")
    if known(isk) and known(seqlen_k) and isk != seqlen_k:
        raise ValueError(f"{INDICES}.shape[2] must equal key seqlen {seqlen_k}, got {isk}")
    if known(ih) and known(num_heads) and known(num_heads_k) and ih not in (1, num_heads_k,
                                                                             num_heads):
        raise ValueError(f"{INDICES}.shape[1] must be 1, num_heads_k ({num_heads_k}) or num_heads "
                         f"({num_heads}), got {ih}")
    allowed = column_counts(causal)
    if known(ncols) and ncols not in allowed:  # unknown: the op checks it at run time
        raise ValueError(f"{INDICES} must have {' or '.join(map(str, allowed))} columns with "
                         f"causal={causal}, got {ncols}")
    if device and indices.device and indices.device != device:
        raise ValueError(f"{INDICES} is on {indices.device} but query is on {device}")


def check_block_mask(block_mask, *, batch, seqlen_q, seqlen_k, num_heads, num_heads_k, mask_heads,
                     device):
    """block_mask: int32 [batch, heads, ceil(seqlen_q / 128), ceil(seqlen_k / 128)]; heads equal
    those of startend_row_indices (mask_heads) as Paddle requires, or 1, num_heads_k or
    num_heads without one."""
    if block_mask.dtype != "int32":
        raise TypeError(f"block_mask must be int32, got {block_mask.dtype}")
    check_rank4("block_mask", block_mask.shape, "[batch, heads, ceil(seqlen_q / 128), ceil(seqlen_k / 128)]")
    bb, bh, bq, bk = block_mask.shape
    if known(bb) and known(batch) and bb != batch:
        raise ValueError(f"block_mask.shape[0] must equal batch size {batch}, got {bb}")
    if mask_heads is not None:
        if known(bh) and known(mask_heads) and bh != mask_heads:
            raise ValueError(f"block_mask.shape[1] must equal {INDICES}.shape[1] ({mask_heads}), got {bh}")
    elif known(bh) and known(num_heads) and known(num_heads_k) and bh not in (1, num_heads_k, num_heads):
        raise ValueError(f"block_mask.shape[1] must be 1, num_heads_k ({num_heads_k}) or num_heads "
                         f"({num_heads}), got {bh}")
    for axis, n, s, which in ((2, bq, seqlen_q, "query"), (3, bk, seqlen_k, "key")):
        want = -(-s // BLOCK_MASK_SIZE) if known(s) else None
        if known(n) and want is not None and n != want:
            raise ValueError(f"block_mask.shape[{axis}] must be ceil({which} seqlen {s} / "
                             f"{BLOCK_MASK_SIZE}) = {want}, got {n}")
    if device and block_mask.device and block_mask.device != device:
        raise ValueError(f"block_mask is on {block_mask.device} but query is on {device}")


def check_learnable_sink(sink, *, query_dtype, num_heads, device):
    if sink.dtype not in ("float32", query_dtype):
        raise TypeError(f"learnable_sink must be float32 or query's dtype ({query_dtype}), got {sink.dtype}")
    if len(sink.shape) != 1 or (known(sink.shape[0]) and known(num_heads) and sink.shape[0] != num_heads):
        raise ValueError(f"learnable_sink must have shape [num_heads] = [{num_heads}], got {list(sink.shape)}")
    if device and sink.device and sink.device != device:
        raise ValueError(f"learnable_sink is on {sink.device} but query is on {device}")


def check_attention_inputs(query, key, value, indices=None, fixed_seed_offset=None, *, causal,
                           dropout=0.0, softmax_scale=None, window_size=None, block_mask=None,
                           learnable_sink=None):
    """query/key/value/indices/fixed_seed_offset/block_mask/learnable_sink:
    TensorFacts (all but q, k, v may be None). Returns the checked Scalars."""
    b, sq, h, d, sk, hk = check_qkv(query, key, value)
    dv = value.shape[3]
    pad_to = None
    if query.on_gpu and known(d) and known(dv):
        served = gpu_head_dim(d, dv)
        pad_to = served if served != d or served != dv else None
    scalars = Scalars(as_bool("causal", causal), check_dropout(dropout),
                      check_softmax_scale(softmax_scale),
                      None if window_size is None else normalize_window(window_size), pad_to)
    if fixed_seed_offset is not None:
        check_seed_offset(fixed_seed_offset)
    if window_size is not None:
        if indices is not None:
            raise ValueError(f"window_size cannot be combined with {INDICES}")
        if known(sq) and known(sk) and sq != sk:
            raise ValueError(f"window_size needs equal query and key seqlen, got {sq} and {sk}")
    if indices is not None:
        check_indices(indices, causal=scalars.causal, batch=b, seqlen_k=sk, num_heads=h,
                      num_heads_k=hk, device=query.device)
    if block_mask is not None:
        check_block_mask(block_mask, batch=b, seqlen_q=sq, seqlen_k=sk, num_heads=h, num_heads_k=hk,
                         mask_heads=None if indices is None else indices.shape[1], device=query.device)
    if learnable_sink is not None:
        check_learnable_sink(learnable_sink, query_dtype=query.dtype, num_heads=h, device=query.device)
    return scalars


# ---- context parallelism: what one rank can check alone --------------------------------------

CP_STRATEGIES = ("ring", "all_gather")


def check_context_parallel(query, key, indices, *, strategy, shard_plan, rank, world_size):
    """The local facts of one rank's shards (query/key/indices: TensorFacts);
    check_attention_inputs covers the rest."""
    if strategy not in CP_STRATEGIES:
        raise ValueError(f"strategy must be one of {CP_STRATEGIES}, got {strategy!r}")
    if query.shape[1] != key.shape[1]:
        raise ValueError(f"query and key shards must hold the same tokens; got {query.shape[1]} "
                         f"query and {key.shape[1]} key tokens on rank {rank}")
    if indices is not None and len(indices.shape) != 4:
        raise ValueError(f"{INDICES} must be the full mask [B, h, S, ncols], got shape "
                         f"{list(indices.shape)}")
    if shard_plan is None:
        return
    if shard_plan.world_size != world_size:
        raise ValueError(f"shard_plan is for {shard_plan.world_size} ranks but the group has "
                         f"{world_size}")
    if indices is not None and shard_plan.seqlen != indices.shape[2]:
        raise ValueError(f"shard_plan covers {shard_plan.seqlen} tokens but {INDICES} has global "
                         f"length {indices.shape[2]}")
    if shard_plan.shard_lengths[rank] != query.shape[1]:
        raise ValueError(f"shard_plan gives rank {rank} {shard_plan.shard_lengths[rank]} tokens but "
                         f"its query shard has {query.shape[1]}")
