"""Tokenizers: a byte-level one that needs no files (the offline default), or
a real one loaded from a local path / hub name with --tokenizer_name_or_path."""


class ByteTokenizer:
    """UTF-8 bytes are ids 0-255; then pad, bos and eos. No vocabulary file."""

    pad_token_id, bos_token_id, eos_token_id = 256, 257, 258
    vocab_size = 259

    def encode(self, text):
        return list(text.encode("utf-8"))

    def decode(self, ids):
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")


class PretrainedTokenizer:
    """A paddleformers tokenizer behind ByteTokenizer's small interface."""

    def __init__(self, name_or_path):
        from paddleformers.transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        self.eos_token_id = self.tokenizer.eos_token_id
        pad = self.tokenizer.pad_token_id
        self.pad_token_id = self.eos_token_id if pad is None else pad
        self.vocab_size = len(self.tokenizer)

    def encode(self, text):
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def decode(self, ids):
        return self.tokenizer.decode(ids)


def load_tokenizer(name_or_path):
    """"byte" (or None) for ByteTokenizer, else a pretrained tokenizer."""
    if name_or_path in (None, "byte"):
        return ByteTokenizer()
    return PretrainedTokenizer(name_or_path)
