"""Build paddle-flashmask: the Python package plus the custom-op library.

    pip install --no-build-isolation .            # the op: Paddle + numpy
    pip install --no-build-isolation ".[llm]"     # + paddleformers, for examples/
    pip install --no-build-isolation ".[torch]"   # + torch, for paddle_flashmask.torch

(--no-build-isolation: the ops compile against the Paddle already installed.)
The CUDA kernels are built too when this Paddle is a CUDA build and nvcc is
found; set FLASHMASK_CPU_ONLY=1 to skip them.
"""
import glob
import importlib.metadata
import os
import re

from setuptools import find_packages, setup

try:
    import paddle
except ImportError as e:  # most often: pip's build isolation hid the installed Paddle
    raise SystemExit(
        "paddle-flashmask compiles its ops against the installed Paddle, which this build "
        "cannot import. Install Paddle first (pip install -r requirements.txt), then build "
        "with: pip install --no-build-isolation .") from e
from paddle.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension

from custom_ops.build_flags import shared_libstdcxx

HERE = os.path.dirname(os.path.abspath(__file__))
# Tested with 3.3.1. The ops link against Paddle's C++ ABI, which a minor
# release may change, so the next minor version is left out.
PADDLE_VERSIONS = ">=3.3.1,<3.4"


def sources(pattern):
    return sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, pattern), recursive=True))


def read(name):
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        return f.read()


def requirements(name):
    """The requirement lines of a requirements file (comments and -r includes dropped)."""
    lines = (line.split("#", 1)[0].strip() for line in read(name).splitlines())
    return [line for line in lines if line and not line.startswith("-")]


def version():
    return re.search(r'^__version__ = "([^"]+)"', read("paddle_flashmask/__init__.py"), re.M).group(1)


def paddle_requirement():
    """The Paddle distribution the ops compile against: the CPU wheel is
    `paddlepaddle`, the CUDA one `paddlepaddle-gpu`; requiring the other one
    would make pip install a second Paddle over the first."""
    for dist in ("paddlepaddle-gpu", "paddlepaddle"):
        try:
            importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
        return dist + PADDLE_VERSIONS
    return "paddlepaddle" + PADDLE_VERSIONS


def want_cuda():
    if os.environ.get("FLASHMASK_CPU_ONLY") == "1":
        return False
    from paddle.utils.cpp_extension.extension_utils import find_cuda_home

    return paddle.is_compiled_with_cuda() and find_cuda_home() is not None


class BuildOps(BuildExtension.with_options(no_python_abi_suffix=True)):
    def finalize_options(self):
        super().finalize_options()
        # Paddle's BuildExtension puts each object file at build_lib joined with
        # the object's path: a relative build_temp lands the .o files in
        # build_lib, hence in the wheel. An absolute one keeps them in build_temp.
        self.build_temp = os.path.abspath(self.build_temp)


cxx_flags = ["-O3", "-fopenmp", "-std=c++17", "-ffp-contract=fast"]
common = dict(
    name="paddle_flashmask._flashmask_ops",
    include_dirs=[os.path.join(HERE, "custom_ops")],
    extra_link_args=["-fopenmp"] + shared_libstdcxx(),
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
    version=version(),
    description="FlashMask attention (column-wise sparse masks, O(N) memory) as Paddle custom ops",
    long_description=read("README.md"),
    long_description_content_type="text/markdown",
    author="paddle-flashmask contributors",
    license="Apache-2.0",  # no licence classifier: setuptools >= 77 deprecates them
    license_files=["LICENSE"],
    project_urls={"Paper": "https://arxiv.org/abs/2410.01359"},
    keywords=["attention", "flashmask", "flash-attention", "paddlepaddle", "sparse mask", "llm"],
    classifiers=[
        "Development Status :: 4 - Beta",
        "Intended Audience :: Developers",
        "Intended Audience :: Science/Research",
        "Operating System :: POSIX :: Linux",
        "Programming Language :: C++",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "Typing :: Typed",
    ],
    packages=find_packages(include=["paddle_flashmask", "paddle_flashmask.*"]),
    package_data={"paddle_flashmask": ["py.typed"]},
    ext_modules=[ext],
    cmdclass={"build_ext": BuildOps},
    # 3.11: the README's test command runs `python -P`; paddlepaddle 3.3.1
    # ships wheels for 3.9-3.13, and 3.9/3.10 have reached end of life.
    python_requires=">=3.11",
    install_requires=[paddle_requirement(), "numpy"],
    extras_require={"llm": requirements("requirements-llm.txt"),
                    "torch": requirements("requirements-torch.txt")},
    zip_safe=False,
)
