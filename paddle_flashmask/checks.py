"""Input checks for flashmask_attention: every bad input gets a ValueError or
TypeError that names the argument, before any kernel runs."""
import math
import os

import paddle

FLOAT_DTYPES = (paddle.float16, paddle.bfloat16, paddle.float32)
# Head dims the CUDA kernels are instantiated for; the CPU kernel takes any up to 512.
CUDA_HEAD_DIMS = (64, 96, 128, 192, 256)
MAX_CPU_HEAD_DIM = 512
# Column counts allowed by the causal flag, and what they mean.
MASK_COLUMNS = {True: (1, 2), False: (2, 4)}


def _is_dygraph():
    return paddle.in_dynamic_mode()


def _known(dim):
    """Static graphs may carry -1 for dims unknown until run time."""
    return dim is not None and dim >= 0


def _check_tensor(name, t):
    if not isinstance(t, (paddle.Tensor, paddle.pir.Value, paddle.static.Variable)):
        raise TypeError(f"{name} must be a paddle.Tensor, got {type(t).__name__}")


def _check_4d(name, t, layout):
    if len(t.shape) != 4:
        raise ValueError(f"{name} must be a 4-D tensor {layout}, got shape {list(t.shape)}")


def check_attention_inputs(query, key, value, startend_row_indices, *, dropout, causal,
                           window_size, fixed_seed_offset, rng_name, softmax_scale):
    for name, t in (("query", query), ("key", key), ("value", value)):
        _check_tensor(name, t)
        _check_4d(name, t, "[batch, seqlen, num_heads, head_dim]")
        if t.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{name} must be float16, bfloat16 or float32, got {t.dtype}")
    if key.dtype != query.dtype or value.dtype != query.dtype:
        raise TypeError(
            f"query, key and value must share one dtype, got {query.dtype}, {key.dtype}, {value.dtype}"
        )
    on_gpu = _is_dygraph() and not query.place.is_cpu_place()
    if _is_dygraph():
        for name, t in (("key", key), ("value", value)):
            if str(t.place) != str(query.place):
                raise ValueError(f"{name} is on {t.place} but query is on {query.place}")
    if on_gpu and query.dtype == paddle.float32:
        raise TypeError("query: float32 is supported on CPU only; use float16 or bfloat16 on GPU")

    b, sq, h, d = query.shape
    bk, sk, hk, dk = key.shape
    if list(value.shape) != list(key.shape):
        raise ValueError(f"value shape {list(value.shape)} must equal key shape {list(key.shape)}")
    if _known(b) and _known(bk) and b != bk:
        raise ValueError(f"key batch size {bk} differs from query batch size {b}")
    if _known(d) and _known(dk) and d != dk:
        raise ValueError(f"key head_dim {dk} differs from query head_dim {d}")
    for name, n in (("query batch size", b), ("query seqlen", sq), ("key seqlen", sk),
                    ("query num_heads", h), ("key num_heads", hk)):
        if _known(n) and n == 0:
            raise ValueError(f"{name} must be positive, got 0")
    if _known(h) and _known(hk) and h % hk != 0:
        raise ValueError(
            f"query num_heads ({h}) must be a multiple of key num_heads ({hk}) for GQA/MQA"
        )
    if _known(d):
        if on_gpu and d not in CUDA_HEAD_DIMS:
            raise ValueError(f"query head_dim {d} is not supported on GPU; use one of {CUDA_HEAD_DIMS}")
        if not 1 <= d <= MAX_CPU_HEAD_DIM:
            raise ValueError(f"query head_dim must lie in [1, {MAX_CPU_HEAD_DIM}], got {d}")

    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)):
        raise TypeError(f"dropout must be a float, got {type(dropout).__name__}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
    if softmax_scale is not None:
        if isinstance(softmax_scale, bool) or not isinstance(softmax_scale, (int, float)):
            raise TypeError(f"softmax_scale must be a float or None, got {type(softmax_scale).__name__}")
        if not (math.isfinite(softmax_scale) and softmax_scale > 0):
            raise ValueError(f"softmax_scale must be positive and finite, got {softmax_scale}")
    if not isinstance(rng_name, str):
        raise TypeError(f"rng_name must be a str, got {type(rng_name).__name__}")
    if fixed_seed_offset is not None:
        _check_tensor("fixed_seed_offset", fixed_seed_offset)
        if fixed_seed_offset.dtype != paddle.int64 or list(fixed_seed_offset.shape) != [2]:
            raise ValueError(
                "fixed_seed_offset must be an int64 tensor of shape [2] (seed, offset), got "
                f"{fixed_seed_offset.dtype} {list(fixed_seed_offset.shape)}"
            )

    if window_size is not None:
        _check_window(window_size, startend_row_indices, sq, sk)
    if startend_row_indices is not None:
        check_startend_row_indices(startend_row_indices, causal=causal, batch=b, seqlen_q=sq,
                                   seqlen_k=sk, num_heads=h, num_heads_k=hk)


def normalize_window(window_size):
    if isinstance(window_size, int) and not isinstance(window_size, bool):
        return (window_size, window_size)
    return tuple(window_size)


def _check_window(window_size, startend_row_indices, sq, sk):
    ok_int = isinstance(window_size, int) and not isinstance(window_size, bool)
    ok_pair = (isinstance(window_size, (tuple, list)) and len(window_size) == 2
               and all(isinstance(w, int) and not isinstance(w, bool) for w in window_size))
    if not (ok_int or ok_pair):
        raise TypeError(f"window_size must be an int or a (left, right) pair of ints, got {window_size!r}")
    if min(normalize_window(window_size)) < 0:
        raise ValueError(f"window_size must be non-negative, got {window_size!r}")
    if startend_row_indices is not None:
        raise ValueError("window_size cannot be combined with startend_row_indices")
    if _known(sq) and _known(sk) and sq != sk:
        raise ValueError(f"window_size needs equal query and key seqlen, got {sq} and {sk}")


def check_startend_row_indices(idx, *, causal, batch, seqlen_q, seqlen_k, num_heads, num_heads_k):
    name = "startend_row_indices"
    _check_tensor(name, idx)
    if idx.dtype != paddle.int32:
        raise TypeError(f"{name} must be int32, got {idx.dtype}")
    _check_4d(name, idx, "[batch, 1 | num_heads_k | num_heads, seqlen_k, ncols]")
    ib, ih, isk, ncols = idx.shape
    if _known(ib) and _known(batch) and ib != batch:
        raise ValueError(f"{name}.shape[0] must equal batch size {batch}, got {ib}")
    if _known(isk) and _known(seqlen_k) and isk != seqlen_k:
        raise ValueError(f"{name}.shape[2] must equal key seqlen {seqlen_k}, got {isk}")
    if _known(ih) and ih not in (1, num_heads_k, num_heads):
        raise ValueError(
            f"{name}.shape[1] must be 1, num_heads_k ({num_heads_k}) or num_heads ({num_heads}), got {ih}"
        )
    if ncols not in MASK_COLUMNS[causal]:
        kind = "causal=True" if causal else "causal=False"
        raise ValueError(
            f"{name} must have {' or '.join(map(str, MASK_COLUMNS[causal]))} columns with {kind}, got {ncols}"
        )
    if _is_dygraph() and os.environ.get("PADDLE_FLASHMASK_CHECK_INDICES", "1") != "0":
        _check_index_values(idx, causal, seqlen_q)


def _check_index_values(idx, causal, seqlen_q):
    """Bounds in [0, Sq] and start <= end. O(S) work; on GPU it costs one sync,
    which PADDLE_FLASHMASK_CHECK_INDICES=0 turns off."""
    name = "startend_row_indices"
    lo, hi = int(idx.min()), int(idx.max())
    if lo < 0 or hi > seqlen_q:
        raise ValueError(f"{name} values must lie in [0, seqlen_q={seqlen_q}], got min {lo}, max {hi}")
    ncols = idx.shape[-1]
    pairs = []
    if causal and ncols == 2:
        pairs = [(0, 1, "LTS", "LTE")]
    elif not causal and ncols == 4:
        pairs = [(0, 1, "LTS", "LTE"), (2, 3, "UTS", "UTE")]
    for s, e, sn, en in pairs:
        if bool((idx[..., s] > idx[..., e]).any()):
            raise ValueError(f"{name}: start must not exceed end ({sn} <= {en}) in every column")
