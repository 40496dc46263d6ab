"""Build the PyTorch door of paddle-flashmask (needs torch; CUDA kernels
when torch is a CUDA build and nvcc is found):

    python custom_ops/torch/build.py [--jobs N] [--archs 90] [--objects-only]

1. The core (C ABI, CPU kernels, CUDA kernels) compiles to position-
   independent objects under .device_build/core/. Each object is reused while
   its .stamp matches a hash of the flags and of the project files its
   compiler listed (-MD), so objects prebuilt elsewhere (same nvcc, x86-64)
   are not rebuilt, and an edit rebuilds only the objects that include it.
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
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)
from custom_ops.build_flags import cuda_sources, nvcc_flags, shared_libstdcxx, sm90_notice  # noqa: E402

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


PROJECT = os.path.realpath(os.path.join(ROOT, "custom_ops"))


def stamp_of(paths, extra):
    """Hash of the files' contents (by repository-relative name) and `extra`."""
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(os.path.relpath(path, ROOT).encode())
        with open(path, "rb") as f:
            h.update(f.read())
    h.update(repr(extra).replace(ROOT, "<ROOT>").encode())  # path-independent
    return h.hexdigest()


def obj_path(build_dir, src):
    rel = os.path.relpath(src, CORE).replace(os.sep, "__")
    return os.path.join(build_dir, "core", rel + ".o")


def _read_depfile(path):
    """Files a make-style depfile (-MD -MF) lists, limited to this project's
    sources (CUDA, CUTLASS and system headers are the toolchain's)."""
    text = open(path).read().replace("\\\n", " ")
    deps = text.split(":", 1)[1].split() if ":" in text else []
    deps = [os.path.realpath(d) for d in deps]
    return sorted({os.path.relpath(d, os.path.realpath(ROOT)) for d in deps if d.startswith(PROJECT + os.sep)})


def _up_to_date(obj, extra):
    """An object is reused when the hash of what it was built from (the files
    its compiler listed, and the flags) is unchanged."""
    sidecar = obj + ".stamp"
    if not (os.path.exists(obj) and os.path.exists(sidecar)):
        return False
    stamp, *deps = open(sidecar).read().split()
    paths = [os.path.join(ROOT, d) for d in deps]
    return all(os.path.isfile(p) for p in paths) and stamp_of(paths, extra) == stamp


def _compile_group(build_dir, name, srcs, extra, cmd_of, jobs):
    """Build the objects of one group whose sources, included project headers
    or flags changed; reuse the rest (objects prebuilt elsewhere included)."""
    objs = [obj_path(build_dir, s) for s in srcs]
    todo = [s for s, o in zip(srcs, objs) if not _up_to_date(o, extra)]
    if len(todo) < len(srcs):
        print(f"[flashmask] reusing {len(srcs) - len(todo)} prebuilt {name} objects from {build_dir}/core")

    def run(src):
        print("[flashmask]", name, os.path.relpath(src, ROOT), flush=True)
        obj = obj_path(build_dir, src)
        if os.path.exists(obj + ".stamp"):
            os.remove(obj + ".stamp")
        started = time.time()
        subprocess.check_call(cmd_of(src, obj) + ["-MD", "-MF", obj + ".d"])
        deps = [os.path.join(ROOT, d) for d in _read_depfile(obj + ".d")]
        # a file edited while the compiler ran: the object may hold either
        # version, so it gets no stamp and the next build redoes it
        if any(os.path.getmtime(d) >= started - 1 for d in deps):
            print(f"[flashmask] {os.path.relpath(src, ROOT)}: a source changed during the compile, not stamped")
            return
        with open(obj + ".stamp", "w") as f:
            f.write(stamp_of(deps, extra) + "\n" + "\n".join(os.path.relpath(d, ROOT) for d in deps) + "\n")

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(run, todo))
    return objs


def build_core(build_dir, with_cuda, archs, jobs):
    os.makedirs(os.path.join(build_dir, "core"), exist_ok=True)
    cc, cu = core_sources(with_cuda)
    defs = ["-DFLASHMASK_WITH_CUDA"] if with_cuda else []
    objs = _compile_group(build_dir, "cpu", cc, (CXX_FLAGS, defs),
                          lambda s, o: ["g++"] + CXX_FLAGS + defs + ["-c", s, "-o", o], jobs)
    if cu:
        if sm90_notice(ROOT, archs):
            print(sm90_notice(ROOT, archs))
        nvcc = find_nvcc()
        flags = nvcc_flags(ROOT, archs)
        objs += _compile_group(build_dir, "cuda", cu, flags,
                               lambda s, o: [nvcc] + flags + ["-c", s, "-o", o], jobs)
    return objs


def build_torch(build_dir, objs, with_cuda):
    from torch.utils import cpp_extension

    out_dir = os.path.join(build_dir, "torch")
    os.makedirs(out_dir, exist_ok=True)
    # The core objects reach the link as ldflags, not as ninja inputs: with an
    # unchanged binding source and link line, ninja would keep the old .so
    # after a kernel edit. Without the .so the link (seconds) always runs.
    built = os.path.join(out_dir, "_flashmask_torch.so")
    if os.path.exists(built):
        os.remove(built)
    # C++20: torch >= 2.10 headers require it (older ones accept it).
    cflags = ["-O2", "-std=c++20"] + (["-DFLASHMASK_TORCH_CUDA"] if with_cuda else [])
    cpp_extension.load(
        name="_flashmask_torch",
        sources=[os.path.join(HERE, "flashmask_torch.cpp")],
        extra_include_paths=[os.path.join(ROOT, "custom_ops")],
        extra_cflags=cflags,
        extra_ldflags=objs + ["-lgomp"] + shared_libstdcxx() + (["-lcudart"] if with_cuda else []),
        build_directory=out_dir,
        with_cuda=with_cuda,
        verbose=False,
    )
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
