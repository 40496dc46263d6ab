"""A `custom_register_path` for tests: runs the shipped register module
(examples/cli/register_flashmask.py), then counts the calls of our op and
writes the count to $PADDLE_FLASHMASK_PROBE when the process exits."""
import atexit
import os
import runpy

from paddle_flashmask.integrations import paddleformers as pf_flashmask

HERE = os.path.dirname(os.path.abspath(__file__))
runpy.run_path(os.path.join(HERE, os.pardir, "examples", "cli", "register_flashmask.py"))
assert pf_flashmask.is_enabled()

_calls = [0]
_op = pf_flashmask.flashmask_attention


def _counting_op(*args, **kwargs):
    _calls[0] += 1
    return _op(*args, **kwargs)


pf_flashmask.flashmask_attention = _counting_op


@atexit.register
def _write_count():
    with open(os.environ["PADDLE_FLASHMASK_PROBE"], "w") as f:
        f.write(str(_calls[0]))
