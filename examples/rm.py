"""Reward-model training of a Llama on packed preference data.

Packing as in the DPO example (share-question mask, one prompt then its chosen
and rejected answers). A linear value head reads the hidden state of each
answer's last token; the Bradley-Terry loss pushes chosen above rejected.

    python examples/rm.py                     # offline: tiny Llama, data/preference.jsonl
    python examples/rm.py --no-flash_mask     # same run on the dense [B, 1, S, S] mask
    python examples/rm.py --model_name_or_path PATH --dataset prefs.jsonl
"""
import paddle
import paddle.nn.functional as F
from paddle import nn

import common  # noqa: F401  (finds paddle_flashmask in a source checkout)
from common.cli import example_parser, resolve
from common.model import backbone, build_model, causal_lm_inputs
from common.preference_data import preference_batches
from common.tokenizer import load_tokenizer
from common.train import train


class RewardModel(nn.Layer):
    """The causal LM's decoder stack plus a scalar head; the LM head goes unused."""

    def __init__(self, lm):
        super().__init__()
        self.decoder = backbone(lm)
        self.value_head = nn.Linear(lm.config.hidden_size, 1)

    def forward(self, arrays):
        """Reward of every answer, [num_answers] (chosen, rejected, ...)."""
        hidden = self.decoder(**causal_lm_inputs(arrays, keys=("input_ids", "position_ids")))[0]
        last = hidden.reshape([-1, hidden.shape[-1]])[paddle.to_tensor(arrays["answer_last"])]
        return self.value_head(last.astype(self.value_head.weight.dtype))[:, 0]


def reward_loss(model, batch):
    rewards = model(batch.arrays).astype("float32")
    return -F.log_sigmoid(rewards[0::2] - rewards[1::2]).mean()


def main(argv=None):
    args = resolve(example_parser(__doc__, "preference.jsonl", learning_rate=1e-3).parse_args(argv))
    tokenizer = load_tokenizer(args.tokenizer_name_or_path)
    batches = preference_batches(tokenizer, args.dataset, args.max_seq_len, args.batch_size,
                                 args.flash_mask)
    model = RewardModel(build_model(args, tokenizer.vocab_size))
    return train(model, batches, reward_loss, args, name="rm")


if __name__ == "__main__":
    main()
