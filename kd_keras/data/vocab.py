"""WordPiece vocabularies kd_keras writes: for a model trained from scratch on a task's
texts (the tiny teacher) and the synthetic task's (data.synthetic)."""

from __future__ import annotations

import collections
from typing import Iterable, List, Sequence

from kd_keras import files

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def write_vocab(path: str, tokens: Sequence[str]) -> None:
    """Writes a WordPiece vocab.txt, one token per line in id order."""
    files.write_text(path, "\n".join(tokens) + "\n")


def build_vocab(texts: Iterable[str], max_words: int = 20_000) -> List[str]:
    """A WordPiece vocab for a model trained from scratch on these texts (the tiny
    teacher on data other than the synthetic task).

    BERT's lower-casing pre-tokenizer splits the texts into words; the most frequent
    ``max_words`` become tokens, and every character seen, alone and as a ``##`` suffix
    piece, so any word of these characters tokenizes without [UNK].

    Returns:
        Tokens in id order, the special tokens first.
    """
    from tokenizers import normalizers, pre_tokenizers

    normalizer = normalizers.BertNormalizer(lowercase=True)
    splitter = pre_tokenizers.BertPreTokenizer()
    counts = collections.Counter()
    for text in texts:
        counts.update(word for word, _ in
                      splitter.pre_tokenize_str(normalizer.normalize_str(text)))
    characters = sorted(set("".join(counts)))
    words = [w for w, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
             if len(w) > 1][:max_words]
    return list(SPECIAL_TOKENS) + characters + [f"##{c}" for c in characters] + words

