"""Shared pieces of the fine-tuning examples (sft.py, lora.py, dpo.py, rm.py):
a hub-free byte tokenizer, JSONL loading and packing, a tiny Llama, and the
training loop that reports loss, tokens/s and peak memory."""
import os
import sys

try:
    import paddle_flashmask  # noqa: F401
except ImportError:  # a source checkout with the op built in place: use it without installing
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
