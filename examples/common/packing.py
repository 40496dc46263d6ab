"""JSONL reading and packing: several examples per row, no padding between
them, only a tail pad up to the fixed row length."""
import json

import numpy as np


def read_jsonl(path, fields):
    """The records of a JSONL file; every one must have `fields`."""
    records = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            record = json.loads(line)
            missing = [k for k in fields if k not in record]
            if missing:
                raise ValueError(f"{path}:{line_no}: missing field(s) {missing}")
            records.append(record)
    if not records:
        raise ValueError(f"{path}: no records")
    return records


def pack_in_order(lengths, row_len):
    """Greedy packing in data order: a row takes examples until the next one no
    longer fits. Returns the example indices of each row."""
    rows, row, used = [], [], 0
    for i, n in enumerate(lengths):
        if n > row_len:
            raise ValueError(f"example {i} has {n} tokens, more than the row length {row_len}")
        if used + n > row_len:
            rows.append(row)
            row, used = [], 0
        row.append(i)
        used += n
    if row:
        rows.append(row)
    return rows


def pad_rows(rows, row_len, pad_value, dtype=np.int64):
    """[len(rows), row_len] array of the rows, each padded at the end."""
    out = np.full((len(rows), row_len), pad_value, dtype=dtype)
    for b, row in enumerate(rows):
        out[b, :len(row)] = row
    return out


def chunk(items, size):
    return [items[i:i + size] for i in range(0, len(items), size)]
