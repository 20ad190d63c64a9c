"""Examples from GLUE TSV files, TFDS or the synthetic task, as tf.data pipelines.

The flow is: raw examples (text_a, text_b, label) -> token ids with the teacher's
WordPiece vocab (cached on disk) -> a tf.data pipeline that shuffles with a seed and pads
each batch only to its own longest row, grouping rows of similar length (bucketing) so
short inputs cost less than max_seq_length.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from kd_keras.tasks import TaskSpec

Label = Union[int, float]
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
FEATURE_NAMES = ("input_ids", "attention_mask", "token_type_ids")
# Hosts TFDS downloads GLUE from; checked before a download so offline fails in seconds.
_TFDS_GLUE_HOSTS = ("dl.fbaipublicfiles.com", "firebasestorage.googleapis.com")


class DataError(ValueError):
    """Input data that cannot be used; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class Example:
    """One labelled example.

    Attributes:
        text_a: first (or only) sentence.
        text_b: second sentence, or None for single-sentence tasks.
        label: class index, or a float score for regression.
    """

    text_a: str
    text_b: Optional[str]
    label: Label


# --------------------------------------------------------------------------- GLUE TSV


def read_glue_tsv(path: str, spec: TaskSpec,
                  skip_bad_rows: bool = False) -> Tuple[List[Example], int]:
    """Reads one GLUE-format TSV file.

    Handles a leading UTF-8 BOM (MRPC), files without a header (CoLA), a variable number
    of annotator columns (MNLI, STS-B) and CRLF line ends.

    Args:
        path: the .tsv file.
        spec: the task whose layout the file follows.
        skip_bad_rows: skip rows with a wrong column count or an unknown label instead of
            raising.

    Returns:
        (examples, number of rows skipped).

    Raises:
        DataError: the file is missing, or a row is malformed and skip_bad_rows is off;
            the message names the file and line.
    """
    if not os.path.isfile(path):
        raise DataError(
            f"{path}: file not found. Put the GLUE files in <data_dir>/{spec.dir_name}/"
            f"{{{spec.train_file},{spec.dev_file}}} or point --data_dir at that folder's parent.")
    label_index = {label: i for i, label in enumerate(spec.labels or ())}
    examples, skipped = [], 0
    with open(path, encoding="utf-8-sig", newline="") as handle:
        for line_number, line in enumerate(handle, start=1):
            if line_number == 1 and spec.has_header:
                continue
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            try:
                examples.append(_parse_row(line.split("\t"), spec, label_index))
            except DataError as error:
                if not skip_bad_rows:
                    raise DataError(f"{path}:{line_number}: {error} Fix the row, or pass "
                                    "--skip_bad_rows to skip malformed rows.") from None
                skipped += 1
    return examples, skipped


def _parse_row(fields: List[str], spec: TaskSpec, label_index: Dict[str, int]) -> Example:
    if spec.num_columns is not None and len(fields) != spec.num_columns:
        raise DataError(
            f"expected {spec.num_columns} tab-separated columns, found {len(fields)}.")
    if len(fields) < spec.min_columns:
        raise DataError(
            f"expected at least {spec.min_columns} tab-separated columns, found {len(fields)}.")
    raw_label = fields[spec.label_column].strip()
    if spec.is_regression:
        try:
            label: Label = float(raw_label)
        except ValueError:
            raise DataError(f"label '{raw_label}' is not a number.") from None
    else:
        if raw_label not in label_index:
            raise DataError(f"unknown label '{raw_label}' (expected one of "
                            f"{', '.join(spec.labels)}).")
        label = label_index[raw_label]
    text_b = fields[spec.text_b_column] if spec.is_pair else None
    return Example(fields[spec.text_a_column], text_b, label)


def glue_file(data_dir: str, spec: TaskSpec, split: str) -> str:
    """Path of a split's TSV in the standard GLUE layout <data_dir>/<TASK>/<file>."""
    name = spec.train_file if split == "train" else spec.dev_file
    return os.path.join(data_dir, spec.dir_name, name)


# --------------------------------------------------------------------------- TFDS


def host_reachable(hosts: Sequence[str], timeout: float = 5.0) -> bool:
    """Whether a TCP connection to port 443 of any host opens within the timeout."""
    for host in hosts:
        try:
            with socket.create_connection((host, 443), timeout=timeout):
                return True
        except OSError:
            continue
    return False


def load_tfds(spec: TaskSpec, split: str, tfds_data_dir: Optional[str] = None,
              hosts: Sequence[str] = _TFDS_GLUE_HOSTS) -> List[Example]:
    """Loads a split from TFDS ``glue/<task>``, downloading it only if reachable.

    tfds.load retries an unreachable download for minutes; this checks first whether the
    data is already prepared, then whether the download host answers, and fails in
    seconds otherwise.

    Raises:
        DataError: TFDS has no copy of the task, or it is not prepared and the download
            host is unreachable.
    """
    if spec.tfds_name is None:
        raise DataError(f"Task '{spec.name}' has no TFDS version; pass --data_dir.")
    import tensorflow_datasets as tfds  # slow import, only when TFDS is used

    builder = tfds.builder(spec.tfds_name, data_dir=tfds_data_dir)
    if not builder.is_prepared():
        if not host_reachable(hosts):
            raise DataError(
                f"No data for task '{spec.name}': TFDS '{spec.tfds_name}' is not prepared in "
                f"{builder.data_dir} and its download hosts are unreachable. Pass "
                f"--data_dir=<GLUE dir> (with {spec.dir_name}/{spec.train_file}) or set "
                "$GLUE_DIR, or prepare TFDS on a machine with internet.")
        builder.download_and_prepare()
    tfds_split = "train" if split == "train" else spec.tfds_dev_split
    examples = []
    for row in tfds.as_numpy(builder.as_dataset(split=tfds_split)):
        texts = [row[key].decode("utf-8") for key in spec.tfds_text_keys]
        label = float(row["label"]) if spec.is_regression else int(row["label"])
        examples.append(Example(texts[0], texts[1] if len(texts) > 1 else None, label))
    return examples


# --------------------------------------------------------------------------- synthetic

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


def write_vocab(path: str, tokens: Sequence[str]) -> None:
    """Writes a WordPiece vocab.txt, one token per line in id order."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(tokens) + "\n")


# --------------------------------------------------------------------------- dispatch


def load_examples(spec: TaskSpec, split: str, data_dir: Optional[str] = None,
                  use_tfds: bool = False, tfds_data_dir: Optional[str] = None,
                  skip_bad_rows: bool = False, max_examples: Optional[int] = None,
                  synthetic_size: int = 2000, seed: int = 0) -> Tuple[List[Example], int]:
    """Loads a split of a task from wherever it lives.

    The synthetic task is generated; otherwise a GLUE directory wins over TFDS.

    Args:
        spec: the task.
        split: ``"train"`` or ``"dev"``.
        data_dir: GLUE data directory (parent of <TASK>/), or None.
        use_tfds: fall back to TFDS when no data_dir is given.
        tfds_data_dir: where TFDS keeps prepared data (TFDS default when None).
        skip_bad_rows: skip malformed TSV rows instead of failing.
        max_examples: keep only the first this many (None keeps all).
        synthetic_size: training examples of the synthetic task (dev is a quarter).
        seed: seed of the synthetic task.

    Returns:
        (examples, number of skipped rows).

    Raises:
        DataError: nothing could be loaded; the message says how to provide data.
    """
    if split not in ("train", "dev"):
        raise ValueError(f"split must be 'train' or 'dev', got '{split}'.")
    skipped = 0
    if spec.name == "synthetic":
        size = synthetic_size if split == "train" else max(8, synthetic_size // 4)
        examples = make_synthetic(size, seed=seed if split == "train" else seed + 10_007)
    elif data_dir:
        examples, skipped = read_glue_tsv(glue_file(data_dir, spec, split), spec, skip_bad_rows)
    elif use_tfds:
        examples = load_tfds(spec, split, tfds_data_dir)
    else:
        raise DataError(
            f"No data for task '{spec.name}': pass --data_dir=<GLUE dir> (containing "
            f"{spec.dir_name}/{spec.train_file}), set $GLUE_DIR, or pass --use_tfds.")
    if max_examples:
        examples = examples[:max_examples]
    if not examples:
        raise DataError(f"The {split} split of task '{spec.name}' has no examples; "
                        "check the file (and --max_examples).")
    return examples, skipped


# --------------------------------------------------------------------------- features


@dataclasses.dataclass
class Features:
    """Tokenized examples, stored ragged: one flat array per feature plus row lengths.

    Attributes:
        flat: feature name -> int32 [total_tokens].
        lengths: int32 [num_examples], tokens per example.
        labels: int32 or float32 [num_examples].
    """

    flat: Dict[str, np.ndarray]
    lengths: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.lengths)

    def row(self, index: int) -> Dict[str, np.ndarray]:
        """One example's features, each int32 [length]."""
        end = int(np.sum(self.lengths[: index + 1]))
        start = end - int(self.lengths[index])
        return {name: values[start:end] for name, values in self.flat.items()}

    def padded(self) -> Dict[str, np.ndarray]:
        """All examples padded to the longest, each int32 [num_examples, max_length]."""
        width = int(self.lengths.max())
        offsets = np.concatenate([[0], np.cumsum(self.lengths)])
        out = {}
        for name, values in self.flat.items():
            matrix = np.zeros((len(self), width), np.int32)
            for i in range(len(self)):
                matrix[i, : self.lengths[i]] = values[offsets[i]: offsets[i + 1]]
            out[name] = matrix
        return out


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
        digest = hashlib.sha256(json.dumps(
            [cache_key, max_seq_length, len(tokenizer), tokenizer.__class__.__name__,
             [dataclasses.astuple(e) for e in examples]]).encode()).hexdigest()[:20]
        cache_path = os.path.join(cache_dir, f"features_{digest}.npz")
        if os.path.exists(cache_path):
            with np.load(cache_path) as stored:
                return Features({n: stored[n] for n in FEATURE_NAMES},
                                stored["lengths"], stored["labels"])
    texts_a = [e.text_a for e in examples]
    texts_b = [e.text_b or "" for e in examples] if examples[0].text_b is not None else None
    encoded = tokenizer(texts_a, texts_b, truncation=True, max_length=max_seq_length,
                        return_attention_mask=True, return_token_type_ids=True)
    lengths = np.array([len(ids) for ids in encoded["input_ids"]], np.int32)
    flat = {name: np.concatenate([np.asarray(r, np.int32) for r in encoded[name]])
            for name in FEATURE_NAMES}
    labels = np.array([e.label for e in examples],
                      np.float32 if regression else np.int32)
    features = Features(flat, lengths, labels)
    if cache_path:
        os.makedirs(cache_dir, exist_ok=True)
        # Write then rename, so an interrupted run never leaves a truncated cache.
        fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".npz")
        os.close(fd)
        np.savez(tmp, lengths=lengths, labels=labels, **flat)
        os.replace(tmp, cache_path)
    return features


def bucket_boundaries(max_seq_length: int, width: int = 16) -> List[int]:
    """Bucket upper bounds (exclusive) every ``width`` tokens below max_seq_length."""
    return list(range(width + 1, max_seq_length + 1, width))


def batches_per_epoch(lengths: np.ndarray, batch_size: int) -> int:
    """How many batches one training epoch has (length buckets each end with a short one).

    Args:
        lengths: tokens per example, int [num_examples].
        batch_size: global batch size.
    """
    boundaries = _training_boundaries(lengths)
    bucket = np.searchsorted(np.asarray(boundaries), lengths, side="right")
    counts = np.bincount(bucket, minlength=len(boundaries) + 1)
    return int(sum(-(-int(c) // batch_size) for c in counts))


def _training_boundaries(lengths: np.ndarray) -> List[int]:
    longest = int(lengths.max())
    return [b for b in bucket_boundaries(max(longest, 2)) if b <= longest]


def make_dataset(features: Features, batch_size: int, training: bool, seed: int = 0,
                 extra: Optional[Dict[str, np.ndarray]] = None, epochs: int = 1,
                 start_epoch: int = 0, start_batch: int = 0):
    """Builds the tf.data pipeline over tokenized features.

    Training: epochs ``start_epoch .. epochs - 1`` back to back, the first one entered at
    batch ``start_batch``.  Each epoch's order is a pure function of (seed, epoch) and
    examples are bucketed by length and padded per batch, so a run resumed at any
    (epoch, batch) sees exactly the batches an uninterrupted run would.  Every epoch has
    ``batches_per_epoch(features.lengths, batch_size)`` batches.  Evaluation: in file
    order, padded per batch.

    Args:
        features: tokenized examples.
        batch_size: global batch size.
        training: shuffle and bucket when True.
        seed: shuffle seed.
        extra: more per-example arrays to carry in the features dict (float32
            [num_examples, ...]), such as precomputed teacher logits.
        epochs: training epochs in the whole run.
        start_epoch: first epoch to produce (0-based), when resuming.
        start_batch: batches of ``start_epoch`` already trained, when resuming.

    Returns:
        A tf.data.Dataset of (features dict, labels): input_ids, attention_mask and
        token_type_ids int32 [batch, seq]; extra arrays [batch, ...]; labels [batch].
    """
    import tensorflow as tf

    ragged = {name: tf.RaggedTensor.from_row_lengths(values, features.lengths)
              for name, values in features.flat.items()}
    extra = {name: tf.constant(values) for name, values in (extra or {}).items()}
    labels = tf.constant(features.labels)

    def example(index):
        row = {name: column[index] for name, column in ragged.items()}
        row.update({name: column[index] for name, column in extra.items()})
        return row, labels[index]

    if not training:
        indices = tf.data.Dataset.range(len(features))
        return indices.map(example).padded_batch(batch_size).prefetch(tf.data.AUTOTUNE)

    boundaries = _training_boundaries(features.lengths)

    def one_epoch(epoch):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(len(features), dtype=tf.int64), seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
        batches = tf.data.Dataset.from_tensor_slices(order).map(example).bucket_by_sequence_length(
            lambda x, y: tf.shape(x["input_ids"])[0],
            bucket_boundaries=boundaries,
            bucket_batch_sizes=[batch_size] * (len(boundaries) + 1))
        return batches.skip(tf.where(epoch == start_epoch, tf.cast(start_batch, tf.int64), 0))

    dataset = tf.data.Dataset.range(start_epoch, epochs).flat_map(one_epoch)
    return dataset.prefetch(tf.data.AUTOTUNE)
