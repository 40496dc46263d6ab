"""SFT batches: prompt + response documents packed per row under a causal
document mask; the loss covers response tokens only."""
from paddle_flashmask.integrations.paddleformers import attention_inputs
from paddle_flashmask.masks import causal_document_mask

from .packing import Batch, chunk, pack_in_order, pad_rows, read_jsonl

IGNORE = -100  # paddleformers' ignored label


def encode(tokenizer, record, max_len):
    """(input ids, labels) of one document. Labels are already shifted, as
    paddleformers' criterion expects: labels[t] is the token after t, kept
    only where that token belongs to the response (or is its EOS)."""
    prompt = tokenizer.encode(record["prompt"])
    response = tokenizer.encode(record["response"]) + [tokenizer.eos_token_id]
    ids = (prompt + response)[:max_len]
    labels = [ids[t + 1] if t + 1 >= len(prompt) else IGNORE for t in range(len(ids) - 1)]
    return ids, labels + [IGNORE]  # the last token predicts nothing in this document


def sft_batches(tokenizer, path, row_len, batch_size, flash_mask):
    """All batches of the dataset, each [batch_size, row_len] (the last may be smaller)."""
    docs = [encode(tokenizer, r, row_len) for r in read_jsonl(path, ("prompt", "response"))]
    rows = pack_in_order([len(ids) for ids, _ in docs], row_len)
    return [_batch([[docs[i] for i in row] for row in rows_of_batch], tokenizer, row_len,
                   flash_mask) for rows_of_batch in chunk(rows, batch_size)]


def _batch(rows, tokenizer, row_len, flash_mask):
    ids = pad_rows([sum((d[0] for d in row), []) for row in rows], row_len, tokenizer.pad_token_id)
    labels = pad_rows([sum((d[1] for d in row), []) for row in rows], row_len, IGNORE)
    positions = pad_rows([sum((list(range(len(d[0]))) for d in row), []) for row in rows], row_len, 0)
    doc_lens = [[len(d[0]) for d in row] for row in rows]
    spec = causal_document_mask(doc_lens, row_len)
    arrays = {"input_ids": ids, "position_ids": positions, "labels": labels,
              **attention_inputs(spec)}
    return Batch(arrays, sum(map(sum, doc_lens)))
