"""Reward-model training on packed preference data with FlashMask, on
paddleformers' own Trainer (optimizer, schedule, logging). paddleformers 1.2 has
no reward-model workflow, so this example brings the model, data and loss.

Each prompt is encoded once, followed by its chosen and its rejected answer,
several groups per row under a share-question mask. A linear value head reads
the hidden state of each answer's last token; the Bradley-Terry loss pushes
chosen above rejected. Prints the loss, preference accuracy and reward margin.

    python examples/rm.py                       # offline: tiny Llama, shipped preference data
    python examples/rm.py --no-flash_mask       # the dense baseline on the same rows
    python examples/rm.py --compare_dense       # both, side by side
"""
import tempfile

import paddle
import paddle.nn.functional as F
from paddle import nn

import common  # noqa: F401  (finds paddle_flashmask in a source checkout)
from common.preference_data import preference_batches
from common.run import example_main
from paddle_flashmask.integrations.paddleformers import INDICES_KEY, use_flash_mask

ROWS_PER_STEP = 2


class RewardModel(nn.Layer):
    """The causal LM's decoder stack plus a scalar head; the LM head goes unused."""

    def __init__(self, lm):
        super().__init__()
        self.config = lm.config
        self.decoder = getattr(lm, lm.base_model_prefix)
        self.value_head = nn.Linear(lm.config.hidden_size, 1)

    def get_hardware_flops(self):  # the Trainer asks models with a config for their FLOPs
        raise NotImplementedError

    def forward(self, input_ids, position_ids, answer_last, **mask):
        """Reward of every answer, [num_answers] (chosen, rejected, ...)."""
        hidden = self.decoder(input_ids=input_ids, position_ids=position_ids, **mask)[0]
        last = hidden.reshape([-1, hidden.shape[-1]])[answer_last]
        return self.value_head(last.astype(self.value_head.weight.dtype))[:, 0]


def reward_stats(rewards):
    """Bradley-Terry loss, accuracy and margin of [chosen, rejected, ...] rewards."""
    margin = rewards[0::2] - rewards[1::2]
    return (-F.log_sigmoid(margin).mean(), float((margin > 0).astype("float32").mean()),
            float(margin.mean()))


def reward_trainer_class():
    from paddleformers.trainer import Trainer

    class RewardTrainer(Trainer):
        """The Trainer with the reward loss; logs accuracy and margin under the keys
        paddleformers' DPOTrainer uses."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self._preference = []  # (accuracy, margin) of the steps since the last log

        def compute_loss(self, model, inputs, return_outputs=False):
            loss, accuracy, margin = reward_stats(model(**inputs).astype("float32"))
            self._preference.append((accuracy, margin))
            return (loss, None) if return_outputs else loss

        def log(self, logs, **kwargs):
            if "loss" in logs and self._preference:
                n = len(self._preference)
                logs["rewards/accuracies"] = sum(a for a, _ in self._preference) / n
                logs["rewards/margins"] = sum(m for _, m in self._preference) / n
                self._preference.clear()
            super().log(logs, **kwargs)

    return RewardTrainer


def train_reward_model(config, report):
    """paddleformers' Trainer on our packed preference rows (one item = one step)."""
    from paddleformers.trainer import TrainingArguments
    from paddleformers.transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(config["model_name_or_path"])
    rows = preference_batches(tokenizer, config["train_dataset_path"], config["max_seq_len"],
                              ROWS_PER_STEP)
    lm_config = AutoConfig.from_pretrained(config["model_name_or_path"])
    lm_config.seq_length = config["max_seq_len"] * ROWS_PER_STEP  # tokens per logged sample
    use_flash_mask(lm_config, config["_attn_implementation"] == "flashmask")
    paddle.seed(config["seed"])
    if config.get("continue_training"):
        lm = AutoModelForCausalLM.from_pretrained(config["model_name_or_path"], config=lm_config)
    else:
        lm = AutoModelForCausalLM.from_config(lm_config)
    model = RewardModel(lm)
    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(
            output_dir=config.get("output_dir", scratch), max_steps=config["max_steps"],
            learning_rate=config["learning_rate"], warmup_steps=0, logging_steps=1,
            per_device_train_batch_size=1, save_strategy="no", seed=config["seed"],
            device=config["device"], remove_unused_columns=False, amp_master_grad=False)
        trainer = reward_trainer_class()(model=model, args=args, train_dataset=rows,
                                         data_collator=_one_row_batch, callbacks=[report])
        trainer.train()


def _one_row_batch(items):
    arrays = items[0]
    keys = ("input_ids", "position_ids", "answer_last", INDICES_KEY)
    return {k: paddle.to_tensor(arrays[k]) for k in keys}


def main(argv=None):
    return example_main(__file__, "rm", "dpo", __doc__, argv, train=train_reward_model,
                        learning_rate=1e-3, max_seq_len=256)


if __name__ == "__main__":
    main()
