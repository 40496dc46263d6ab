"""Loads the compiled extension (_flashmask_torch.so, made by
custom_ops/torch/build.py) on first use."""
import importlib

_EXT = None
_ERR = None


def load():
    global _EXT, _ERR
    if _EXT is None and _ERR is None:
        try:
            _EXT = importlib.import_module("paddle_flashmask.torch._flashmask_torch")
        except ImportError as e:  # not built here
            _ERR = e
    if _EXT is None:
        raise RuntimeError(
            "paddle_flashmask.torch: the extension is not built; run "
            "`python custom_ops/torch/build.py` on a machine with torch (+ CUDA and nvcc)"
        ) from _ERR
    return _EXT


def is_available():
    """True when the extension is built and loads."""
    try:
        load()
        return True
    except RuntimeError:
        return False


def has_cuda():
    return is_available() and load().has_cuda()
