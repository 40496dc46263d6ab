"""Preference batches (DPO, RM): each prompt once, then its chosen and its
rejected answer, packed several groups per row under a share-question mask.

Every answer sees its prompt and itself, never the other answer, and its
position ids restart where the prompt ends: the model computes exactly what
it would on the two separate sequences [prompt, chosen] and [prompt, rejected],
with the prompt encoded once.
"""
import numpy as np

from paddle_flashmask.integrations.paddleformers import attention_inputs
from paddle_flashmask.masks import share_question_mask

from .packing import Batch, chunk, pack_in_order, pad_rows, read_jsonl


def encode(tokenizer, record, max_len):
    """(prompt ids, [chosen ids, rejected ids]), answers ending in EOS; the
    answers are cut so that the whole group fits in max_len."""
    prompt = tokenizer.encode(record["prompt"])
    answers = [tokenizer.encode(record[k]) + [tokenizer.eos_token_id] for k in ("chosen", "rejected")]
    room = (max_len - len(prompt)) // 2
    if room < 1:
        raise ValueError(f"prompt of {len(prompt)} tokens leaves no room for answers in {max_len}")
    return prompt, [a[:room] for a in answers]


def preference_batches(tokenizer, path, row_len, batch_size, flash_mask):
    groups = [encode(tokenizer, r, row_len)
              for r in read_jsonl(path, ("prompt", "chosen", "rejected"))]
    sizes = [len(p) + sum(map(len, answers)) for p, answers in groups]
    rows = pack_in_order(sizes, row_len)
    return [_batch([[groups[i] for i in row] for row in rows_of_batch], tokenizer, row_len,
                   flash_mask) for rows_of_batch in chunk(rows, batch_size)]


def _batch(rows, tokenizer, row_len, flash_mask):
    """Besides ids, positions and the mask, the indices the losses need, flat over
    [batch * row_len]: for every answer token, the position whose logits predict
    it (`pred_index`), the token (`target`) and its answer (`answer_of_token`);
    for every answer, its last token (`answer_last`). Answers alternate chosen,
    rejected."""
    ids_rows, pos_rows = [], []
    pred, target, answer_of_token, answer_last = [], [], [], []
    num_answers = 0
    for b, row in enumerate(rows):
        ids, positions = [], []
        for prompt, answers in row:
            prompt_last = b * row_len + len(ids) + len(prompt) - 1
            ids += prompt
            positions += range(len(prompt))
            for answer in answers:
                start = b * row_len + len(ids)
                # The first answer token is predicted by the prompt's last token, the rest by
                # their predecessor: as in the unpacked [prompt, answer] sequence.
                pred += [prompt_last] + list(range(start, start + len(answer) - 1))
                target += answer
                answer_of_token += [num_answers] * len(answer)
                answer_last.append(start + len(answer) - 1)
                num_answers += 1
                ids += answer
                positions += range(len(prompt), len(prompt) + len(answer))
        ids_rows.append(ids)
        pos_rows.append(positions)
    groups = [[(len(p), [len(a) for a in answers]) for p, answers in row] for row in rows]
    spec = share_question_mask(groups, row_len)
    arrays = {
        "input_ids": pad_rows(ids_rows, row_len, tokenizer.pad_token_id),
        "position_ids": pad_rows(pos_rows, row_len, 0),
        "pred_index": np.asarray(pred, np.int64), "target": np.asarray(target, np.int64),
        "answer_of_token": np.asarray(answer_of_token, np.int64),
        "answer_last": np.asarray(answer_last, np.int64),
        **attention_inputs(spec),
    }
    return Batch(arrays, sum(map(len, ids_rows)))
