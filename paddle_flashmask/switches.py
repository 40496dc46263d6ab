"""The run-time switches users set in the environment, read in this one place
for both doors and handed to the kernels as arguments (the torch door's) or op
attributes (the Paddle door's); the C++ core reads no environment.

    FLASHMASK_DETERMINISTIC=1        bit-reproducible GPU backward (the torch door's
                                     `deterministic=None` default; the Paddle door
                                     also honours FLAGS_cudnn_deterministic, as
                                     Paddle's own flashmask_attention does)
    FLASHMASK_DISABLE_SM90=1         run the sm80 kernels on Hopper too
    FLASHMASK_FORCE_LOW_SMEM_BWD=1   sm80 backward: the low-shared-memory column
                                     kernel even where the default one fits (tests)
"""
import os

# Bits of kernel_options(), decoded by KernelOptions::from_bits (core/flashmask_params.h).
DISABLE_SM90 = 1
FORCE_LOW_SMEM_BWD = 2


def _on(name):
    return os.environ.get(name, "0") == "1"


def deterministic():
    return _on("FLASHMASK_DETERMINISTIC")


def kernel_options():
    """The kernel-choice switches as the int the ops take."""
    return ((DISABLE_SM90 if _on("FLASHMASK_DISABLE_SM90") else 0)
            | (FORCE_LOW_SMEM_BWD if _on("FLASHMASK_FORCE_LOW_SMEM_BWD") else 0))
