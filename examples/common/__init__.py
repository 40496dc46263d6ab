"""Shared pieces of the fine-tuning examples (sft.py, lora.py, dpo.py, rm.py):
running paddleformers' training workflows with the flash_mask switch, the run
report (loss, tokens/s, peak memory, preference accuracy), and the reward
model's packed preference data."""
import os
import sys

try:
    import paddle_flashmask  # noqa: F401
except ImportError:  # a source checkout with the op built in place: use it without installing
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
