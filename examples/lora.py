"""LoRA fine-tuning of a Llama on packed prompt/response documents.

The SFT example's data and causal document mask, with the base weights frozen
and low-rank adapters (paddleformers.peft) on every attention and MLP projection.

    python examples/lora.py                    # offline: tiny Llama, byte tokenizer, data/sft.jsonl
    python examples/lora.py --no-flash_mask    # same run on the dense [B, 1, S, S] mask
    python examples/lora.py --model_name_or_path PATH --lora_rank 16
"""
import common  # noqa: F401  (finds paddle_flashmask in a source checkout)
from common.cli import example_parser, resolve
from common.model import build_model
from common.sft_data import sft_batches
from common.tokenizer import load_tokenizer
from common.train import train
from sft import sft_loss

PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def add_lora(model, rank):
    from paddleformers.peft import LoRAConfig, LoRAModel

    config = LoRAConfig(target_modules=[f".*{name}.*" for name in PROJECTIONS], r=rank,
                        lora_alpha=2 * rank)
    model = LoRAModel(model, config)
    model.mark_only_lora_as_trainable()
    return model


def main(argv=None):
    parser = example_parser(__doc__, "sft.jsonl", learning_rate=1e-2)
    parser.add_argument("--lora_rank", type=int, default=8)
    args = resolve(parser.parse_args(argv))
    tokenizer = load_tokenizer(args.tokenizer_name_or_path)
    batches = sft_batches(tokenizer, args.dataset, args.max_seq_len, args.batch_size, args.flash_mask)
    model = add_lora(build_model(args, tokenizer.vocab_size), args.lora_rank)
    return train(model, batches, sft_loss, args, name="lora")


if __name__ == "__main__":
    main()
