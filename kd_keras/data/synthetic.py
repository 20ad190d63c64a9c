"""The built-in synthetic task (the offline demo): generated from a seed, with its own
WordPiece vocabulary."""

from __future__ import annotations

from typing import List

import numpy as np

from kd_keras.data.examples import Example
from kd_keras.data.vocab import SPECIAL_TOKENS

SYNTHETIC_NUM_WORDS = 92  # with the 5 special tokens: a vocab of 97 (odd on purpose)


def synthetic_vocab() -> List[str]:
    """WordPiece vocab of the synthetic task: special tokens, then words ``w0``..``w91``.

    Even words are "positive", odd words "negative".
    """
    return list(SPECIAL_TOKENS) + [f"w{i}" for i in range(SYNTHETIC_NUM_WORDS)]


def make_synthetic(num_examples: int, seed: int) -> List[Example]:
    """Generates the synthetic comparison task, deterministic in ``seed``.

    Each sentence has 4-12 words; even words are positive, odd words negative.  The
    label is 1 when sentence A has a larger share of positive words than sentence B,
    else 0 (shares differ by at least 0.1, labels alternate).  Solving it needs both
    segments and which words carry polarity: structure worth distilling.

    Args:
        num_examples: number of examples.
        seed: random seed; train and dev use different seeds.

    Returns:
        The examples.
    """
    rng = np.random.RandomState(seed)

    def sentence(share: float):
        length = rng.randint(4, 13)
        positive = rng.rand(length) < share
        words = 2 * rng.randint(0, SYNTHETIC_NUM_WORDS // 2, size=length) + (~positive)
        return " ".join(f"w{w}" for w in words), float(np.mean(positive))

    examples = []
    while len(examples) < num_examples:
        label = len(examples) % 2
        text_a, share_a = sentence(rng.uniform(0.05, 0.95))
        text_b, share_b = sentence(rng.uniform(0.05, 0.95))
        if abs(share_a - share_b) < 0.1:
            continue
        if (share_a > share_b) != bool(label):
            text_a, text_b = text_b, text_a
        examples.append(Example(text_a, text_b, label))
    return examples

