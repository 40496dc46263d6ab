"""Preference batches for the reward model: each prompt once, then its chosen
and its rejected answer, packed several groups per row under a share-question
mask. Records are paddleformers' erniekit preference lines (the DPO data).

Every answer sees its prompt and itself, never the other answer, and its
position ids restart where the prompt ends: the model computes exactly what
it would on the two separate sequences [prompt, chosen] and [prompt, rejected],
with the prompt encoded once.
"""
import numpy as np

from paddle_flashmask.integrations.paddleformers import attention_inputs
from paddle_flashmask.masks import share_question_mask

from .packing import chunk, pack_in_order, pad_rows, read_jsonl

IGNORE = -100  # paddleformers' ignored label


def encode(tokenizer, record, max_len):
    """(prompt ids, [chosen ids, rejected ids]) of a single-turn record, answers
    ending in EOS and cut so that the whole group fits in max_len."""
    if len(record["src"]) != 1 or len(record["response"]) != 2:
        raise ValueError(f"expected a single-turn record with two responses, got {record}")
    order = sorted(range(2), key=lambda i: -record["sort"][i])  # chosen: the higher sort
    ids = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    prompt = ids(record["src"][0])
    answers = [ids("".join(record["response"][i])) + [tokenizer.eos_token_id] for i in order]
    room = (max_len - len(prompt)) // 2
    if room < 1:
        raise ValueError(f"prompt of {len(prompt)} tokens leaves no room for answers in {max_len}")
    return prompt, [a[:room] for a in answers]


def preference_batches(tokenizer, path, row_len, batch_size):
    groups = [encode(tokenizer, r, row_len)
              for r in read_jsonl(path, ("src", "response", "sort"))]
    sizes = [len(p) + sum(map(len, answers)) for p, answers in groups]
    rows = pack_in_order(sizes, row_len)
    return [_batch([[groups[i] for i in row] for row in rows_of_batch], tokenizer, row_len)
            for rows_of_batch in chunk(rows, batch_size)]


def _batch(rows, tokenizer, row_len):
    """Ids, positions, the mask, next-token `labels` inside every answer (-100
    elsewhere) and, flat over [batch * row_len], the last token of every answer
    (`answer_last`; answers alternate chosen, rejected)."""
    ids_rows, pos_rows, label_rows, answer_last = [], [], [], []
    for b, row in enumerate(rows):
        ids, positions, labels = [], [], []
        for prompt, answers in row:
            ids += prompt
            positions += range(len(prompt))
            labels += [IGNORE] * len(prompt)
            for answer in answers:
                answer_last.append(b * row_len + len(ids) + len(answer) - 1)
                ids += answer
                positions += range(len(prompt), len(prompt) + len(answer))
                labels += answer[1:] + [IGNORE]
        ids_rows.append(ids)
        pos_rows.append(positions)
        label_rows.append(labels)
    groups = [[(len(p), [len(a) for a in answers]) for p, answers in row] for row in rows]
    spec = share_question_mask(groups, row_len)
    arrays = {
        "input_ids": pad_rows(ids_rows, row_len, tokenizer.pad_token_id),
        "position_ids": pad_rows(pos_rows, row_len, 0),
        "labels": pad_rows(label_rows, row_len, IGNORE),
        "answer_last": np.asarray(answer_last, np.int64),
        **attention_inputs(spec),
    }
    return arrays
