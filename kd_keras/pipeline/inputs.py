"""The run's task and what it reads: the task spec, its examples (each file read once),
the teacher's tokenizer, and the tokenized splits."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import tempfile
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from kd_keras import files, models, tasks
from kd_keras.config import TINY_TEACHER, RunConfig
from kd_keras.data import own_files, sources, synthetic, vocab
from kd_keras.data.examples import Example, splits
from kd_keras.errors import DataError
from kd_keras.data.features import Features, tokenize
from kd_keras.pipeline.context import RunContext
from kd_keras.tasks import TaskSpec


@dataclasses.dataclass
class TaskData:
    """Tokenized splits of the run's task.

    Attributes:
        extra_dev: more evaluation splits by name (MNLI's dev_mismatched), reported
            beside dev; dev alone selects the best checkpoint.
    """

    spec: TaskSpec
    tokenizer: object
    train: Features
    dev: Features
    skipped: int
    extra_dev: Dict[str, Features] = dataclasses.field(default_factory=dict)


class TaskInputs:
    """The run's task and its examples, each file read at most once.

    Own data: the training file's rows give the labels and the training examples alike.

    Args:
        config: the run.
        labels: own data: the class names in index order when already known (those
            recorded in model_dir); read from the training file when None.

    Raises:
        DataError, ValueError: the user's files or fields cannot be used.
    """

    def __init__(self, config: RunConfig, labels: Optional[Sequence[str]] = None):
        self.data = config.data
        self.seed = config.train.seed
        self._read: Dict[str, Tuple[List[Example], int]] = {}
        self._train_rows = None
        self.spec = self._task_spec(labels)

    def _task_spec(self, labels: Optional[Sequence[str]]) -> TaskSpec:
        d = self.data
        if not d.own_data:
            return tasks.get_task(d.task)
        if labels is None and d.task_type == "classification":
            self._train_rows = own_files.read_own_rows(d.train_file, d.text_fields,
                                                       d.label_field, d.skip_bad_rows)
            labels = own_files.own_labels(self._train_rows[0])
        return tasks.from_files(d.train_file, d.dev_file, d.text_fields, d.label_field,
                                d.task_type, labels)

    def examples(self, split: str) -> Tuple[List[Example], int]:
        """A split's examples and how many malformed rows were skipped."""
        if split not in self._read:
            d = self.data
            self._read[split] = sources.load_examples(
                self.spec, split, data_dir=d.data_dir, use_tfds=d.use_tfds,
                tfds_data_dir=d.tfds_data_dir, skip_bad_rows=d.skip_bad_rows,
                max_examples=d.max_train_examples if split == "train" else d.max_eval_examples,
                synthetic_size=d.synthetic_size, seed=self.seed,
                own_rows=self._train_rows if split == "train" else None)
        return self._read[split]

    def transfer_text(self) -> "TransferText":
        """The transfer text (--transfer_file, or --transfer_task's training sentences)
        as examples without labels.

        A file is checked here (fields, existence) and read only when the examples are
        iterated, row by row.  --transfer_task naming the run's own task takes its
        training examples beyond --max_train_examples (a task with few labels and more
        text, simulated).

        Raises:
            DataError: a file that cannot be read, or texts that do not fit the task (one
                for single-text tasks, two for pairs); while iterating, as
                own_files.OwnRows.
        """
        d, pair = self.data, self.spec.is_pair
        if d.transfer_file:
            fields = d.transfer_fields or d.text_fields
            if len(fields) != (2 if pair else 1):
                kind, count = ("pairs", 2) if pair else ("one text", 1)
                raise DataError(f"--transfer_file: the task reads {kind}, so name {count} "
                                f"--transfer_fields (got {', '.join(fields) or 'none'}).")
            if not os.path.isfile(d.transfer_file):
                raise DataError(f"{d.transfer_file}: file not found (--transfer_file).")
            rows = own_files.OwnRows(d.transfer_file, fields, None, d.skip_bad_rows)
            examples = (Example(row.text_a, row.text_b, None) for row in rows)
            if d.max_transfer_examples:
                examples = itertools.islice(examples, d.max_transfer_examples)
            # The file's bytes and how they are read name the text without reading it.
            digest = files.file_digest(d.transfer_file, hashlib.sha256(json.dumps(
                [list(fields), d.skip_bad_rows, d.max_transfer_examples]).encode()))
            return TransferText(examples, d.transfer_file, lambda: rows.skipped, digest)
        other = tasks.get_task(d.transfer_task)
        if other.is_pair != pair:
            raise DataError(f"--transfer_task={other.name} has "
                            f"{'pairs' if other.is_pair else 'single texts'}, task "
                            f"{self.spec.name} {'pairs' if pair else 'single texts'}; "
                            "pass a task of the same kind.")
        examples, skipped = sources.load_examples(
            other, "train", data_dir=d.data_dir, use_tfds=d.use_tfds,
            tfds_data_dir=d.tfds_data_dir, skip_bad_rows=d.skip_bad_rows)
        if other.name == self.spec.name:  # the labelled examples are not transfer text
            examples = examples[d.max_train_examples or len(examples):]
        examples = [Example(e.text_a, e.text_b, None)
                    for e in examples[: d.max_transfer_examples or len(examples)]]
        if not examples:
            raise DataError(f"The transfer text (task {other.name}) has no rows.")
        return TransferText(examples, f"task {other.name}", lambda: skipped)


@dataclasses.dataclass
class TransferText:
    """Text without labels to distil on (TaskInputs.transfer_text).

    Attributes:
        examples: the examples, label None; an iterable read once when it comes from a
            file (row by row), a list otherwise.
        source: where the text comes from, for messages and cache keys.
        skipped: malformed rows skipped so far (complete once ``examples`` is read).
        digest: names the text without reading it (file, fields, limits), or None when
            ``examples`` is a list that names itself.
    """

    examples: Iterable[Example]
    source: str
    skipped: Callable[[], int]
    digest: Optional[str] = None


def load_tokenizer(context: RunContext, inputs: TaskInputs):
    """The teacher's tokenizer: the one saved with the fine-tuned teacher in the chief's
    model_dir, the tiny teacher's (the synthetic vocab, or one built from the training
    texts), or that of --teacher."""
    teacher_dir = context.shared_path("teacher")
    if os.path.isdir(teacher_dir):
        return models.load_tokenizer(teacher_dir, context.cache_dir)
    if context.config.model.teacher != TINY_TEACHER:
        return models.load_tokenizer(context.config.model.teacher, context.cache_dir)
    if inputs.spec.source == "synthetic":
        tokens = synthetic.synthetic_vocab()
    else:
        examples, _ = inputs.examples("train")
        tokens = vocab.build_vocab(text for e in examples for text in (e.text_a, e.text_b)
                                   if text)
    with tempfile.TemporaryDirectory() as folder:  # the tokenizer keeps it in memory
        vocab_path = os.path.join(folder, "vocab.txt")
        vocab.write_vocab(vocab_path, tokens)
        return models.load_tokenizer(vocab_path, context.cache_dir)


def load_split(context: RunContext, inputs: TaskInputs, tokenizer, split: str
               ) -> Tuple[Features, int]:
    """One split of the task tokenized (cached in the cache folder), and how many
    malformed rows it skipped (reported here): what a command that needs one split reads
    instead of every split.

    Raises:
        DataError: as TaskInputs.examples.
    """
    spec = inputs.spec
    examples, bad = inputs.examples(split)
    if bad:
        print(f"Skipped {bad} malformed row(s) in the {split} split of {spec.name}.")
    source = spec.files if spec.files else context.config.data.data_dir
    features = tokenize(examples, tokenizer, context.config.data.max_seq_length,
                        cache_dir=context.cache_dir, cache_key=f"{spec.name}/{split}/{source}",
                        regression=spec.is_regression)
    return features, bad


def load_task_data(context: RunContext, inputs: TaskInputs, tokenizer) -> TaskData:
    """Every split of the task tokenized (load_split), skipped rows reported."""
    spec = inputs.spec
    loaded = {split: load_split(context, inputs, tokenizer, split) for split in splits(spec)}
    features = {split: split_features for split, (split_features, _) in loaded.items()}
    skipped = sum(bad for _, bad in loaded.values())
    extra = {split: features[split] for split in splits(spec)[2:]}
    print(f"Task {spec.name}: {len(features['train'])} train and {len(features['dev'])} dev "
          "examples" + "".join(f", {len(f)} {name}" for name, f in extra.items()) + ".")
    return TaskData(spec, tokenizer, features["train"], features["dev"], skipped, extra)
