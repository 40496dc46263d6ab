"""Regenerate the tiny offline datasets next to this file (deterministic).

    python examples/data/make_data.py

Both are in paddleformers' "erniekit" format, which its datasets read:
sft.jsonl:        {"src", "tgt"}                       - string and arithmetic chores
preference.jsonl: {"src", "tgt", "response", "sort"}   - the right answer (sort 1) vs a
                                                          near miss (sort 0)
"""
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
WORDS = ["paddle", "mask", "flash", "llama", "token", "query", "key", "value", "row", "column",
         "sparse", "dense", "pack", "batch", "model", "tensor", "kernel", "train", "loss", "head"]


def task(rng):
    """One (prompt, right answer, near-miss answer) triple."""
    kind = rng.randrange(4)
    if kind == 0:
        a, b = rng.randrange(50), rng.randrange(50)
        return f"add {a} {b}", str(a + b), str(a + b + rng.choice([-2, -1, 1, 2]))
    word = rng.choice(WORDS)
    if kind == 1:
        return f"reverse {word}", word[::-1], word[::-1][1:] + word[-1]
    if kind == 2:
        return f"upper {word}", word.upper(), word.upper()[:-1] + word[-1]
    times = rng.randrange(2, 4)
    return f"repeat {word} {times}", " ".join([word] * times), " ".join([word] * (times + 1))


def prompt(question):
    return f"Q: {question}\nA: "


def write(name, rows):
    with open(os.path.join(HERE, name), "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def main():
    rng = random.Random(0)
    sft = []
    for _ in range(400):
        question, answer, _ = task(rng)
        sft.append({"src": prompt(question), "tgt": answer})
    write("sft.jsonl", sft)
    preference = []
    for _ in range(300):
        question, answer, wrong = task(rng)
        preference.append({"src": [prompt(question)], "tgt": [], "response": [[answer], [wrong]],
                           "sort": [1, 0]})
    write("preference.jsonl", preference)


if __name__ == "__main__":
    main()
