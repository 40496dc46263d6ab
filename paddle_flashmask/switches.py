"""The run-time switches users set in the environment, read in this one place
by both doors (Python) and handed to the kernels as arguments; the C++ core
reads no environment.

    FLASHMASK_DETERMINISTIC=1        bit-reproducible GPU backward (the default of
                                     the torch door's `deterministic=None`)
    FLASHMASK_DISABLE_SM90=1         run the sm80 kernels on Hopper too
    FLASHMASK_FORCE_LOW_SMEM_BWD=1   sm80 backward: the low-shared-memory column
                                     kernel even where the default one fits (tests)
"""
import os


def _on(name):
    return os.environ.get(name, "0") == "1"


def deterministic():
    return _on("FLASHMASK_DETERMINISTIC")


def allow_sm90():
    return not _on("FLASHMASK_DISABLE_SM90")


def force_low_smem_bwd():
    return _on("FLASHMASK_FORCE_LOW_SMEM_BWD")
