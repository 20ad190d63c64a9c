"""Examples as token ids: tokenized once with the teacher's tokenizer, cached on disk
(read back memory-mapped), stored ragged, padded per batch."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import os
import tempfile
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

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
        flat: feature name -> int32 [total_tokens], in memory or memory-mapped from a
            cache file.
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


def tokenize(examples: Iterable[Example], tokenizer, max_seq_length: int,
             cache_dir: Optional[str] = None, cache_key: str = "",
             regression: bool = False, source_digest: Optional[str] = None) -> Features:
    """Tokenizes examples with the teacher's tokenizer, caching the result on disk.

    The examples are read once, TOKENIZE_CHUNK at a time.  With a cache folder the token
    ids go straight to files there and come back memory-mapped, so text larger than
    memory (a transfer file) is never held whole: only the per-example arrays (lengths,
    labels: a few bytes each) are.

    Args:
        examples: the examples: a sequence, or any iterable when ``source_digest`` names
            them (a file read row by row).
        tokenizer: a Hugging Face (fast) BERT tokenizer.
        max_seq_length: longest row after truncation, [CLS] and [SEP]s included.
        cache_dir: folder for the cache, or None to tokenize in memory.
        cache_key: extra text that identifies the source (task, split, file).
        regression: store labels as float32 instead of int32.
        source_digest: what identifies the examples without reading them (a digest of
            their file and of how it is read); None: a digest of the examples.

    Returns:
        The tokenized features.

    Raises:
        ValueError: there are no examples.
    """
    cache_path = None
    if cache_dir:
        digest = _digest(examples, tokenizer, max_seq_length, cache_key, source_digest)
        cache_path = os.path.join(cache_dir, f"features_{digest}")
        cached = files.load_cache(cache_path, _load_features)  # damaged: rebuilt
        if cached is not None:
            return cached
    chunks = (_encode(chunk, tokenizer, max_seq_length, regression)
              for chunk in _chunked(examples))
    if cache_path is not None:
        return _write_features(cache_path, chunks)
    parts = list(chunks)
    if not parts:
        raise ValueError("there are no examples to tokenize")
    return concatenate(parts)


def _chunked(examples: Iterable[Example]) -> Iterator[List[Example]]:
    iterator = iter(examples)
    while chunk := list(itertools.islice(iterator, TOKENIZE_CHUNK)):
        yield chunk


def _digest(examples: Iterable[Example], tokenizer, max_seq_length: int, cache_key: str,
            source_digest: Optional[str]) -> str:
    """What identifies a tokenization: the source, the length, the tokenizer and every
    example (hashed one at a time, no copy of all the texts at once), or the source's
    own digest."""
    digest = hashlib.sha256(json.dumps(
        [cache_key, max_seq_length, source_digest]).encode())
    # The whole tokenizer (normaliser, vocabulary, special tokens): two tokenizers of one
    # size that split text differently never share a cache.
    digest.update(tokenizer.backend_tokenizer.to_str().encode())
    if source_digest is None:
        for example in examples:
            digest.update(json.dumps(dataclasses.astuple(example)).encode())
    return digest.hexdigest()[:20]


def _encode(examples: Sequence[Example], tokenizer, max_seq_length: int,
            regression: bool) -> Features:
    """One chunk tokenized."""
    texts_a = [e.text_a for e in examples]
    pair = examples[0].text_b is not None
    texts_b = [e.text_b or "" for e in examples] if pair else None
    encoded = tokenizer(texts_a, texts_b, max_length=max_seq_length)
    lengths = np.array([len(ids) for ids in encoded["input_ids"]], np.int32)
    flat = {name: np.fromiter(itertools.chain.from_iterable(encoded[name]), np.int32,
                              int(lengths.sum()))
            for name in FEATURE_NAMES}
    labels = np.array([0 if e.label is None else e.label for e in examples],
                      np.float32 if regression else np.int32)
    label_weights = None
    if any(e.label is None for e in examples):
        label_weights = np.array([e.label is not None for e in examples], np.float32)
    return Features(flat, lengths, labels, label_weights)


INDEX = "index.npz"  # a cached tokenization's per-example arrays and token checksums


def _write_features(folder: str, chunks: Iterable[Features]) -> Features:
    """Writes tokenized chunks into a cache folder as they come (one raw int32 file per
    feature, plus INDEX) and returns them memory-mapped from there."""
    index_parts = []
    with files.atomic_folder(folder) as staging, contextlib.ExitStack() as stack:
        outputs = {name: stack.enter_context(open(os.path.join(staging, f"{name}.bin"), "wb"))
                   for name in FEATURE_NAMES}
        checksums = {name: hashlib.sha256() for name in FEATURE_NAMES}
        for chunk in chunks:
            for name in FEATURE_NAMES:
                data = chunk.flat[name].tobytes()
                outputs[name].write(data)
                checksums[name].update(data)
            index_parts.append(Features({}, chunk.lengths, chunk.labels, chunk.label_weights))
        if not index_parts:
            raise ValueError("there are no examples to tokenize")
        stack.close()
        index = concatenate(index_parts)
        optional = {} if index.label_weights is None else {"label_weights": index.label_weights}
        np.savez(os.path.join(staging, INDEX), lengths=index.lengths, labels=index.labels,
                 **optional, **{f"{name}_sha256": np.array(checksums[name].hexdigest())
                                for name in FEATURE_NAMES})
    # Just written and checksummed: mapped without reading the files back.
    return _mapped(folder, index)


def _load_features(folder: str) -> Features:
    """Features written by _write_features, the token ids memory-mapped.

    Raises:
        ValueError: a file is missing, of the wrong size or fails its checksum.
    """
    with np.load(os.path.join(folder, INDEX)) as index:
        lengths, labels = index["lengths"], index["labels"]
        label_weights = index["label_weights"] if "label_weights" in index else None
        checksums = {name: str(index[f"{name}_sha256"]) for name in FEATURE_NAMES}
    tokens = int(lengths.sum(dtype=np.int64))
    for name in FEATURE_NAMES:
        path = os.path.join(folder, f"{name}.bin")
        if os.path.getsize(path) != 4 * tokens:
            raise ValueError(f"{name}.bin holds {os.path.getsize(path)} bytes for {tokens} "
                             "tokens")
        if files.file_digest(path) != checksums[name]:
            raise ValueError(f"{name}.bin does not match its checksum")
    return _mapped(folder, Features({}, lengths, labels, label_weights))


def _mapped(folder: str, index: Features) -> Features:
    """``index`` (per-example arrays only) with the token files of ``folder`` mapped."""
    tokens = int(index.lengths.sum(dtype=np.int64))
    flat = {name: np.memmap(os.path.join(folder, f"{name}.bin"), np.int32, "r",
                            shape=(tokens,)) for name in FEATURE_NAMES}
    return Features(flat, index.lengths, index.labels, index.label_weights)


def concatenate(parts: Sequence[Features], folder: Optional[str] = None) -> Features:
    """The examples of several Features, in order (labelled and unlabelled alike).

    Args:
        parts: the features to join.
        folder: join the token arrays in unnamed files there, memory-mapped (gone with
            the process), instead of in memory: for text larger than memory.
    """
    if len(parts) == 1:
        return parts[0]
    weights = None
    if any(part.label_weights is not None for part in parts):
        weights = np.concatenate([np.ones(len(part), np.float32)
                                  if part.label_weights is None else part.label_weights
                                  for part in parts])
    return Features({name: _joined([part.flat[name] for part in parts], folder)
                     for name in parts[0].flat},
                    np.concatenate([part.lengths for part in parts]),
                    np.concatenate([part.labels for part in parts]), weights)


def _joined(arrays: Sequence[np.ndarray], folder: Optional[str]) -> np.ndarray:
    """Arrays of one dtype end to end, in memory or in an unnamed file in ``folder``."""
    total = sum(len(array) for array in arrays)
    if folder is None or total == 0:
        return np.concatenate(arrays)
    dtype = arrays[0].dtype
    with tempfile.TemporaryFile(dir=folder) as handle:  # the mapping keeps it alive
        try:  # reserve the space: a full disk under a mapping would kill the process
            os.posix_fallocate(handle.fileno(), 0, total * dtype.itemsize)
        except OSError as error:
            if error.errno in files.NO_SPACE:
                raise files.disk_full(os.path.join(folder, "(joined token ids)")) from error
            raise
        joined = np.memmap(handle, dtype, "r+", shape=(total,))
    start = 0
    for array in arrays:
        joined[start:start + len(array)] = array
        start += len(array)
    return joined


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

