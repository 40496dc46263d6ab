"""Command-line flags shared by the examples."""
import argparse
import os

import paddle

from paddle_flashmask.integrations.paddleformers import add_flash_mask_argument

DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")


def example_parser(description, dataset_file, **defaults):
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", default=None,
                        help="local path (or hub name) of a paddleformers causal LM; "
                             "default: a tiny Llama built in code")
    parser.add_argument("--tokenizer_name_or_path", default=None,
                        help='"byte" for the built-in byte tokenizer; default: the model\'s own, '
                             'or "byte" with the tiny Llama')
    parser.add_argument("--dataset", default=os.path.join(DATA_DIR, dataset_file),
                        help="JSONL file (default: the small offline one in examples/data)")
    parser.add_argument("--max_seq_len", type=int, default=256, help="packed row length")
    parser.add_argument("--batch_size", type=int, default=4, help="packed rows per step")
    parser.add_argument("--max_steps", type=int, default=60)
    parser.add_argument("--learning_rate", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="cpu or gpu (default: gpu when available)")
    parser.add_argument("--dtype", default=None,
                        help="float32, bfloat16 or float16 (default: float32 on CPU, bfloat16 on "
                             "GPU, where the kernels take 16-bit inputs only)")
    add_flash_mask_argument(parser)
    parser.set_defaults(**defaults)
    return parser


def resolve(args):
    """Fill the defaults that depend on the machine and the model; set the device."""
    if args.device is None:
        has_gpu = paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
        args.device = "gpu" if has_gpu else "cpu"
    paddle.set_device(args.device)
    if args.dtype is None:
        args.dtype = "float32" if args.device == "cpu" else "bfloat16"
    if args.tokenizer_name_or_path is None:
        args.tokenizer_name_or_path = args.model_name_or_path or "byte"
    return args
