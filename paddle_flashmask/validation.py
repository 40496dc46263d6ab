"""Framework-neutral input checks shared by the Paddle door (checks.py) and the
PyTorch door (torch/interface.py). They see shapes, Python scalars and
callbacks, never a framework tensor, so both doors refuse the same inputs with
the same words: a ValueError or TypeError that names the argument."""
import math
import weakref

# Head dims the CUDA kernels are instantiated for; the CPU kernel takes any up to 512.
CUDA_HEAD_DIMS = (64, 96, 128, 192, 256)
MAX_CPU_HEAD_DIM = 512
# What only the CPU kernel serves so far (both doors refuse them on GPU tensors).
CPU_ONLY_FEATURES = "learnable_sink, block_mask and a value head dim unlike the query/key one"
# Paddle 3.x's block_mask granularity: one entry per 128 x 128 (query, key) block.
BLOCK_MASK_SIZE = 128
# Column counts allowed by the causal flag.
MASK_COLUMNS = {True: (1, 2), False: (2, 4)}
INDICES = "startend_row_indices"


def known(dim):
    """Static graphs may carry -1 (or None) for dims unknown until run time."""
    return dim is not None and dim >= 0


def check_rank4(name, shape, layout):
    if len(shape) != 4:
        raise ValueError(f"{name} must be a 4-D tensor {layout}, got shape {list(shape)}")


def check_qkv_shapes(q_shape, k_shape, v_shape, on_gpu):
    """Returns (batch, seqlen_q, num_heads, head_dim, seqlen_k, num_heads_k).
    value may have its own head dim (Dv) on the CPU."""
    b, sq, h, d = q_shape
    bk, sk, hk, dk = k_shape
    if list(v_shape[:3]) != list(k_shape[:3]):
        raise ValueError(f"value shape {list(v_shape)} must equal key shape {list(k_shape)} "
                         "except in the last (head_dim) axis")
    dv = v_shape[3]
    if known(dv) and known(dk) and dv != dk:
        if on_gpu:
            raise ValueError(f"value head_dim {dv} differs from key head_dim {dk}: on GPU the "
                             f"CUDA kernels need them equal (Dv != D runs on CPU only)")
        if not 1 <= dv <= MAX_CPU_HEAD_DIM:
            raise ValueError(f"value head_dim must lie in [1, {MAX_CPU_HEAD_DIM}], got {dv}")
    if known(b) and known(bk) and b != bk:
        raise ValueError(f"key batch size {bk} differs from query batch size {b}")
    if known(d) and known(dk) and d != dk:
        raise ValueError(f"key head_dim {dk} differs from query head_dim {d}")
    for name, n in (("query batch size", b), ("query seqlen", sq), ("key seqlen", sk),
                    ("query num_heads", h), ("key num_heads", hk)):
        if known(n) and n == 0:
            raise ValueError(f"{name} must be positive, got 0")
    if known(h) and known(hk) and h % hk != 0:
        raise ValueError(f"query num_heads ({h}) must be a multiple of key num_heads ({hk}) for GQA/MQA")
    if known(d):
        if on_gpu and d not in CUDA_HEAD_DIMS:
            raise ValueError(f"query head_dim {d} is not supported on GPU; use one of {CUDA_HEAD_DIMS}")
        if not 1 <= d <= MAX_CPU_HEAD_DIM:
            raise ValueError(f"query head_dim must lie in [1, {MAX_CPU_HEAD_DIM}], got {d}")
    return b, sq, h, d, sk, hk


def _is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check_scalars(causal, dropout, softmax_scale):
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__}")
    if not _is_number(dropout):
        raise TypeError(f"dropout must be a float, got {type(dropout).__name__}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
    if softmax_scale is not None:
        if not _is_number(softmax_scale):
            raise TypeError(f"softmax_scale must be a float or None, got {type(softmax_scale).__name__}")
        if not (math.isfinite(softmax_scale) and softmax_scale > 0):
            raise ValueError(f"softmax_scale must be positive and finite, got {softmax_scale}")


def check_seed_offset(is_int64, shape, dtype_name):
    if not is_int64 or list(shape) != [2]:
        raise ValueError("fixed_seed_offset must be an int64 tensor of shape [2] (seed, offset), got "
                         f"{dtype_name} {list(shape)}")


def normalize_window(window_size):
    """int w -> (w, w); a (left, right) pair as a tuple."""
    if isinstance(window_size, int) and not isinstance(window_size, bool):
        return (window_size, window_size)
    return tuple(window_size)


def check_window(window_size, has_indices, seqlen_q, seqlen_k):
    ok_int = isinstance(window_size, int) and not isinstance(window_size, bool)
    ok_pair = (isinstance(window_size, (tuple, list)) and len(window_size) == 2
               and all(isinstance(w, int) and not isinstance(w, bool) for w in window_size))
    if not (ok_int or ok_pair):
        raise TypeError(f"window_size must be an int or a (left, right) pair of ints, got {window_size!r}")
    if min(normalize_window(window_size)) < 0:
        raise ValueError(f"window_size must be non-negative, got {window_size!r}")
    if has_indices:
        raise ValueError(f"window_size cannot be combined with {INDICES}")
    if known(seqlen_q) and known(seqlen_k) and seqlen_q != seqlen_k:
        raise ValueError(f"window_size needs equal query and key seqlen, got {seqlen_q} and {seqlen_k}")


def check_indices_shape(shape, *, causal, batch, seqlen_k, num_heads, num_heads_k):
    check_rank4(INDICES, shape, "[batch, 1 | num_heads_k | num_heads, seqlen_k, ncols]")
    ib, ih, isk, ncols = shape
    if known(ib) and known(batch) and ib != batch:
        raise ValueError(f"{INDICES}.shape[0] must equal batch size {batch}, got {ib}")
    if known(isk) and known(seqlen_k) and isk != seqlen_k:
        raise ValueError(f"{INDICES}.shape[2] must equal key seqlen {seqlen_k}, got {isk}")
    if known(ih) and ih not in (1, num_heads_k, num_heads):
        raise ValueError(f"{INDICES}.shape[1] must be 1, num_heads_k ({num_heads_k}) or num_heads "
                         f"({num_heads}), got {ih}")
    if ncols not in MASK_COLUMNS[causal]:
        kind = "causal=True" if causal else "causal=False"
        raise ValueError(f"{INDICES} must have {' or '.join(map(str, MASK_COLUMNS[causal]))} columns "
                         f"with {kind}, got {ncols}")


def check_index_values(lo, hi, seqlen_q, causal, ncols, start_exceeds_end):
    """lo/hi: the indices' min and max. start_exceeds_end(s, e): whether column s
    exceeds column e anywhere (evaluated by the door on its own tensors)."""
    if lo < 0 or hi > seqlen_q:
        raise ValueError(f"{INDICES} values must lie in [0, seqlen_q={seqlen_q}], got min {lo}, max {hi}")
    pairs = []
    if causal and ncols == 2:
        pairs = [(0, 1, "LTS", "LTE")]
    elif not causal and ncols == 4:
        pairs = [(0, 1, "LTS", "LTE"), (2, 3, "UTS", "UTE")]
    for s, e, sn, en in pairs:
        if start_exceeds_end(s, e):
            raise ValueError(f"{INDICES}: start must not exceed end ({sn} <= {en}) in every column")


class CheckedOnce:
    """Remembers which index tensors already passed check_index_values, so a
    mask reused by every layer of a model costs one device sync, not one per
    call. A tensor counts as checked for (its in-place version, seqlen_q,
    causal); weak references keep the cache from holding tensors alive."""

    def __init__(self):
        self._seen = {}

    def seen(self, tensor, version, *context):
        entry = self._seen.get(id(tensor))
        return entry is not None and entry[0]() is tensor and entry[1] == (version,) + context

    def add(self, tensor, version, *context):
        key = id(tensor)
        self._seen[key] = (weakref.ref(tensor, lambda _r, k=key: self._seen.pop(k, None)),
                           (version,) + context)


def check_block_mask_shape(shape, *, batch, seqlen_q, seqlen_k, num_heads, num_heads_k, mask_heads):
    """block_mask: [batch, heads, ceil(seqlen_q / 128), ceil(seqlen_k / 128)]; heads equal
    those of startend_row_indices (mask_heads) as Paddle requires, or 1, num_heads_k or
    num_heads without one."""
    check_rank4("block_mask", shape, "[batch, heads, ceil(seqlen_q / 128), ceil(seqlen_k / 128)]")
    bb, bh, bq, bk = shape
    if known(bb) and known(batch) and bb != batch:
        raise ValueError(f"block_mask.shape[0] must equal batch size {batch}, got {bb}")
    if mask_heads is not None:
        if known(bh) and known(mask_heads) and bh != mask_heads:
            raise ValueError(f"block_mask.shape[1] must equal {INDICES}.shape[1] ({mask_heads}), got {bh}")
    elif known(bh) and bh not in (1, num_heads_k, num_heads):
        raise ValueError(f"block_mask.shape[1] must be 1, num_heads_k ({num_heads_k}) or num_heads "
                         f"({num_heads}), got {bh}")
    for axis, n, s, which in ((2, bq, seqlen_q, "query"), (3, bk, seqlen_k, "key")):
        want = -(-s // BLOCK_MASK_SIZE) if known(s) else None
        if known(n) and want is not None and n != want:
            raise ValueError(f"block_mask.shape[{axis}] must be ceil({which} seqlen {s} / "
                             f"{BLOCK_MASK_SIZE}) = {want}, got {n}")


def check_block_mask_values(lo, hi):
    if lo < 0 or hi > 1:
        raise ValueError(f"block_mask values must be 0 (masked block) or 1 (kept), got min {lo}, max {hi}")


def check_sink_shape(shape, num_heads):
    if len(shape) != 1 or (known(shape[0]) and known(num_heads) and shape[0] != num_heads):
        raise ValueError(f"learnable_sink must have shape [num_heads] = [{num_heads}], got {list(shape)}")


def refuse_cpu_only_on_gpu(block_mask, learnable_sink):
    """The CUDA kernels do not serve these yet: a clear refusal, never a silent ignore."""
    for name, t in (("block_mask", block_mask), ("learnable_sink", learnable_sink)):
        if t is not None:
            raise ValueError(f"{name} is supported on CPU only for now; the CUDA kernels do not "
                             f"serve {CPU_ONLY_FEATURES} yet")
