"""Supervised fine-tuning of a Llama on packed prompt/response documents.

Several documents share each row with no padding between them; a causal
document mask keeps them apart (FlashMask: one int32 per token instead of a
[S, S] mask). The loss covers response tokens.

    python examples/sft.py                    # offline: tiny Llama, byte tokenizer, data/sft.jsonl
    python examples/sft.py --no-flash_mask    # same run on the dense [B, 1, S, S] mask
    python examples/sft.py --model_name_or_path PATH --dataset my.jsonl   # {"prompt", "response"}
"""
import common  # noqa: F401  (finds paddle_flashmask in a source checkout)
from common.cli import example_parser, resolve
from common.model import build_model, causal_lm_inputs
from common.sft_data import sft_batches
from common.tokenizer import load_tokenizer
from common.train import train


def sft_loss(model, batch):
    return model(**causal_lm_inputs(batch.arrays))[0]


def main(argv=None):
    args = resolve(example_parser(__doc__, "sft.jsonl").parse_args(argv))
    tokenizer = load_tokenizer(args.tokenizer_name_or_path)
    batches = sft_batches(tokenizer, args.dataset, args.max_seq_len, args.batch_size, args.flash_mask)
    model = build_model(args, tokenizer.vocab_size)
    return train(model, batches, sft_loss, args, name="sft")


if __name__ == "__main__":
    main()
