"""Writes a small made-up review data set, the worked example of README's "Your own data".

    python scripts/make_example_data.py /tmp/reviews

writes ``train.csv`` and ``dev.csv`` (columns ``id,review,sentiment``; the classes
positive, negative and neutral in a 5 : 3 : 2 mix, so the majority class is a baseline
worth showing), ``new.jsonl`` (reviews without labels, for ``--mode=predict``) and
``unlabelled.csv`` (as many more reviews, column ``review`` only, for
``--transfer_file``).  The texts
are generated from word lists with a fixed seed: the same files every time.
"""

from __future__ import annotations

import csv
import json
import os
import sys

import numpy as np

POSITIVE = ("great", "excellent", "loved", "wonderful", "friendly", "fast", "perfect",
            "delicious", "helpful", "comfortable")
NEGATIVE = ("awful", "broken", "rude", "slow", "terrible", "dirty", "cold", "noisy",
            "disappointing", "expensive")
MIDDLING = ("okay", "average", "decent", "ordinary", "acceptable", "fine", "standard",
            "adequate", "reasonable", "unremarkable")
NEUTRAL = ("the", "room", "food", "staff", "was", "and", "our", "stay", "service", "very",
           "hotel", "really", "quite", "view")
CLASSES = ("positive", "negative", "neutral")
SHARES = (0.5, 0.3, 0.2)


def _clause(kind, rng: np.random.RandomState) -> str:
    words = list(rng.choice(NEUTRAL, size=rng.randint(2, 5)))
    words += list(rng.choice(kind, size=rng.randint(1, 3)))
    rng.shuffle(words)
    return " ".join(words)


def review(sentiment: str, rng: np.random.RandomState) -> str:
    """One made-up review: one or two clauses of neutral words and words of its
    sentiment."""
    kind = {"positive": POSITIVE, "negative": NEGATIVE, "neutral": MIDDLING}[sentiment]
    text = " and ".join(_clause(kind, rng) for _ in range(rng.randint(1, 3)))
    return text[0].upper() + text[1:] + rng.choice([".", "!", "..."])


def rows(count: int, seed: int):
    rng = np.random.RandomState(seed)
    labels = rng.choice(CLASSES, size=count, p=SHARES)
    return [(i, review(label, rng), label) for i, label in enumerate(labels)]


def write_example(folder: str, train_size: int = 1200, dev_size: int = 300) -> None:
    """Writes train.csv, dev.csv, new.jsonl and unlabelled.csv into folder."""
    os.makedirs(folder, exist_ok=True)
    for name, count, seed in (("train.csv", train_size, 1), ("dev.csv", dev_size, 2)):
        with open(os.path.join(folder, name), "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["id", "review", "sentiment"])
            writer.writerows(rows(count, seed))
    with open(os.path.join(folder, "new.jsonl"), "w", encoding="utf-8") as handle:
        for _, text, _ in rows(5, 3):
            handle.write(json.dumps({"review": text}) + "\n")
    with open(os.path.join(folder, "unlabelled.csv"), "w", newline="",
              encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["review"])
        writer.writerows([text] for _, text, _ in rows(train_size, 4))


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: python scripts/make_example_data.py OUTPUT_FOLDER", file=sys.stderr)
        return 2
    write_example(sys.argv[1])
    print(f"Wrote {sys.argv[1]}/train.csv, dev.csv, new.jsonl and unlabelled.csv.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
