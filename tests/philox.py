"""Numpy mirror of custom_ops/core/philox.h: the dropout keep-pattern any
kernel (CPU or GPU) applies for a (seed, offset), for tests and references."""
import numpy as np

_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = np.uint32(0x9E3779B9), np.uint32(0xBB67AE85)
_LO = np.uint64(0xFFFFFFFF)


def philox4x32_10(x, y, z, w, key0, key1):
    """Vectorised Philox4x32-10 over uint32 arrays (counter x..w, key key0/key1)."""
    x, y, z, w = (np.asarray(a, dtype=np.uint32) for a in (x, y, z, w))
    k0 = np.asarray(key0, dtype=np.uint32)
    k1 = np.asarray(key1, dtype=np.uint32)
    with np.errstate(over="ignore"):
        for _ in range(10):
            p0 = _M0 * x.astype(np.uint64)
            p1 = _M1 * z.astype(np.uint64)
            hi0, lo0 = (p0 >> np.uint64(32)).astype(np.uint32), (p0 & _LO).astype(np.uint32)
            hi1, lo1 = (p1 >> np.uint64(32)).astype(np.uint32), (p1 & _LO).astype(np.uint32)
            x, y, z, w = hi1 ^ y ^ k0, lo1, hi0 ^ w ^ k1, lo0
            k0 = k0 + _W0
            k1 = k1 + _W1
    return x, y, z, w


def dropout_keep_mask(seed, offset, batch, num_heads, seqlen_q, seqlen_k, p_drop):
    """bool [batch, num_heads, seqlen_q, seqlen_k]: True where the score is kept."""
    rows = np.arange(batch * num_heads * seqlen_q, dtype=np.uint64).reshape(-1, 1)
    cols4 = np.arange((seqlen_k + 3) // 4, dtype=np.uint64).reshape(1, -1)
    c = np.uint64(offset) + cols4
    ctr = (c & _LO, c >> np.uint64(32), rows & _LO, rows >> np.uint64(32))
    ctr = [np.broadcast_to(a, (rows.shape[0], cols4.shape[1])).astype(np.uint32) for a in ctr]
    seed = np.uint64(seed)
    words = philox4x32_10(*ctr, seed & _LO, seed >> np.uint64(32))
    bits = np.stack(words, axis=-1).reshape(rows.shape[0], -1)[:, :seqlen_k]
    keep = 1.0 - float(np.float32(p_drop))  # the kernels take p_drop as a float32 (dropout_keep_threshold)
    threshold = 0xFFFFFFFF if keep * 4294967296.0 >= 4294967295.0 else int(keep * 4294967296.0)
    return (bits < np.uint32(threshold)).reshape(batch, num_heads, seqlen_q, seqlen_k)
