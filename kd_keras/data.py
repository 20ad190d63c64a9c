"""Examples from GLUE TSV files, TFDS, the user's own CSV / TSV / JSONL files or the
synthetic task, as tf.data pipelines.

The flow is: raw examples (text_a, text_b, label) -> token ids with the teacher's
WordPiece vocab (cached on disk) -> a tf.data pipeline that shuffles with a seed and pads
each batch only to its own longest row, grouping rows of similar length (bucketing) so
short inputs cost less than max_seq_length.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import hashlib
import io
import json
import os
import socket
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import keras
import numpy as np

from kd_keras import files
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
    lines = io.StringIO(read_text(path), newline="")
    for line_number, line in enumerate(lines, start=1):
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


def read_text(path: str) -> str:
    """A UTF-8 text file's contents (a leading BOM dropped).

    Raises:
        DataError: the file is not UTF-8; the message names the file and line.
    """
    with open(path, "rb") as handle:
        raw = handle.read()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[error.start]:02x}); save "
                        "the file as UTF-8 and run again.") from None


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
    names = {"train": spec.train_file, "dev": spec.dev_file}
    names.update({name: file for name, file, _ in spec.extra_dev})
    return os.path.join(data_dir, spec.dir_name, names[split])


def splits(spec: TaskSpec) -> List[str]:
    """The task's splits: train, dev, then any extra evaluation splits (MNLI's
    dev_mismatched)."""
    return ["train", "dev"] + [name for name, _, _ in spec.extra_dev]


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
    try:
        import tensorflow_datasets as tfds  # slow import, only when TFDS is used
    except ImportError:  # Keras on JAX without TensorFlow
        raise DataError(f"No data for task '{spec.name}': TFDS needs TensorFlow, which is "
                        "not installed. Pass --data_dir=<GLUE dir> (with "
                        f"{spec.dir_name}/{spec.train_file}) or set $GLUE_DIR.") from None

    builder = tfds.builder(spec.tfds_name, data_dir=tfds_data_dir)
    if not builder.is_prepared():
        if not host_reachable(hosts):
            raise DataError(
                f"No data for task '{spec.name}': TFDS '{spec.tfds_name}' is not prepared in "
                f"{builder.data_dir} and its download hosts are unreachable. Pass "
                f"--data_dir=<GLUE dir> (with {spec.dir_name}/{spec.train_file}) or set "
                "$GLUE_DIR, or prepare TFDS on a machine with internet.")
        builder.download_and_prepare()
    tfds_split = {"train": "train", "dev": spec.tfds_dev_split}
    tfds_split.update({name: tfds_name for name, _, tfds_name in spec.extra_dev})
    to_ours = None if spec.is_regression else tfds_label_map(
        spec, builder.info.features["label"].names)
    examples = []
    for row in tfds.as_numpy(builder.as_dataset(split=tfds_split[split])):
        texts = [row[key].decode("utf-8") for key in spec.tfds_text_keys]
        label = float(row["label"]) if to_ours is None else to_ours[int(row["label"])]
        examples.append(Example(texts[0], texts[1] if len(texts) > 1 else None, label))
    return examples


def tfds_label_map(spec: TaskSpec, tfds_names: Sequence[str]) -> Dict[int, int]:
    """TFDS class index -> our class index, matched by class name.

    TFDS orders some classes differently from the GLUE files (MNLI: entailment, neutral,
    contradiction), so indices are never taken as they are.

    Raises:
        DataError: TFDS's class names are not the ones the task expects.
    """
    ours = spec.tfds_label_names
    if sorted(tfds_names) != sorted(ours):
        raise DataError(f"TFDS '{spec.tfds_name}' has the classes {list(tfds_names)}, not the "
                        f"expected {list(ours)}; pass --data_dir with the GLUE files instead.")
    return {list(tfds_names).index(name): index for index, name in enumerate(ours)}


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
    files.write_text(path, "\n".join(tokens) + "\n")


# --------------------------------------------------------------------------- own data

OWN_FORMATS = {".csv": ",", ".tsv": "\t", ".jsonl": None}


@dataclasses.dataclass(frozen=True)
class OwnRow:
    """One row of a user's file: its line number, texts and label text ("" if absent)."""

    line: int
    text_a: str
    text_b: Optional[str]
    label: str


def _records(path: str, needed: Sequence[str]):
    """(line number, field -> value, or a DataError for a malformed row) per data row.

    CSV and TSV files need a header row (TSV: no quoting); JSONL has one JSON object a
    line.  Blank lines are passed over.

    Raises:
        DataError: the file is missing, of an unknown format, or its header lacks a
            needed column (the message lists the columns there are).
    """
    extension = os.path.splitext(path)[1].lower()
    if extension not in OWN_FORMATS:
        raise DataError(f"{path}: unknown file type '{extension}'; use .csv or .tsv (with a "
                        "header row) or .jsonl (one JSON object a line).")
    if not os.path.isfile(path):
        raise DataError(f"{path}: file not found.")
    text = read_text(path)
    if extension == ".jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                yield number, DataError(f"not a JSON object ({error.msg}); JSONL needs one "
                                        "object a line.")
                continue
            if not isinstance(record, dict):
                yield number, DataError("not a JSON object; JSONL needs one object a line.")
                continue
            missing = [name for name in needed if name not in record]
            yield number, (DataError(f"no field {', '.join(map(repr, missing))} (the row has "
                                     f"{', '.join(map(repr, record)) or 'none'}).")
                           if missing else record)
        return
    delimiter = OWN_FORMATS[extension]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter,
                        quoting=csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL)
    header = [name.strip() for name in next(reader, [])]
    missing = [name for name in needed if name not in header]
    if missing:
        hint = ""
        if len(header) == 1:
            for other, name in (("\t", "tab"), (",", "comma"), (";", "semicolon")):
                if other != delimiter and other in header[0]:
                    hint = (f" The header looks {name}-separated, but a {extension} file is "
                            f"read as {'tab' if delimiter == chr(9) else 'comma'}-separated: "
                            "fix the delimiter or the file name.")
        raise DataError(f"{path}: no column {', '.join(map(repr, missing))}; the header row "
                        f"has {', '.join(map(repr, header)) or 'no columns'}.{hint}")
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            yield reader.line_num, DataError(f"expected {len(header)} columns as in the "
                                             f"header, found {len(row)}.")
            continue
        yield reader.line_num, dict(zip(header, row))


def read_own_rows(path: str, text_fields: Sequence[str], label_field: Optional[str],
                  skip_bad_rows: bool = False) -> Tuple[List[OwnRow], int]:
    """Reads a user's CSV / TSV / JSONL file.

    Args:
        path: the file; its extension gives the format.
        text_fields: one or two field names holding the texts.
        label_field: the label's field, or None (prediction input: no label needed).
        skip_bad_rows: skip malformed rows (missing fields, empty texts or labels) and
            count them instead of failing.

    Returns:
        (rows, number of rows skipped).

    Raises:
        DataError: as _records, or a row is malformed and skip_bad_rows is off; the
            message names the file and line.
    """
    needed = list(text_fields) + ([label_field] if label_field else [])
    rows, skipped = [], 0
    for line, record in _records(path, needed):
        if not isinstance(record, DataError):
            texts = ["" if record[f] is None else str(record[f]) for f in text_fields]
            label = "" if not label_field or record[label_field] is None \
                else str(record[label_field]).strip()
            empty = [f for f, t in zip(text_fields, texts) if not t.strip()]
            if empty:
                record = DataError(f"empty text in '{empty[0]}'.")
            elif label_field and not label:
                record = DataError(f"empty label in '{label_field}'.")
            else:
                rows.append(OwnRow(line, texts[0], texts[1] if len(texts) > 1 else None, label))
                continue
        if not skip_bad_rows:
            raise DataError(f"{path}:{line}: {record} Fix the row, or pass --skip_bad_rows to "
                            "skip malformed rows.")
        skipped += 1
    return rows, skipped


def own_labels(rows: Sequence[OwnRow]) -> List[str]:
    """The distinct labels of the training rows, in a stable order: numerically when every
    label is a number (so "2" comes before "10"), else alphabetically."""
    found = set(row.label for row in rows)

    def number(text):
        try:
            return float(text)
        except ValueError:
            return None

    if all(number(label) is not None for label in found):
        return sorted(found, key=lambda label: (number(label), label))
    return sorted(found)


def read_own_examples(spec: TaskSpec, split: str,
                      skip_bad_rows: bool = False) -> Tuple[List[Example], int]:
    """A split of the user's own data as examples, labels mapped to the spec's classes.

    Raises:
        DataError: as read_own_rows; a label that is not a number (regression) or that
            the training file never has (classification), with file and line.
    """
    path = spec.files[0 if split == "train" else 1]
    rows, skipped = read_own_rows(path, spec.text_fields, spec.label_field, skip_bad_rows)
    label_index = {label: i for i, label in enumerate(spec.labels or ())}
    examples = []
    for row in rows:
        if spec.is_regression:
            try:
                label: Label = float(row.label)
            except ValueError:
                problem = f"label '{row.label}' is not a number (--task_type=regression)."
            else:
                examples.append(Example(row.text_a, row.text_b, label))
                continue
        elif row.label in label_index:
            examples.append(Example(row.text_a, row.text_b, label_index[row.label]))
            continue
        else:
            problem = (f"label '{row.label}' never appears in the training file "
                       f"{spec.files[0]} (known labels: {', '.join(spec.labels)}).")
        if not skip_bad_rows:
            raise DataError(f"{path}:{row.line}: {problem}")
        skipped += 1
    return examples, skipped


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


# --------------------------------------------------------------------------- dispatch


def load_examples(spec: TaskSpec, split: str, data_dir: Optional[str] = None,
                  use_tfds: bool = False, tfds_data_dir: Optional[str] = None,
                  skip_bad_rows: bool = False, max_examples: Optional[int] = None,
                  synthetic_size: int = 2000, seed: int = 0) -> Tuple[List[Example], int]:
    """Loads a split of a task from wherever it lives.

    The synthetic task is generated; otherwise a GLUE directory wins over TFDS.

    Args:
        spec: the task.
        split: ``"train"``, ``"dev"`` or an extra evaluation split (``splits(spec)``).
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
    if split not in splits(spec):
        raise ValueError(f"split must be one of {splits(spec)}, got '{split}'.")
    skipped = 0
    if spec.source == "synthetic":
        size = synthetic_size if split == "train" else max(8, synthetic_size // 4)
        examples = make_synthetic(size, seed=seed if split == "train" else seed + 10_007)
    elif spec.source == "files":
        examples, skipped = read_own_examples(spec, split, skip_bad_rows)
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
        where = f"the {split} file {spec.files[split != 'train']}" if spec.files else \
            f"the {split} split of task '{spec.name}'"
        raise DataError(f"{where[0].upper()}{where[1:]} has no examples; check the file "
                        "(and --max_examples).")
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
        files.save_npz(cache_path, lengths=lengths, labels=labels, **flat)
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


def epoch_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int
                  ) -> List[np.ndarray]:
    """The example indices of each batch of one training epoch, a pure function of
    (seed, epoch): examples in a shuffled order go to length buckets (16 tokens wide), a
    bucket that fills becomes the next batch, and what is left in each bucket at the end
    of the epoch becomes one last, shorter batch per bucket.

    Args:
        lengths: tokens per example, int [num_examples].
        batch_size: global batch size.
        seed: shuffle seed.
        epoch: 0-based epoch.

    Returns:
        batches_per_epoch(lengths, batch_size) arrays of example indices, int64 [<= batch].
    """
    order = np.random.default_rng([int(seed), int(epoch)]).permutation(len(lengths))
    boundaries = _training_boundaries(lengths)
    bucket_of = np.searchsorted(np.asarray(boundaries), lengths, side="right")
    open_buckets: Dict[int, List[int]] = {}
    batches = []
    for index in order:
        bucket = open_buckets.setdefault(int(bucket_of[index]), [])
        bucket.append(int(index))
        if len(bucket) == batch_size:
            batches.append(np.asarray(bucket, np.int64))
            bucket.clear()
    batches += [np.asarray(open_buckets[b], np.int64) for b in sorted(open_buckets)
                if open_buckets[b]]
    return batches


def _plan(features: Features, batch_size: int, training: bool, seed: int, epochs: int,
          start_epoch: int, start_batch: int) -> List[np.ndarray]:
    """Every batch's example indices, in the order a run (or a resumed one) reads them."""
    if not training:
        return [np.arange(start, min(start + batch_size, len(features)))
                for start in range(0, len(features), batch_size)]
    plan = []
    for epoch in range(start_epoch, epochs):
        batches = epoch_batches(features.lengths, batch_size, seed, epoch)
        plan += batches[start_batch:] if epoch == start_epoch else batches
    return plan


def make_dataset(features: Features, batch_size: int, training: bool, seed: int = 0,
                 extra: Optional[Dict[str, np.ndarray]] = None, epochs: int = 1,
                 start_epoch: int = 0, start_batch: int = 0):
    """The batches a run reads, on the backend Keras runs on.

    Training: epochs ``start_epoch .. epochs - 1`` back to back, the first one entered at
    batch ``start_batch``; each epoch's batches are ``epoch_batches(lengths, batch_size,
    seed, epoch)``, so a run resumed at any (epoch, batch) sees exactly the batches an
    uninterrupted run would, on either backend.  Evaluation: in file order.  On
    TensorFlow a tf.data pipeline pads each batch to its longest example.  On other
    backends a ``NumpyBatches`` sequence pads to a multiple of 16 tokens and fills every
    short batch up to ``batch_size`` rows with zero-weight copies of its own rows, so a
    jitted step compiles once per length and the batch splits over any device count
    that divides ``batch_size``; those batches carry example weights (1 real, 0 filler).

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
        Batches of (features dict, labels), and on backends other than TensorFlow
        (features dict, labels, weights float32 [batch]): input_ids, attention_mask and
        token_type_ids int32 [batch, seq]; extra arrays [batch, ...]; labels [batch].
        Iterate with ``for x, y, *_ in batches``; predictions over the filled batches
        have ``len(features)`` real rows first.
    """
    plan = _plan(features, batch_size, training, seed, epochs, start_epoch, start_batch)
    if keras.backend.backend() != "tensorflow":
        return NumpyBatches(features, plan, extra, PAD_MULTIPLE, rows=batch_size)
    import tensorflow as tf

    ragged = {name: tf.RaggedTensor.from_row_lengths(values, features.lengths)
              for name, values in features.flat.items()}
    extra = {name: tf.constant(values) for name, values in (extra or {}).items()}
    labels = tf.constant(features.labels)
    sizes = np.asarray([len(batch) for batch in plan], np.int64)
    indices = tf.RaggedTensor.from_row_lengths(
        np.concatenate(plan) if plan else np.zeros([0], np.int64), sizes)

    def batch(rows):
        x = {name: tf.gather(column, rows).to_tensor() for name, column in ragged.items()}
        x.update({name: tf.gather(column, rows) for name, column in extra.items()})
        return x, tf.gather(labels, rows)

    dataset = tf.data.Dataset.from_tensor_slices(indices).map(batch)
    return dataset.prefetch(tf.data.AUTOTUNE)


PAD_MULTIPLE = 16  # numpy batches: sequence lengths rounded up to a multiple of this


def pad_batch(features: Features, rows: np.ndarray, multiple: int = 1,
              extra: Optional[Dict[str, np.ndarray]] = None,
              offsets: Optional[np.ndarray] = None) -> Tuple[Dict, np.ndarray]:
    """Examples ``rows`` as one batch of numpy arrays.

    Args:
        features: tokenized examples.
        rows: example indices, int [batch].
        multiple: pad the length up to a multiple of this (1: to the longest row).
        extra: per-example arrays to carry along.
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
    x.update({name: np.asarray(values)[rows] for name, values in (extra or {}).items()})
    return x, features.labels[rows]


class NumpyBatches(keras.utils.PyDataset):
    """A planned sequence of batches as numpy arrays (what Keras' JAX backend reads):
    ``len()``, indexing and iteration; fit, evaluate and predict take it as it is.  Made
    by make_dataset on backends without tf.data.

    Args:
        features: tokenized examples.
        plan: each batch's example indices, int [<= rows].
        extra: per-example arrays to carry along.
        multiple: pad lengths up to a multiple of this.
        rows: fill every batch up to this many rows, repeating its own examples with
            weight 0 (None: batches keep their size, every weight 1).
    """

    def __init__(self, features: Features, plan: List[np.ndarray],
                 extra: Optional[Dict[str, np.ndarray]] = None, multiple: int = 1,
                 rows: Optional[int] = None):
        super().__init__()
        self.features, self.plan, self.extra, self.multiple = features, plan, extra, multiple
        self.rows = rows
        self.offsets = features.offsets()  # once, not per batch

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, index: int) -> Tuple[Dict, np.ndarray, np.ndarray]:
        """(features, labels, weights float32 [rows]) of batch ``index``."""
        real = self.plan[index]
        size = max(self.rows or 0, len(real))
        # Filler rows copy the batch's own examples: same length bucket, finite losses.
        rows = np.resize(real, size)
        x, y = pad_batch(self.features, rows, self.multiple, self.extra, self.offsets)
        weights = (np.arange(size) < len(real)).astype(np.float32)
        return x, y, weights

    def __iter__(self):
        return (self[k] for k in range(len(self)))
