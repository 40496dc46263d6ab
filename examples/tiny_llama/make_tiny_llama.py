"""Regenerate the tiny Llama next to this file: its config and a byte-level
tokenizer, no weights (paddleformers builds the model from the config when
`continue_training: false`). Deterministic; needs no network.

    python examples/tiny_llama/make_tiny_llama.py

Hidden 128, 2 layers, 2 query heads and 1 KV head of dim 64 (a head dim the
CUDA kernels are built for). The tokenizer maps every UTF-8 byte to one id
(0-255) plus <pad> 256, <s> 257, </s> 258.
"""
import json
import os

from tokenizers import Tokenizer, decoders, models, pre_tokenizers

HERE = os.path.dirname(os.path.abspath(__file__))
SPECIAL = ["<pad>", "<s>", "</s>"]
CHAT_TEMPLATE = ("{% for m in messages %}{{ m['content'] }}"
                 "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}{% endfor %}")
CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "vocab_size": 259, "pad_token_id": 256, "bos_token_id": 257, "eos_token_id": 258,
    "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
    "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 64,
    "max_position_embeddings": 4096, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
    "hidden_act": "silu", "initializer_range": 0.02, "tie_word_embeddings": False,
    "fuse_rms_norm": False, "dtype": "float32",
}


def byte_tokenizer():
    vocab = {symbol: i for i, symbol in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    vocab.update({token: len(vocab) + i for i, token in enumerate(SPECIAL)})
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(SPECIAL)
    return tokenizer


def main(out=HERE):
    byte_tokenizer().save(os.path.join(out, "tokenizer.json"))
    files = {
        "tokenizer_config.json": {"tokenizer_class": "PreTrainedTokenizerFast", "pad_token": "<pad>",
                                  "bos_token": "<s>", "eos_token": "</s>",
                                  "chat_template": CHAT_TEMPLATE},
        "config.json": CONFIG,
    }
    for name, content in files.items():
        with open(os.path.join(out, name), "w") as f:
            json.dump(content, f, indent=2, sort_keys=True)
            f.write("\n")


if __name__ == "__main__":
    main()
