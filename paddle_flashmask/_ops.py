"""Loads the compiled custom-op library and exposes its ops as Python callables.

Paddle's own generator writes the op wrappers (dygraph, PIR and static graph),
so the ops behave exactly like those of `paddle.utils.cpp_extension.setup`.

Why not a public path: Paddle 3.3.1 has none for a prebuilt library. The
module `setup` writes next to it (`_flashmask_ops.py`) is that generator's
output plus a bootstrap that loads `_flashmask_ops_pd_.so`, a name only an
in-place build produces (a wheel install keeps `_flashmask_ops.so`, which also
shadows the .py on import), and `paddle.utils.cpp_extension.load` compiles from
source. So we register the library the way that bootstrap does and run the
same generator (`_custom_api_content`, private) on the registered names.
"""
import glob
import os
import warnings

_LIB_STEM = "_flashmask_ops"
_OPS = None


def library_path():
    here = os.path.dirname(os.path.abspath(__file__))
    # An in-place build renames the library to <stem>_pd_.so; an install keeps <stem>.so.
    found = sorted(glob.glob(os.path.join(here, _LIB_STEM + "*.so")))
    if not found:
        raise ImportError(
            f"paddle_flashmask: no op library {_LIB_STEM}*.so in {here}; install the package "
            "with `pip install --no-build-isolation .` from the repository root"
        )
    return found[0]


def _load():
    with warnings.catch_warnings():  # paddle warns about ccache on import
        warnings.simplefilter("ignore")
        from paddle.utils.cpp_extension import load_op_meta_info_and_register_op
        from paddle.utils.cpp_extension.extension_utils import _custom_api_content
    names = load_op_meta_info_and_register_op(library_path())
    namespace = {}
    for name in sorted(set(names)):
        if not name.endswith("_grad"):
            exec(compile(_custom_api_content(name), f"<paddle_flashmask op {name}>", "exec"), namespace)
    return namespace


def op(name):
    global _OPS
    if _OPS is None:
        _OPS = _load()
    return _OPS[name]
