"""Where the CUDA sources are and how nvcc builds them: shared by setup.py
(Paddle), custom_ops/torch/build.py (PyTorch) and .ci/compile_cuda.sh.

Target GPUs come from FLASHMASK_CUDA_ARCHS (default "80;90": sm_80 code plus
sm_90a code). The sm80 kernels use only sm_80 instructions (they run on
sm_86/89 through the sm_80 cubin and on Hopper through the sm_90a one); the
Hopper kernels (cuda/sm90/fwd, cuda/sm90/bwd, CuTe) are built with "90" when
the CUTLASS headers are found (see cutlass_include) and FLASHMASK_BUILD_SM90 is
not 0. What is compiled per arch (dtypes, head dims) is the table in
custom_ops/generate_kernels.py. Also the link flag both doors need
(shared_libstdcxx)."""
import glob
import os
import shutil
import subprocess
import tempfile

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
    """The sm90a kernels (custom_ops/core/cuda/sm90) are built when sm_90 is a
    target and the CUTLASS headers are found; FLASHMASK_BUILD_SM90=0 turns them off."""
    return ("90" in (archs or cuda_archs()) and os.environ.get("FLASHMASK_BUILD_SM90") != "0"
            and cutlass_include(here) is not None)


def sm90_notice(here, archs=None):
    """A line for the build log when sm_90 is a target but the Hopper kernels
    are left out (None when they are built or not wanted)."""
    archs = archs or cuda_archs()
    if "90" not in archs or with_sm90(here, archs) or os.environ.get("FLASHMASK_BUILD_SM90") == "0":
        return None
    return ("[flashmask] CUTLASS headers not found: building without the sm90a (Hopper) kernels; "
            "`pip install --no-deps nvidia-cutlass` or set FLASHMASK_CUTLASS_INCLUDE to add them")


def cuda_sources(here, archs=None):
    """Every .cu of the core, relative to `here` (the repository root): the
    sm90/ tree and the sm90 instantiation units only when with_sm90()."""
    found = glob.glob(os.path.join(here, CUDA_DIR, "**", "*.cu"), recursive=True)
    rel = sorted(os.path.relpath(p, here) for p in found)
    if with_sm90(here, archs):
        return rel
    sm90_dir = os.path.join(CUDA_DIR, "sm90") + os.sep
    return [p for p in rel if not p.startswith(sm90_dir) and "_sm90_" not in os.path.basename(p)]


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


def shared_libstdcxx(cxx=None):
    """["-l:libstdc++.so.6"] when `cxx` (default $CXX, else c++) can link it,
    else []. A g++ that links libstdc++ statically by default (the device
    image's /opt/gcc does) puts a second copy in the op library, whose locale
    facets the framework's libstdc++ never registered: the first integer
    formatted into a stream (any error message with a number) ends the process
    with SIGSEGV. Linking the shared one first leaves the static archive
    nothing to contribute."""
    cxx = cxx or os.environ.get("CXX") or "c++"
    if shutil.which(cxx.split()[0]) is None:
        return []
    flag = "-l:libstdc++.so.6"
    with tempfile.TemporaryDirectory() as tmp:
        src, out = os.path.join(tmp, "t.cc"), os.path.join(tmp, "t.so")
        with open(src, "w") as f:
            f.write("int flashmask_link_probe() { return 0; }\n")
        res = subprocess.run(cxx.split() + ["-shared", "-fPIC", src, flag, "-o", out],
                             capture_output=True)
    return [flag] if res.returncode == 0 else []
