"""The torch door's build always relinks: the core objects reach the link as
ldflags, which ninja does not track, so a kernel edit with an unchanged
binding source would otherwise leave the old _flashmask_torch.so in place
(A/B builds of kernel variants then silently time the same library).
torch's cpp_extension.load is replaced by a stand-in that records what it
finds, so the test runs without torch or a compiler."""
import importlib.util
import os
import sys
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_build_module():
    spec = importlib.util.spec_from_file_location("flashmask_torch_build",
                                                  os.path.join(ROOT, "custom_ops", "torch", "build.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_build_torch_removes_the_stale_library_before_linking(tmp_path, monkeypatch):
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

    dest = build.build_torch(str(tmp_path / "build"), ["kernel.o"], with_cuda=False)

    assert seen["stale_present"] is False
    assert "kernel.o" in seen["ldflags"]
    assert open(dest).read() == "new"
    assert dest == os.path.join(str(fake_root), "paddle_flashmask", "torch", "_flashmask_torch.so")
