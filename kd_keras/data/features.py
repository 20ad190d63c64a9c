"""Examples as token ids: tokenized once with the teacher's tokenizer, cached on disk,
stored ragged, padded per batch."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from kd_keras import files
from kd_keras.data.examples import Example

FEATURE_NAMES = ("input_ids", "attention_mask", "token_type_ids")
# Examples tokenized at once: the tokenizer's output is Python lists (about 30x the
# size of the int32 arrays kept), so a million transfer texts tokenized in one call
# peaked at 4.1 GB (BENCHMARKS.md, bench_memory.py).
TOKENIZE_CHUNK = 4096


@dataclasses.dataclass
class Features:
    """Tokenized examples, stored ragged: one flat array per feature plus row lengths.

    Attributes:
        flat: feature name -> int32 [total_tokens].
        lengths: int32 [num_examples], tokens per example.
        labels: int32 or float32 [num_examples] (0 where an example has none).
        label_weights: float32 [num_examples], 1 where an example has a label and 0
            where it has none; None when every example has one.
    """

    flat: Dict[str, np.ndarray]
    lengths: np.ndarray
    labels: np.ndarray
    label_weights: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.lengths)

    def row(self, index: int) -> Dict[str, np.ndarray]:
        """One example's features, each int32 [length]."""
        end = int(np.sum(self.lengths[: index + 1]))
        start = end - int(self.lengths[index])
        return {name: values[start:end] for name, values in self.flat.items()}

    def padded(self) -> Dict[str, np.ndarray]:
        """All examples padded to the longest, each int32 [num_examples, max_length]."""
        return pad_batch(self, np.arange(len(self)))[0]

    def offsets(self) -> np.ndarray:
        """Where each example starts in the flat arrays, int64 [num_examples + 1]."""
        return np.concatenate([[0], np.cumsum(self.lengths, dtype=np.int64)])


def tokenize(examples: Sequence[Example], tokenizer, max_seq_length: int,
             cache_dir: Optional[str] = None, cache_key: str = "",
             regression: bool = False) -> Features:
    """Tokenizes examples with the teacher's tokenizer, caching the result on disk.

    Args:
        examples: the examples.
        tokenizer: a Hugging Face (fast) BERT tokenizer.
        max_seq_length: longest row after truncation, [CLS] and [SEP]s included.
        cache_dir: folder for the cache file, or None to skip caching.
        cache_key: extra text that identifies the source (task, split, file).
        regression: store labels as float32 instead of int32.

    Returns:
        The tokenized features.
    """
    cache_path = None
    if cache_dir:
        digest = _digest(examples, tokenizer, max_seq_length, cache_key)
        cache_path = os.path.join(cache_dir, f"features_{digest}.npz")
        cached = files.load_cache(cache_path, _load_features)  # damaged: rebuilt
        if cached is not None and len(cached) == len(examples):
            return cached
    pair = examples[0].text_b is not None
    chunks = [_encode(examples[start:start + TOKENIZE_CHUNK], tokenizer, max_seq_length,
                      pair) for start in range(0, len(examples), TOKENIZE_CHUNK)]
    lengths = np.concatenate([chunk_lengths for chunk_lengths, _ in chunks])
    flat = {name: np.concatenate([chunk[name] for _, chunk in chunks])
            for name in FEATURE_NAMES}
    labels = np.array([0 if e.label is None else e.label for e in examples],
                      np.float32 if regression else np.int32)
    label_weights = None
    if any(e.label is None for e in examples):
        label_weights = np.array([e.label is not None for e in examples], np.float32)
    features = Features(flat, lengths, labels, label_weights)
    if cache_path:
        optional = {} if label_weights is None else {"label_weights": label_weights}
        files.save_npz(cache_path, lengths=lengths, labels=labels, **flat, **optional)
    return features


def _digest(examples: Sequence[Example], tokenizer, max_seq_length: int,
            cache_key: str) -> str:
    """What identifies a tokenization: the source, the length, the tokenizer and every
    example, hashed one example at a time (no copy of all the texts at once)."""
    digest = hashlib.sha256(json.dumps(
        [cache_key, max_seq_length, len(tokenizer), tokenizer.__class__.__name__]).encode())
    for example in examples:
        digest.update(json.dumps(dataclasses.astuple(example)).encode())
    return digest.hexdigest()[:20]


def _encode(examples: Sequence[Example], tokenizer, max_seq_length: int, pair: bool
            ) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
    """One chunk tokenized: (row lengths int32 [rows], FEATURE_NAMES -> int32 [tokens])."""
    texts_a = [e.text_a for e in examples]
    texts_b = [e.text_b or "" for e in examples] if pair else None
    encoded = tokenizer(texts_a, texts_b, truncation=True, max_length=max_seq_length,
                        return_attention_mask=True, return_token_type_ids=True)
    lengths = np.array([len(ids) for ids in encoded["input_ids"]], np.int32)
    return lengths, {name: np.fromiter(itertools.chain.from_iterable(encoded[name]),
                                       np.int32, int(lengths.sum()))
                     for name in FEATURE_NAMES}


def _load_features(path: str) -> Features:
    """Features saved by tokenize (zip's CRC checks each array as it is read)."""
    with np.load(path) as stored:
        features = Features({n: stored[n] for n in FEATURE_NAMES}, stored["lengths"],
                            stored["labels"],
                            stored["label_weights"] if "label_weights" in stored else None)
    if int(features.lengths.sum()) != len(features.flat["input_ids"]):
        raise ValueError("the row lengths do not add up to the tokens")
    return features


def concatenate(parts: Sequence[Features]) -> Features:
    """The examples of several Features, in order (labelled and unlabelled alike)."""
    if len(parts) == 1:
        return parts[0]
    weights = None
    if any(part.label_weights is not None for part in parts):
        weights = np.concatenate([np.ones(len(part), np.float32)
                                  if part.label_weights is None else part.label_weights
                                  for part in parts])
    return Features({name: np.concatenate([part.flat[name] for part in parts])
                     for name in FEATURE_NAMES},
                    np.concatenate([part.lengths for part in parts]),
                    np.concatenate([part.labels for part in parts]), weights)


def pad_batch(features: Features, rows: np.ndarray, multiple: int = 1,
              offsets: Optional[np.ndarray] = None) -> Tuple[Dict, np.ndarray]:
    """Examples ``rows`` as one batch of numpy arrays.

    Args:
        features: tokenized examples.
        rows: example indices, int [batch].
        multiple: pad the length up to a multiple of this (1: to the longest row).
        offsets: features.offsets(), when the caller pads many batches.

    Returns:
        (features dict of int32 [batch, seq], labels [batch]).
    """
    offsets = features.offsets() if offsets is None else offsets
    longest = int(features.lengths[rows].max()) if len(rows) else 0
    width = -(-longest // multiple) * multiple
    x = {}
    for name, values in features.flat.items():
        matrix = np.zeros((len(rows), width), np.int32)
        for k, row in enumerate(rows):
            matrix[k, : features.lengths[row]] = values[offsets[row]: offsets[row + 1]]
        x[name] = matrix
    return x, features.labels[rows]

