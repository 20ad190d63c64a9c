"""Augmented copies of training text.  Each copy keeps a text's words but for some:
replaced by near neighbours in the teacher's input-embedding space (``embedding``: an
offline stand-in for the GloVe neighbours of TinyBERT's augmentation, for any
checkpoint), or deleted and swapped at random (``delete_swap``, a cheap baseline).
Copies carry no label: the student learns the teacher's outputs on them.

Every copy is a pure function of (seed, example index, copy number), so the same seed
gives the same copies in any order of work.
"""

from __future__ import annotations

import re
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from kd_keras.data.examples import Example

WORD = re.compile(r"\w+|[^\w\s]")
REPLACE_PROBABILITY = 0.4  # TinyBERT's p_t: each word with neighbours is replaced so often
NEIGHBOURS = 15  # candidates per word (TinyBERT's K)
DELETE_PROBABILITY = 0.1


def words(text: str) -> List[str]:
    """A text's words and punctuation marks, in order."""
    return WORD.findall(text)


def is_whole_word(token: str) -> bool:
    """A vocabulary token that is a whole word: letters only, so neither a ``##`` piece,
    a special token (``[CLS]``, ``<s>``) nor punctuation."""
    return token.isalpha()


class EmbeddingNeighbours:
    """The whole-word tokens nearest a word in an input-embedding space (cosine).

    Args:
        vocab: tokens in id order.
        embeddings: float [vocab, hidden], e.g. the teacher's word embeddings.
        lower_case: the tokenizer lower-cases its input (words are looked up so).
        count: neighbours per word.
    """

    def __init__(self, vocab: Sequence[str], embeddings: np.ndarray, lower_case: bool,
                 count: int = NEIGHBOURS):
        self.vocab, self.lower_case, self.count = list(vocab), lower_case, count
        self.ids = {token: index for index, token in enumerate(self.vocab)}
        self.candidates = np.array([i for i, token in enumerate(self.vocab)
                                    if is_whole_word(token)], np.int64)
        unit = np.asarray(embeddings, np.float32)
        unit = unit / np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
        self.unit, self.candidate_unit = unit, unit[self.candidates]
        self._found: Dict[str, List[str]] = {}

    def __call__(self, word: str) -> List[str]:
        """Up to ``count`` neighbours of a word that is one whole-word token (nearest
        first, the word itself left out); [] for any other word."""
        key = word.lower() if self.lower_case else word
        if key not in self._found:
            found = []
            if is_whole_word(key) and key in self.ids:
                scores = self.candidate_unit @ self.unit[self.ids[key]]
                top = min(self.count + 1, len(scores))
                best = np.argpartition(-scores, top - 1)[:top]  # the nearest, unordered
                nearest = self.candidates[best[np.argsort(-scores[best])]]
                found = [self.vocab[i] for i in nearest if self.vocab[i] != key][: self.count]
            self._found[key] = found
        return self._found[key]


def replace_words(text: str, neighbours: Callable[[str], List[str]],
                  rng: np.random.Generator,
                  probability: float = REPLACE_PROBABILITY) -> str:
    """The text with each word that has neighbours replaced by a random one of them,
    with ``probability``; as many words as before."""
    out = []
    for word in words(text):
        found = neighbours(word)
        out.append(found[rng.integers(len(found))] if found and rng.random() < probability
                   else word)
    return " ".join(out)


def delete_and_swap(text: str, rng: np.random.Generator,
                    probability: float = DELETE_PROBABILITY) -> str:
    """The text with each word deleted with ``probability`` (one kept at least), then two
    words swapped."""
    found = words(text)
    if not found:
        return text
    kept = [word for word in found if rng.random() >= probability] or \
        [found[rng.integers(len(found))]]
    if len(kept) > 1:
        i, j = rng.choice(len(kept), size=2, replace=False)
        kept[i], kept[j] = kept[j], kept[i]
    return " ".join(kept)


def augment(examples: Sequence[Example], copies: int, method: str, seed: int,
            neighbours: Optional[Callable[[str], List[str]]] = None,
            progress: Optional[Callable[[int], None]] = None) -> List[Example]:
    """``copies`` augmented copies of every example, without labels.

    Args:
        examples: the training examples.
        copies: copies per example.
        method: "embedding" (needs ``neighbours``) or "delete_swap".
        seed: the run's seed.
        neighbours: word -> replacement candidates (EmbeddingNeighbours).
        progress: called with the number of examples done so far.

    Returns:
        The copies, example by example (both texts of a pair augmented).

    Raises:
        ValueError: an unknown method, or "embedding" without neighbours.
    """
    if method == "embedding" and neighbours is None:
        raise ValueError("augment(method='embedding') needs neighbours.")
    if method not in ("embedding", "delete_swap"):
        raise ValueError(f"Unknown augmentation method '{method}'.")

    def change(text: str, rng: np.random.Generator) -> str:
        if method == "embedding":
            return replace_words(text, neighbours, rng)
        return delete_and_swap(text, rng)

    augmented = []
    for index, example in enumerate(examples):
        for copy in range(copies):
            rng = np.random.default_rng([seed, index, copy])
            text_b = None if example.text_b is None else change(example.text_b, rng)
            augmented.append(Example(change(example.text_a, rng), text_b, None))
        if progress is not None:
            progress(index + 1)
    return augmented
