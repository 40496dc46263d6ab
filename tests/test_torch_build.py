"""How the doors' libraries are linked.

(1) The torch door's build always relinks: the core objects reach the link
as ldflags, which ninja does not track, so a kernel edit with an unchanged
binding source would otherwise leave the old _flashmask_torch.so in place
(A/B builds of kernel variants then silently time the same library).
torch's cpp_extension.load is replaced by a stand-in that records what it
finds, so the test runs without torch or a compiler. (2) Both doors link the
shared libstdc++ ahead of a compiler's static default (build_flags.shared_libstdcxx)."""
import importlib.util
import os
import subprocess
import sys
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_build_module():
    spec = importlib.util.spec_from_file_location("flashmask_torch_build",
                                                  os.path.join(ROOT, "custom_ops", "torch", "build.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_build_torch_relinks_with_the_probed_flags(tmp_path, monkeypatch):
    build = _load_build_module()
    seen = {}

    def fake_load(name, build_directory, **kwargs):  # ninja: links only when the output is missing
        lib = os.path.join(build_directory, name + ".so")
        seen["stale_present"] = os.path.exists(lib)
        seen["ldflags"] = kwargs["extra_ldflags"]
        if not seen["stale_present"]:
            with open(lib, "w") as f:
                f.write("new")

    cpp_ext = types.ModuleType("torch.utils.cpp_extension")
    cpp_ext.load = fake_load
    utils = types.ModuleType("torch.utils")
    utils.cpp_extension = cpp_ext
    torch = types.ModuleType("torch")
    torch.utils = utils
    for name, mod in (("torch", torch), ("torch.utils", utils), ("torch.utils.cpp_extension", cpp_ext)):
        monkeypatch.setitem(sys.modules, name, mod)

    fake_root = tmp_path / "repo"
    (fake_root / "paddle_flashmask" / "torch").mkdir(parents=True)
    monkeypatch.setattr(build, "ROOT", str(fake_root))
    out_dir = tmp_path / "build" / "torch"
    out_dir.mkdir(parents=True)
    (out_dir / "_flashmask_torch.so").write_text("old")  # from a build of other kernel objects

    monkeypatch.setattr(build, "shared_libstdcxx", lambda: ["-l:libstdc++.so.6"])  # the probe's answer
    dest = build.build_torch(str(tmp_path / "build"), ["kernel.o"], with_cuda=False)

    assert seen["stale_present"] is False
    assert "kernel.o" in seen["ldflags"] and "-l:libstdc++.so.6" in seen["ldflags"]
    assert open(dest).read() == "new"
    assert dest == os.path.join(str(fake_root), "paddle_flashmask", "torch", "_flashmask_torch.so")


def _libstdcxx_link(lib):
    """(needs the shared libstdc++, carries its own copy of the locale machinery)"""
    needed = subprocess.run(["readelf", "-d", str(lib)], capture_output=True, text=True, check=True).stdout
    defined = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True, text=True,
                             check=True).stdout
    return "[libstdc++.so.6]" in needed, "_ZNKSt6locale2id5_M_idEv" in defined


def _build_flags():
    sys.path.insert(0, ROOT)
    try:
        from custom_ops import build_flags
    finally:
        sys.path.remove(ROOT)
    return build_flags


def test_shared_libstdcxx_is_probed_with_a_real_link(tmp_path):
    """The flag that keeps a second, static libstdc++ out of the op libraries
    (its unregistered locale facets made any integer in an error message a
    SIGSEGV) is passed only where the compiler can link the shared library."""
    flags = _build_flags()
    assert flags.shared_libstdcxx() == ["-l:libstdc++.so.6"]  # this machine's g++ has it
    failing = tmp_path / "cxx-without-it"
    failing.write_text("#!/bin/sh\nexit 1\n")
    failing.chmod(0o755)
    assert flags.shared_libstdcxx(str(failing)) == []
    assert flags.shared_libstdcxx(str(tmp_path / "no-such-compiler")) == []


def test_shared_libstdcxx_wins_over_a_static_default(tmp_path):
    """The device image's g++ links libstdc++ statically; -static-libstdc++
    stands in for it: with the flag the library still needs the shared one
    and defines none of its locale machinery, without it it carries a copy."""
    flags = _build_flags()
    src = tmp_path / "fmt.cc"
    src.write_text("#include <sstream>\n#include <string>\n"
                   "std::string fmt(long x) { std::ostringstream o; o << x; return o.str(); }\n")

    def link(extra):
        out = tmp_path / f"fmt{len(extra)}.so"
        subprocess.run(["c++", "-shared", "-fPIC", "-static-libstdc++", str(src)] + extra + ["-o", str(out)],
                       check=True)
        return _libstdcxx_link(out)

    assert link([]) == (False, True)
    assert link(flags.shared_libstdcxx()) == (True, False)


def test_paddle_op_library_uses_the_shared_libstdcxx():
    """The installed op library needs libstdc++.so.6 and carries no copy of
    its locale machinery (what a static link would put there)."""
    # the library the package loads, found in a fresh interpreter (this one's
    # sys.path may hold the checkout: custom_ops/torch/build.py puts it there)
    lib = subprocess.run([sys.executable, "-P", "-c", "import paddle_flashmask._ops as o; print(o.library_path())"],
                         capture_output=True, text=True, check=True, cwd="/").stdout.strip()
    assert _libstdcxx_link(lib) == (True, False)
