"""Where the CUDA sources are and how nvcc builds them: shared by setup.py
(Paddle), custom_ops/torch/build.py (PyTorch) and .ci/compile_cuda.sh.

Target GPUs come from FLASHMASK_CUDA_ARCHS (default "80;90": sm_80 code plus
sm_90a code). The sm80 kernels use only sm_80 instructions (they run on
sm_86/89 through the sm_80 cubin and on Hopper through the sm_90a one); the
Hopper kernels (cuda/sm90/ forward, cuda/sm90/bwd/ backward, CuTe) are built
with "90" when the CUTLASS headers are found (see cutlass_include)."""
import glob
import os

CUDA_DIR = os.path.join("custom_ops", "core", "cuda")


def cutlass_include(here):
    """CuTe/CUTLASS headers for the sm90a kernels (a build dependency, never
    vendored): $FLASHMASK_CUTLASS_INCLUDE, else the nvidia-cutlass wheel's
    headers if that package is installed, else .device_build/sm90/cutlass_include.tgz
    unpacked under .device_build/sm90/cutlass_include; None: no sm90 kernels."""
    env = os.environ.get("FLASHMASK_CUTLASS_INCLUDE")
    if env:
        return env
    try:
        import cutlass_library

        inc = os.path.join(os.path.dirname(cutlass_library.__file__), "source", "include")
        if os.path.isdir(os.path.join(inc, "cute")):
            return inc
    except ImportError:
        pass
    tgz = os.path.join(here, ".device_build", "sm90", "cutlass_include.tgz")
    dest = os.path.join(here, ".device_build", "sm90", "cutlass_include")
    if os.path.isdir(os.path.join(dest, "cute")):
        return dest
    if os.path.exists(tgz):
        import tarfile

        with tarfile.open(tgz) as t:
            t.extractall(dest)
        return dest
    return None


def with_sm90(here, archs=None):
    """The sm90a kernels (custom_ops/core/cuda/sm90, sm90/bwd) are built when
    sm_90 is a target and the CUTLASS headers are found; FLASHMASK_NO_SM90=1
    turns them off."""
    return ("90" in (archs or cuda_archs()) and os.environ.get("FLASHMASK_NO_SM90") != "1"
            and cutlass_include(here) is not None)


def sm90_notice(here, archs=None):
    """A line for the build log when sm_90 is a target but the Hopper kernels
    are left out (None when they are built or not wanted)."""
    archs = archs or cuda_archs()
    if "90" not in archs or with_sm90(here, archs) or os.environ.get("FLASHMASK_NO_SM90") == "1":
        return None
    return ("[flashmask] CUTLASS headers not found: building without the sm90a (Hopper) kernels; "
            "`pip install --no-deps nvidia-cutlass` or set FLASHMASK_CUTLASS_INCLUDE to add them")


def cuda_sources(here, archs=None):
    """Every .cu of the core, relative to `here` (the repository root)."""
    pats = [os.path.join(here, CUDA_DIR, "*.cu"), os.path.join(here, CUDA_DIR, "inst", "*.cu")]
    if with_sm90(here, archs):
        pats += [os.path.join(here, CUDA_DIR, "sm90", "*.cu"), os.path.join(here, CUDA_DIR, "sm90", "inst", "*.cu")]
        pats += [os.path.join(here, CUDA_DIR, "sm90", "bwd", "*.cu"),
                 os.path.join(here, CUDA_DIR, "sm90", "bwd", "inst", "*.cu")]
    return sorted(os.path.relpath(p, here) for pat in pats for p in glob.glob(pat))


def cuda_archs():
    raw = os.environ.get("FLASHMASK_CUDA_ARCHS", "80;90")
    return [a.strip() for a in raw.replace(",", ";").split(";") if a.strip()]


def gencode_flags(archs=None):
    flags = []
    for a in archs or cuda_archs():
        # "90" -> sm_90a: the sm90 kernels need wgmma/setmaxnreg; the sm80
        # kernels run unchanged from the same sm_90a cubin on H100/H200
        a = "90a" if a == "90" else a
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
    ] + gencode_flags(archs) + (
        # NDEBUG: CUTLASS's device-side asserts stay out of the kernels
        ["-DFLASHMASK_WITH_SM90", "-DNDEBUG", "--expt-relaxed-constexpr", "-I" + cutlass_include(here)]
        if with_sm90(here, archs) else [])
