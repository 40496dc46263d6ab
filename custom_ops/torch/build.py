"""Build the PyTorch door of paddle-flashmask (needs torch; CUDA kernels
when torch is a CUDA build and nvcc is found):

    python custom_ops/torch/build.py [--jobs N] [--archs 90] [--objects-only]

1. The core (C ABI, CPU kernels, CUDA kernels) compiles to position-
   independent objects under .device_build/core/. Objects are reused when
   .device_build/core/STAMP matches a hash of every core source and the
   flags, so objects prebuilt elsewhere (same nvcc, x86-64) are not rebuilt.
   --objects-only stops here (no torch needed).
2. custom_ops/torch/flashmask_torch.cpp compiles against torch and links
   those objects into paddle_flashmask/torch/_flashmask_torch.so.
"""
import argparse
import glob
import hashlib
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)
from custom_ops.build_flags import cuda_sources, nvcc_flags, sm90_notice  # noqa: E402

CORE = os.path.join(ROOT, "custom_ops", "core")
CXX_FLAGS = ["-O3", "-std=c++17", "-fopenmp", "-fPIC", "-I" + os.path.join(ROOT, "custom_ops")]


def find_nvcc():
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or "/usr/local/cuda"
    nvcc = os.path.join(home, "bin", "nvcc")
    return nvcc if os.path.exists(nvcc) else shutil.which("nvcc")


def core_sources(with_cuda):
    cc = sorted(glob.glob(os.path.join(CORE, "*.cc")) + glob.glob(os.path.join(CORE, "cpu", "*.cc")))
    cu = [os.path.join(ROOT, s) for s in cuda_sources(ROOT)] if with_cuda else []
    return cc, cu


def stamp_of(paths, extra):
    h = hashlib.sha256()
    for path in sorted(paths):
        if os.path.isfile(path):
            h.update(os.path.relpath(path, ROOT).encode())
            with open(path, "rb") as f:
                h.update(f.read())
    h.update(repr(extra).replace(ROOT, "<ROOT>").encode())  # path-independent
    return h.hexdigest()


def obj_path(build_dir, src):
    rel = os.path.relpath(src, CORE).replace(os.sep, "__")
    return os.path.join(build_dir, "core", rel + ".o")


def _compile_group(build_dir, name, srcs, deps, extra, cmd_of, jobs):
    """(Re)build one group of objects unless its STAMP (a hash of its sources,
    headers and flags) matches."""
    objs = [obj_path(build_dir, s) for s in srcs]
    stamp_file = os.path.join(build_dir, "core", f"STAMP.{name}")
    stamp = stamp_of(deps, extra)
    if (os.path.exists(stamp_file) and open(stamp_file).read().strip() == stamp
            and all(os.path.exists(o) for o in objs)):
        print(f"[flashmask] reusing {len(objs)} prebuilt {name} objects from {build_dir}/core")
        return objs
    if os.path.exists(stamp_file):
        os.remove(stamp_file)

    def run(src):
        print("[flashmask]", name, os.path.relpath(src, ROOT), flush=True)
        subprocess.check_call(cmd_of(src, obj_path(build_dir, src)))

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(run, srcs))
    with open(stamp_file, "w") as f:
        f.write(stamp + "\n")
    return objs


def build_core(build_dir, with_cuda, archs, jobs):
    os.makedirs(os.path.join(build_dir, "core"), exist_ok=True)
    cc, cu = core_sources(with_cuda)
    headers = glob.glob(os.path.join(CORE, "*.h"))
    cpu_deps = cc + headers + glob.glob(os.path.join(CORE, "cpu", "*"))
    defs = ["-DFLASHMASK_WITH_CUDA"] if with_cuda else []
    objs = _compile_group(build_dir, "cpu", cc, cpu_deps, (CXX_FLAGS, defs),
                          lambda s, o: ["g++"] + CXX_FLAGS + defs + ["-c", s, "-o", o], jobs)
    if cu:
        if sm90_notice(ROOT, archs):
            print(sm90_notice(ROOT, archs))
        nvcc = find_nvcc()
        flags = nvcc_flags(ROOT, archs)
        # what these objects include: the core headers, cuda/ and cuda/sm90/
        # (*.cu, *.cuh, *.h, inst/*.cu); the CUTLASS headers enter through the flags
        cu_deps = headers + [f for sub in ("", "sm90") for pat in ("*.cu", "*.cuh", "*.h", os.path.join("inst", "*.cu"))
                             for f in glob.glob(os.path.join(CORE, "cuda", sub, pat))]
        objs += _compile_group(build_dir, "cuda", cu, cu_deps, flags,
                               lambda s, o: [nvcc] + flags + ["-c", s, "-o", o], jobs)
    return objs


def build_torch(build_dir, objs, with_cuda):
    from torch.utils import cpp_extension

    out_dir = os.path.join(build_dir, "torch")
    os.makedirs(out_dir, exist_ok=True)
    cflags = ["-O2", "-std=c++17"] + (["-DFLASHMASK_TORCH_CUDA"] if with_cuda else [])
    cpp_extension.load(
        name="_flashmask_torch",
        sources=[os.path.join(HERE, "flashmask_torch.cpp")],
        extra_include_paths=[os.path.join(ROOT, "custom_ops")],
        extra_cflags=cflags,
        extra_ldflags=objs + ["-lgomp"] + (["-lcudart"] if with_cuda else []),
        build_directory=out_dir,
        with_cuda=with_cuda,
        verbose=False,
    )
    built = os.path.join(out_dir, "_flashmask_torch.so")
    dest = os.path.join(ROOT, "paddle_flashmask", "torch", "_flashmask_torch.so")
    shutil.copyfile(built, dest)
    print(f"[flashmask] built {os.path.relpath(dest, ROOT)}")
    return dest


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--archs", default=None, help='e.g. "80;90" (default: FLASHMASK_CUDA_ARCHS or 80;90)')
    ap.add_argument("--build-dir", default=os.path.join(ROOT, ".device_build"))
    ap.add_argument("--objects-only", action="store_true", help="build the core objects only")
    ap.add_argument("--cpu-only", action="store_true", help="no CUDA kernels")
    args = ap.parse_args(argv)
    if args.archs:
        os.environ["FLASHMASK_CUDA_ARCHS"] = args.archs
    from custom_ops.build_flags import cuda_archs

    archs = cuda_archs()
    if args.objects_only:
        with_cuda = not args.cpu_only and find_nvcc() is not None
    else:
        import torch

        with_cuda = not args.cpu_only and torch.version.cuda is not None and find_nvcc() is not None
    objs = build_core(args.build_dir, with_cuda, archs, max(1, args.jobs))
    if not args.objects_only:
        build_torch(args.build_dir, objs, with_cuda)


if __name__ == "__main__":
    main()
