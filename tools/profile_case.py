"""One causal fwd+bwd of ours and of SDPA's flash backend, bracketed by
cudaProfilerStart/Stop, for Nsight Compute:

    ncu --profile-from-start off --section SpeedOfLight --section WarpStateStats \\
        python tools/profile_case.py
"""
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from paddle_flashmask.torch import flashmask_attention

B, S, H, D = 2, 4096, 16, 128
q, k, v = (torch.randn(B, S, H, D, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
qt, kt, vt = (t.detach().transpose(1, 2).contiguous().requires_grad_() for t in (q, k, v))


def ours():
    flashmask_attention(q, k, v, causal=True).backward(torch.ones_like(q))


def flash():
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        torch.nn.functional.scaled_dot_product_attention(qt, kt, vt, is_causal=True).backward(torch.ones_like(qt))


for _ in range(2):
    ours()
    flash()
torch.cuda.synchronize()
torch.cuda.profiler.start()
ours()
flash()
torch.cuda.synchronize()
torch.cuda.profiler.stop()
