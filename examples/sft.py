"""Supervised fine-tuning on packed data with FlashMask, on paddleformers' own
SFT workflow (SFTTrainer, dataset, packing, collator), beside the dense-mask
baseline on the same packed rows.

Several prompt/response documents share each 1,024-token row; a causal document
mask keeps them apart. FlashMask reads it as one int32 per token; the baseline
(paddleformers' eager attention) expands it to [B, 1, S, S] in every layer. At
this length FlashMask is the faster and smaller of the two on a CPU.

    python examples/sft.py                      # both modes, side by side (offline, CPU)
    python examples/sft.py --no-compare_dense   # FlashMask only
    python examples/sft.py --no-compare_dense --no-flash_mask    # the dense baseline only
    python examples/sft.py --config my.yaml     # paddleformers keys (+ flash_mask) over
                                                # examples/cli/sft.yaml
"""
import common  # noqa: F401  (finds paddle_flashmask in a source checkout)
from common.run import example_main


def main(argv=None):
    return example_main(__file__, "sft", "sft", __doc__, argv, compare_dense=True)


if __name__ == "__main__":
    main()
