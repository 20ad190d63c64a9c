"""Augmented copies of training text.  Each copy keeps a text's words but for some:
replaced by what a masked language model predicts in their place (``mlm``: TinyBERT's
augmentation, for checkpoints with a masked-LM head), by near neighbours in the
teacher's input-embedding space (``embedding``: an offline stand-in for TinyBERT's GloVe
neighbours, for any checkpoint), or deleted and swapped at random (``delete_swap``, a
cheap baseline).
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


Candidates = Callable[[Sequence[str]], List[List[str]]]
"""A text's words -> for each word, the words it may be replaced by ([]: it stays)."""


def _nearest(scores: np.ndarray, ids: np.ndarray, words: Sequence[str], exclude: str,
             count: int) -> List[str]:
    """The words of the ``count`` highest-scoring ids, best first, ``exclude`` and repeats
    (a BPE word with and without its word-start mark) left out.  scores: float
    [len(ids)]."""
    top = min(2 * count + 1, len(scores))
    while True:
        best = np.argpartition(-scores, top - 1)[:top]  # the top ones, unordered
        found: List[str] = []
        for index in best[np.argsort(-scores[best])]:
            word = words[ids[index]]
            if word != exclude and word not in found:
                found.append(word)
        if len(found) >= count or top == len(scores):
            return found[:count]
        top = min(4 * top, len(scores))


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

    def neighbours(self, word: str) -> List[str]:
        """Up to ``count`` neighbours of a word that is one whole-word token (nearest
        first, the word itself left out); [] for any other word."""
        key = word.lower() if self.lower_case else word
        if key not in self._found:
            found = []
            if is_whole_word(key) and key in self.ids:
                scores = self.candidate_unit @ self.unit[self.ids[key]]
                found = _nearest(scores, self.candidates, self.vocab, key, self.count)
            self._found[key] = found
        return self._found[key]

    def __call__(self, words: Sequence[str]) -> List[List[str]]:
        """Candidates: each word's neighbours, whatever its context."""
        return [self.neighbours(word) for word in words]


class MaskedLMCandidates:
    """TinyBERT's replacements: for each word of a text that is one whole-word token of a
    masked LM's vocabulary, the ``count`` whole-word tokens the LM finds likeliest where
    that word is masked in the text (the word itself left out).

    Args:
        vocab: the LM tokenizer's tokens in id order.
        lower_case: that tokenizer lower-cases its input (words are looked up so).
        mask_token: the text the tokenizer turns into its mask id ("[MASK]", "<mask>").
        score: texts, each holding mask_token once -> float [len(texts), len(vocab)], the
            LM's logits at the mask; a row of NaN where the mask was cut off.
        count: candidates per word.
        word_start: the mark a byte-level BPE vocabulary puts before a word that follows a
            space ("\u0120"): a token with it stands for the word without it.
        batch: masked texts per call of score.
    """

    def __init__(self, vocab: Sequence[str], lower_case: bool, mask_token: str,
                 score: Callable[[List[str]], np.ndarray], count: int = NEIGHBOURS,
                 word_start: str = "\u0120", batch: int = 64):
        self.lower_case, self.mask_token, self.score = lower_case, mask_token, score
        self.count, self.batch = count, batch
        self.words = [token[len(word_start):] if token.startswith(word_start) else token
                      for token in vocab]
        self.candidates = np.array([i for i, word in enumerate(self.words)
                                    if is_whole_word(word)], np.int64)
        self.known = {self.words[i] for i in self.candidates}

    def __call__(self, words: Sequence[str]) -> List[List[str]]:
        """Candidates for a text's words: one LM pass per word that is a whole-word token
        (the others get [])."""
        keys = [word.lower() if self.lower_case else word for word in words]
        masked = [i for i, key in enumerate(keys) if is_whole_word(key) and key in self.known]
        found: List[List[str]] = [[] for _ in words]
        for start in range(0, len(masked), self.batch):
            chunk = masked[start:start + self.batch]
            texts = [" ".join(self.mask_token if j == i else word
                              for j, word in enumerate(words)) for i in chunk]
            for i, row in zip(chunk, np.asarray(self.score(texts), np.float32)):
                if np.all(np.isfinite(row)):
                    found[i] = _nearest(row[self.candidates], self.candidates, self.words,
                                        keys[i], self.count)
        return found


def replace_words(words_: Sequence[str], candidates: Sequence[List[str]],
                  rng: np.random.Generator,
                  probability: float = REPLACE_PROBABILITY) -> str:
    """The words joined by spaces, each that has candidates replaced by a random one of
    them with ``probability``; as many words as before."""
    out = []
    for word, found in zip(words_, candidates):
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


REPLACING = ("embedding", "mlm")  # the methods that replace words by candidates


def augment(examples: Sequence[Example], copies: int, method: str, seed: int,
            candidates: Optional[Candidates] = None,
            progress: Optional[Callable[[int], None]] = None) -> List[Example]:
    """``copies`` augmented copies of every example, without labels.

    Args:
        examples: the training examples.
        copies: copies per example.
        method: "embedding" or "mlm" (both need ``candidates``), or "delete_swap".
        seed: the run's seed.
        candidates: a text's words -> replacement candidates per word
            (EmbeddingNeighbours, MaskedLMCandidates); asked once per text, whatever
            the number of copies.
        progress: called with the number of examples done so far.

    Returns:
        The copies, example by example (both texts of a pair augmented).

    Raises:
        ValueError: an unknown method, or a replacing method without candidates.
    """
    if method not in REPLACING + ("delete_swap",):
        raise ValueError(f"Unknown augmentation method '{method}'.")
    if method in REPLACING and candidates is None:
        raise ValueError(f"augment(method='{method}') needs candidates.")

    def changer(text: str) -> Callable[[np.random.Generator], str]:
        if method == "delete_swap":
            return lambda rng: delete_and_swap(text, rng)
        found = words(text)
        per_word = candidates(found)
        return lambda rng: replace_words(found, per_word, rng)

    augmented = []
    for index, example in enumerate(examples):
        change_a = changer(example.text_a)
        change_b = None if example.text_b is None else changer(example.text_b)
        for copy in range(copies):
            rng = np.random.default_rng([seed, index, copy])
            text_b = None if change_b is None else change_b(rng)  # b first, as ever
            augmented.append(Example(change_a(rng), text_b, None))
        if progress is not None:
            progress(index + 1)
    return augmented
