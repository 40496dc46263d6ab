"""Dense torch references for the GPU tests: the FlashMask mask as a dense
bool matrix, attention in fp32 (the ground truth) or in the inputs' dtype
(the error baseline, as in FlashAttention's tests), a vectorised
Philox4x32-10 matching custom_ops/core/philox.h, and random valid masks."""
import torch

_M0, _M1 = 0xD2511F53, 0xCD9E8D57
_W0, _W1 = 0x9E3779B9, 0xBB67AE85
_MASK32 = 0xFFFFFFFF


def _mulhilo(a, m):
    """(lo, hi) 32-bit halves of a * m, a int64 tensor in [0, 2^32), m a constant."""
    t1 = a * (m & 0xFFFF)
    t2 = a * (m >> 16)
    s = t1 + ((t2 & 0xFFFF) << 16)
    return s & _MASK32, (s >> 32) + (t2 >> 16)


def philox4x32_10(x, y, z, w, key0, key1):
    """Philox4x32-10 on int64 tensors holding uint32 values."""
    k0, k1 = key0, key1
    for _ in range(10):
        lo0, hi0 = _mulhilo(x, _M0)
        lo1, hi1 = _mulhilo(z, _M1)
        x, y, z, w = (hi1 ^ y ^ k0) & _MASK32, lo1, (hi0 ^ w ^ k1) & _MASK32, lo0
        k0 = (k0 + _W0) & _MASK32
        k1 = (k1 + _W1) & _MASK32
    return x, y, z, w


def dropout_keep(seed, offset, batch, heads, sq, sk, p_drop, device):
    """bool [batch, heads, sq, sk]: True where philox.h keeps score (b, h, i, j)."""
    seed, offset = int(seed) & (2**64 - 1), int(offset) & (2**64 - 1)
    rows = torch.arange(batch * heads * sq, device=device, dtype=torch.int64).view(-1, 1)
    groups = torch.arange((sk + 3) // 4, device=device, dtype=torch.int64).view(1, -1)
    c = groups + offset  # offset < 2^63 in the tests
    shape = (rows.shape[0], groups.shape[1])
    x = (c & _MASK32).expand(shape)
    y = (c >> 32).expand(shape)
    z = (rows & _MASK32).expand(shape)
    w = (rows >> 32).expand(shape)
    words = philox4x32_10(x, y, z, w, seed & _MASK32, (seed >> 32) & _MASK32)
    bits = torch.stack(words, dim=-1).reshape(rows.shape[0], -1)[:, :sk]
    keep = 1.0 - float(torch.tensor(p_drop, dtype=torch.float32))  # the kernels take p_drop as a float32
    t = 4294967296.0 * keep
    threshold = 0xFFFFFFFF if t >= 4294967295.0 else int(t)
    return (bits < threshold).view(batch, heads, sq, sk)


def decode(idx, causal, sq):
    """(lts, lte, uts, ute), each [B, h, Sk] int64."""
    idx = idx.long()
    full = torch.full_like(idx[..., 0], sq)
    zero = torch.zeros_like(idx[..., 0])
    n = idx.shape[-1]
    if causal:
        return idx[..., 0], (idx[..., 1] if n == 2 else full), zero, zero
    if n == 2:
        return idx[..., 0], full, zero, idx[..., 1]
    return idx[..., 0], idx[..., 1], idx[..., 2], idx[..., 3]


def dense_allowed(idx, causal, sq, sk, device):
    """bool [B | 1, h | 1, Sq, Sk]: True where row i may attend key j."""
    rows = torch.arange(sq, device=device).view(1, 1, sq, 1)
    cols = torch.arange(sk, device=device).view(1, 1, 1, sk)
    if idx is None:
        masked = torch.zeros(1, 1, sq, sk, dtype=torch.bool, device=device)
    else:
        lts, lte, uts, ute = (t.unsqueeze(2) for t in decode(idx, causal, sq))
        masked = ((rows >= lts) & (rows < lte)) | ((rows >= uts) & (rows < ute))
    if causal:
        masked = masked | (cols > rows + (sk - sq))
    return ~masked


def dense_block_mask(blocks, sq, sk):
    """bool [B, h, Sq, Sk] from Paddle's block_mask [B, h, ceil(Sq/128), ceil(Sk/128)]:
    False in the 128 x 128 blocks it sets to 0."""
    kept = (blocks != 0).repeat_interleave(128, dim=2)[:, :, :sq]
    return kept.repeat_interleave(128, dim=3)[:, :, :, :sk]


def attention_ref(q, k, v, allowed, scale, keep=None, p_drop=0.0, upcast=True, sink=None):
    """softmax(scale QK^T, masked) V; rows with no allowed key -> 0, lse -inf.
    upcast: all math in fp32 (ground truth); else matmuls in the inputs' dtype.
    sink: [H] logits that join every row's denominator unscaled, with no value
    (lse includes them; a row with no allowed key gets lse = sink)."""
    dtype = q.dtype
    if upcast:
        q, k, v = q.float(), k.float(), v.float()
    b, sq, h, d = q.shape
    hk = k.shape[2]
    qh, kh, vh = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    if hk != h:
        kh = kh.repeat_interleave(h // hk, dim=1)
        vh = vh.repeat_interleave(h // hk, dim=1)
    s = torch.matmul(qh, kh.transpose(-1, -2)).float() * scale
    if allowed is not None:
        a = allowed
        if a.shape[1] not in (1, h):
            a = a.repeat_interleave(h // a.shape[1], dim=1)
        s = s.masked_fill(~a, float("-inf"))
    m = s.amax(dim=-1, keepdim=True)
    if sink is not None:
        sink_col = sink.float().view(1, h, 1, 1)
        m = torch.maximum(m, sink_col)
    m_safe = torch.where(torch.isinf(m), torch.zeros_like(m), m)
    e = torch.exp(s - m_safe)
    den = e.sum(dim=-1, keepdim=True)
    if sink is not None:
        den = den + torch.exp(sink_col - m_safe)
    p = e / torch.where(den > 0, den, torch.ones_like(den))
    lse = (torch.log(den) + m_safe).squeeze(-1)
    if keep is not None:
        p = p * keep.to(p.dtype) / (1.0 - p_drop)
    out = torch.matmul(p.to(vh.dtype), vh).transpose(1, 2)
    return out.to(dtype if not upcast else torch.float32), lse


def random_startend(gen, batch, heads, sq, sk, causal, ncols, kind="random"):
    """Valid random int32 [batch, heads, sk, ncols] indices (0 <= start <= end <= sq)."""
    if ncols == 0:
        return None
    shape = (batch, heads, sk)

    def r():
        return torch.randint(0, sq + 1, shape, generator=gen)

    def band():
        a, b = r(), r()
        return torch.minimum(a, b), torch.maximum(a, b)

    if kind == "doc":  # documents: key j seen only by rows of its own document
        ends_all, starts_all = [], []
        for _ in range(batch * heads):
            cuts = sorted(set(torch.randint(1, max(2, sk), (3,), generator=gen).tolist()) - {sk})
            ends = torch.empty(sk, dtype=torch.int64)
            starts = torch.empty(sk, dtype=torch.int64)
            prev = 0
            for c in cuts + [sk]:
                ends[prev:c] = c + (sq - sk)
                starts[prev:c] = prev + (sq - sk)
                prev = c
            ends_all.append(ends.clamp(0, sq))
            starts_all.append(starts.clamp(0, sq))
        lts = torch.stack(ends_all).view(shape)
        ute = torch.stack(starts_all).view(shape)
        if causal:
            parts = [lts] if ncols == 1 else [lts, torch.full(shape, sq)]
        elif ncols == 2:
            parts = [lts, ute]
        else:
            parts = [lts, torch.full(shape, sq), torch.zeros(shape, dtype=torch.int64), ute]
    elif causal:
        parts = [r()] if ncols == 1 else list(band())
    elif ncols == 2:
        parts = [r(), r()]
    else:
        parts = list(band()) + list(band())
    return torch.stack(parts, dim=-1).to(torch.int32)
