"""DPO (direct preference optimisation) of a Llama on packed preference data.

Each prompt is encoded once and followed by its chosen and rejected answers,
several such groups per row, under a share-question mask: every answer sees
its prompt and itself only, with position ids restarting after the prompt.
The reference model is the starting policy; its log-probs are computed once.

    python examples/dpo.py                    # offline: tiny Llama, data/preference.jsonl
    python examples/dpo.py --no-flash_mask    # same run on the dense [B, 1, S, S] mask
    python examples/dpo.py --model_name_or_path PATH --dataset prefs.jsonl
        # prefs.jsonl: {"prompt", "chosen", "rejected"} per line
"""
import paddle
import paddle.nn.functional as F

import common  # noqa: F401  (finds paddle_flashmask in a source checkout)
from common.cli import example_parser, resolve
from common.model import build_model, causal_lm_inputs
from common.preference_data import preference_batches
from common.tokenizer import load_tokenizer
from common.train import train


def answer_logps(model, arrays):
    """Summed log-probability of every answer, [num_answers] (chosen, rejected, ...)."""
    logits = model(**causal_lm_inputs(arrays, keys=("input_ids", "position_ids")))[0]
    logits = logits.reshape([-1, logits.shape[-1]])[paddle.to_tensor(arrays["pred_index"])]
    logp = F.log_softmax(logits.astype("float32"), axis=-1)
    token_logp = paddle.take_along_axis(logp, paddle.to_tensor(arrays["target"])[:, None], axis=1)
    return paddle.geometric.segment_sum(token_logp[:, 0], paddle.to_tensor(arrays["answer_of_token"]))


def dpo_loss(policy, reference, beta):
    """-log sigmoid(beta * (chosen margin - rejected margin)), margins over the reference."""
    margin = (policy - reference)
    return -F.log_sigmoid(beta * (margin[0::2] - margin[1::2])).mean()


def main(argv=None):
    parser = example_parser(__doc__, "preference.jsonl", learning_rate=2e-3)
    parser.add_argument("--beta", type=float, default=0.1)
    args = resolve(parser.parse_args(argv))
    tokenizer = load_tokenizer(args.tokenizer_name_or_path)
    batches = preference_batches(tokenizer, args.dataset, args.max_seq_len, args.batch_size,
                                 args.flash_mask)
    model = build_model(args, tokenizer.vocab_size)
    model.eval()
    with paddle.no_grad():  # the frozen reference = the starting policy
        reference = {id(b): answer_logps(model, b.arrays) for b in batches}

    def loss_fn(model, batch):
        return dpo_loss(answer_logps(model, batch.arrays), reference[id(batch)], args.beta)

    return train(model, batches, loss_fn, args, name="dpo")


if __name__ == "__main__":
    main()
