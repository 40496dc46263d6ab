"""DPO on packed preference data with FlashMask, on paddleformers' own DPO
workflow (DPOTrainer, DPODataset, dpo_collate_fn, its sigmoid DPO loss with the
starting policy as reference).

Each prompt is encoded once, followed by its chosen and its rejected answer;
the mask hides the chosen answer from the rejected one, several such groups
per row. Prints the loss, preference accuracy and reward margin.

    python examples/dpo.py                      # offline: tiny Llama, shipped preference data
    python examples/dpo.py --no-flash_mask      # the dense baseline on the same rows
    python examples/dpo.py --compare_dense      # both, side by side
    python examples/dpo.py --config my.yaml     # paddleformers keys (beta, ...) + flash_mask
"""
import common  # noqa: F401  (finds paddle_flashmask in a source checkout)
from common.run import example_main


def main(argv=None):
    return example_main(__file__, "dpo", "dpo", __doc__, argv)


if __name__ == "__main__":
    main()
