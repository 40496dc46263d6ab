"""LoRA fine-tuning on packed data with FlashMask, on paddleformers' own SFT
workflow with its LoRA (`lora: true`): the SFT example's data and causal
document mask, base weights frozen, low-rank adapters on the projections.

    python examples/lora.py                     # offline: tiny Llama, examples/data/sft.jsonl
    python examples/lora.py --no-flash_mask     # the dense baseline on the same rows
    python examples/lora.py --compare_dense     # both, side by side
    python examples/lora.py --config my.yaml    # paddleformers keys (lora_rank, ...) + flash_mask
"""
import common  # noqa: F401  (finds paddle_flashmask in a source checkout)
from common.run import example_main


def main(argv=None):
    return example_main(__file__, "lora", "sft", __doc__, argv, lora=True, lora_rank=8,
                        learning_rate=1e-2, max_seq_len=512)


if __name__ == "__main__":
    main()
