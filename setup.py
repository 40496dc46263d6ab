"""Build paddle-flashmask: the Python package plus the custom-op library.

    pip install --no-build-isolation .

(--no-build-isolation: the ops compile against the Paddle already installed.)
The CUDA kernels are built too when this Paddle is a CUDA build and nvcc is
found; set FLASHMASK_CPU_ONLY=1 to skip them.
"""
import glob
import os

import paddle
from paddle.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension
from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def sources(pattern):
    return sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, pattern), recursive=True))


def want_cuda():
    if os.environ.get("FLASHMASK_CPU_ONLY") == "1":
        return False
    from paddle.utils.cpp_extension.extension_utils import find_cuda_home

    return paddle.is_compiled_with_cuda() and find_cuda_home() is not None


cxx_flags = ["-O3", "-fopenmp", "-std=c++17", "-ffp-contract=fast"]
common = dict(
    name="paddle_flashmask._flashmask_ops",
    include_dirs=[os.path.join(HERE, "custom_ops")],
    extra_link_args=["-fopenmp"],
)
cpu_sources = sources("custom_ops/core/*.cc") + sources("custom_ops/core/cpu/*.cc") + sources(
    "custom_ops/paddle/*.cc"
)

if want_cuda():
    from custom_ops.build_flags import cuda_sources, nvcc_flags, sm90_notice

    if sm90_notice(HERE):
        print(sm90_notice(HERE))

    ext = CUDAExtension(
        sources=cpu_sources + cuda_sources(HERE),
        extra_compile_args={"cxx": cxx_flags + ["-DFLASHMASK_WITH_CUDA"], "nvcc": nvcc_flags(HERE)},
        **common,
    )
else:
    ext = CppExtension(sources=cpu_sources, extra_compile_args={"cxx": cxx_flags}, **common)

setup(
    name="paddle-flashmask",
    version="0.1.0",
    description="FlashMask attention (column-wise sparse masks, O(N) memory) as Paddle custom ops",
    packages=find_packages(include=["paddle_flashmask", "paddle_flashmask.*"]),
    ext_modules=[ext],
    cmdclass={"build_ext": BuildExtension.with_options(no_python_abi_suffix=True)},
    python_requires=">=3.9",
    install_requires=["numpy"],
    zip_safe=False,
)
