"""The installed package as users meet it: its metadata (licence, requirements),
its public names (dir, __all__), type hints that resolve, docstrings whose
examples run and that list what they raise; plus the wheel-content rule of
.ci/check_wheel.py and README command 2 being what CI runs."""
import ast
import doctest
import importlib
import importlib.metadata
import importlib.resources
import importlib.util
import inspect
import os
import re
import subprocess
import sys
import typing

import pytest

import paddle_flashmask as pfm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCTEST_MODULES = ("paddle_flashmask.api", "paddle_flashmask.masks", "paddle_flashmask.paper_masks")
PUBLIC_FUNCTIONS = [name for name in pfm.__all__ if inspect.isfunction(getattr(pfm, name))]


def _load_check_wheel():
    spec = importlib.util.spec_from_file_location("check_wheel", os.path.join(ROOT, ".ci", "check_wheel.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_metadata_has_the_licence_and_the_requirements():
    meta = importlib.metadata.metadata("paddle-flashmask")
    assert meta["License"] == "Apache-2.0"
    assert any(f.name.startswith("LICENSE") for f in importlib.metadata.files("paddle-flashmask"))
    assert meta["Requires-Python"] == ">=3.11"
    requires = importlib.metadata.requires("paddle-flashmask")
    base = [r for r in requires if "extra ==" not in r]
    assert any(re.match(r"paddlepaddle(-gpu)?[<>=]", r) for r in base), base
    assert "numpy" in base
    assert not any("paddleformers" in r or "torch" in r for r in base), "the op alone needs neither"
    assert any(r.startswith("paddleformers") and 'extra == "llm"' in r for r in requires)
    assert any(r.startswith("torch") and 'extra == "torch"' in r for r in requires)
    assert meta["Description-Content-Type"] == "text/markdown" and "FlashMask" in meta["Description"]


def test_installed_package_ships_py_typed_and_no_build_tree():
    files = importlib.metadata.files("paddle-flashmask")
    names = [str(f) for f in files]
    assert importlib.resources.files("paddle_flashmask").joinpath("py.typed").is_file()
    assert [n for n in names if n.endswith(".o") or n.startswith("build/")] == []


def test_dir_lists_every_public_name_and_each_resolves():
    listed = dir(pfm)
    assert set(pfm.__all__) <= set(listed)
    assert "flashmask_attention" in listed and "causal_document_mask" in listed
    for name in pfm.__all__:
        assert getattr(pfm, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        pfm.not_a_name  # noqa: B018


def test_type_checkers_see_every_lazy_name():
    """The TYPE_CHECKING imports in __init__ (what mypy and IDEs read) name the same
    objects as the lazy table (what runs)."""
    with open(pfm.__file__, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    block = next(n for n in tree.body if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test))
    seen = {alias.name: "." + node.module for node in block.body for alias in node.names}
    assert seen == pfm._LAZY


@pytest.mark.parametrize("name", PUBLIC_FUNCTIONS)
def test_public_functions_are_typed_and_documented(name):
    fn = inspect.unwrap(getattr(pfm, name))
    hints = typing.get_type_hints(fn)  # resolves every annotation: a typo raises NameError
    params = [p for p in inspect.signature(fn).parameters if p != "self"]
    assert set(params) <= set(hints) and "return" in hints, f"{name}: unannotated {set(params) - set(hints)}"
    doc = inspect.getdoc(fn)
    assert "Example" in doc and ">>> " in doc, f"{name}: no runnable example"
    if name != "window_startend_row_indices":  # an internal helper that checks nothing
        assert "Raises:" in doc and "Error" in doc.split("Raises:")[1], f"{name}: no Raises list"


def test_torch_door_is_typed_and_documented():
    """Read from the source (torch need not be installed)."""
    origin = importlib.util.find_spec("paddle_flashmask.torch").submodule_search_locations[0]
    with open(os.path.join(origin, "interface.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "flashmask_attention")
    args = fn.args.args + fn.args.kwonlyargs
    assert fn.returns is not None and all(a.annotation is not None for a in args)
    doc = ast.get_docstring(fn)
    assert "Raises:" in doc and "Example" in doc and ">>> " in doc


@pytest.mark.parametrize("module", DOCTEST_MODULES)
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_check_wheel_accepts_the_package_and_rejects_build_leftovers():
    check = _load_check_wheel()
    good = ["paddle_flashmask/__init__.py", "paddle_flashmask/_flashmask_ops.so", "paddle_flashmask/py.typed",
            "paddle_flashmask-0.1.0.dist-info/METADATA", "paddle_flashmask-0.1.0.dist-info/LICENSE"]
    assert check.problems(good) == []
    stale = good + ["build/temp.linux-x86_64-cpython-311/custom_ops/core/flashmask_api.o"]
    assert check.problems(stale) == [f"outside the package: {stale[-1]}"]
    for stray in ("paddle_flashmask/core.o", "paddle_flashmask/tests/test_x.py", "tests/test_masks.py",
                  "examples/sft.py"):
        assert len(check.problems(good + [stray])) == 1, stray
    assert check.problems(good[:1] + good[2:]) == ["missing: paddle_flashmask/_flashmask_ops.so"]
    assert check.problems(good[:-1]) == ["missing: the LICENSE in the dist-info"]


def test_readme_command_2_is_what_ci_runs():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        commands = [line for line in f.read().splitlines() if line.startswith("pip install -r")]
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
        ci = f.read().splitlines()
    assert commands[1].endswith("python -P -m pytest -q tests") and commands[1] in ci
    assert '".[llm]"' in commands[0] and commands[0].endswith("python examples/sft.py")


def test_build_without_paddle_says_how_to_build():
    """pip's build isolation hides the installed Paddle: setup.py must say so, not crash."""
    hide_paddle = ("import runpy, sys; sys.modules['paddle'] = None; sys.argv = ['setup.py', '--version']; "
                   "runpy.run_path('setup.py', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", hide_paddle], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "pip install --no-build-isolation ." in proc.stderr
