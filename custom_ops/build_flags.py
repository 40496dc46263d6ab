"""Where the CUDA sources are and how nvcc builds them: shared by setup.py
(Paddle), custom_ops/torch/build.py (PyTorch) and .ci/compile_cuda.sh.

Target GPUs come from FLASHMASK_CUDA_ARCHS (default "80;90": sm_80 code plus
sm_90 code; the kernels use only sm_80 instructions, which run on sm_86/89
through the sm_80 cubin and on Hopper through the sm_90 one)."""
import glob
import os

CUDA_DIR = os.path.join("custom_ops", "core", "cuda")


def cuda_sources(here):
    """Every .cu of the core, relative to `here` (the repository root)."""
    pats = [os.path.join(here, CUDA_DIR, "*.cu"), os.path.join(here, CUDA_DIR, "inst", "*.cu")]
    return sorted(os.path.relpath(p, here) for pat in pats for p in glob.glob(pat))


def cuda_archs():
    raw = os.environ.get("FLASHMASK_CUDA_ARCHS", "80;90")
    return [a.strip() for a in raw.replace(",", ";").split(";") if a.strip()]


def gencode_flags(archs=None):
    flags = []
    for a in archs or cuda_archs():
        flags.append(f"-gencode=arch=compute_{a},code=sm_{a}")
    return flags


def nvcc_flags(here, archs=None):
    return [
        "-O3",
        "-std=c++17",
        "--use_fast_math",
        "-DFLASHMASK_WITH_CUDA",
        "-I" + os.path.join(here, "custom_ops"),
        "-Xcompiler=-fPIC",
    ] + gencode_flags(archs)
