"""Registry of the tasks kd_keras can distil on.

A task spec says where its examples live in a GLUE-format TSV (columns, header, label
strings), which metric GLUE reports for it, and its TFDS name.  The built-in
``synthetic`` task needs no files at all: data.py generates it from a seed.  A user's
own CSV / TSV / JSONL files get a spec built by ``from_files`` (fields by name, labels
read from the training file).
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence, Tuple


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """How one task's data is laid out and scored.

    Attributes:
        name: registry key, lower case (``"qqp"``).
        dir_name: folder under the GLUE data directory (``"QQP"``).
        text_a_column: column index of the first sentence.
        text_b_column: column index of the second sentence, or None for
            single-sentence tasks.
        label_column: column index of the label; negative counts from the end (MNLI and
            STS-B files have a variable number of annotator columns before the label).
        num_columns: exact column count of every row, or None where it varies; then every
            row needs at least ``min_columns``.
        labels: label strings in class-index order, or None for regression.
        metrics: metric names from metrics.py, the first one is the task's main metric.
        has_header: whether the TSV files start with a header line.
        train_file: file name of the training split.
        dev_file: file name of the evaluation split.
        tfds_name: TFDS dataset name, or None when TFDS has no copy.
        tfds_dev_split: TFDS split used as dev.
        tfds_text_keys: feature names of the sentences in the TFDS version.
        tfds_label_names: TFDS's class name for each of ``labels``, in the same order
            (TFDS orders some classes differently, e.g. MNLI); labels are mapped by name.
        extra_dev: more evaluation splits, reported beside dev: (name, TSV file, TFDS
            split) each, such as MNLI's dev_mismatched.
        source: ``"glue"`` (GLUE TSV or TFDS), ``"synthetic"`` or ``"files"`` (own data).
        files: own data: (train file, dev file).
        text_fields: own data: the one or two text field names.
        label_field: own data: the label field name.
    """

    name: str
    dir_name: str
    text_a_column: int
    text_b_column: Optional[int]
    label_column: int
    num_columns: Optional[int]
    labels: Optional[Tuple[str, ...]]
    metrics: Tuple[str, ...]
    has_header: bool = True
    train_file: str = "train.tsv"
    dev_file: str = "dev.tsv"
    tfds_name: Optional[str] = None
    tfds_dev_split: str = "validation"
    tfds_text_keys: Tuple[str, ...] = ()
    min_columns: int = 0
    tfds_label_names: Tuple[str, ...] = ()
    extra_dev: Tuple[Tuple[str, str, str], ...] = ()
    source: str = "glue"
    files: Tuple[str, ...] = ()
    text_fields: Tuple[str, ...] = ()
    label_field: str = ""

    @property
    def is_regression(self) -> bool:
        """True when the label is a real number (STS-B)."""
        return self.labels is None

    @property
    def num_labels(self) -> int:
        """Width of the classifier output: 1 for regression."""
        return 1 if self.labels is None else len(self.labels)

    @property
    def is_pair(self) -> bool:
        """True for sentence-pair tasks."""
        return self.text_b_column is not None

    @property
    def main_metric(self) -> str:
        """The metric used to pick the best checkpoint."""
        return self.metrics[0]


_BINARY = ("0", "1")
_ENTAILMENT = ("entailment", "not_entailment")

TASKS = {
    spec.name: spec
    for spec in (
        # CoLA: no header; source, label, original label, sentence.
        TaskSpec("cola", "CoLA", 3, None, 1, 4, _BINARY, ("mcc", "accuracy"),
                 has_header=False, tfds_name="glue/cola", tfds_text_keys=("sentence",),
                 tfds_label_names=("unacceptable", "acceptable")),
        TaskSpec("sst2", "SST-2", 0, None, 1, 2, _BINARY, ("accuracy",),
                 tfds_name="glue/sst2", tfds_text_keys=("sentence",),
                 tfds_label_names=("negative", "positive")),
        # MRPC: Quality, #1 ID, #2 ID, #1 String, #2 String (the files often carry a BOM).
        TaskSpec("mrpc", "MRPC", 3, 4, 0, 5, _BINARY, ("f1", "accuracy"),
                 tfds_name="glue/mrpc", tfds_text_keys=("sentence1", "sentence2"),
                 tfds_label_names=("not_equivalent", "equivalent")),
        TaskSpec("qqp", "QQP", 3, 4, 5, 6, _BINARY, ("f1", "accuracy"),
                 tfds_name="glue/qqp", tfds_text_keys=("question1", "question2"),
                 tfds_label_names=("not_duplicate", "duplicate")),
        # STS-B: 10 columns in train/dev, the score last.
        TaskSpec("stsb", "STS-B", 7, 8, -1, None, None, ("pearson", "spearman"),
                 min_columns=10, tfds_name="glue/stsb",
                 tfds_text_keys=("sentence1", "sentence2")),
        # MNLI: train has 12 columns, dev 16 (five annotator labels); gold label last.
        TaskSpec("mnli", "MNLI", 8, 9, -1, None, ("contradiction", "entailment", "neutral"),
                 ("accuracy",), min_columns=12, dev_file="dev_matched.tsv",
                 tfds_name="glue/mnli", tfds_dev_split="validation_matched",
                 tfds_text_keys=("premise", "hypothesis"),
                 tfds_label_names=("contradiction", "entailment", "neutral"),
                 extra_dev=(("dev_mismatched", "dev_mismatched.tsv",
                             "validation_mismatched"),)),
        TaskSpec("qnli", "QNLI", 1, 2, 3, 4, _ENTAILMENT, ("accuracy",),
                 tfds_name="glue/qnli", tfds_text_keys=("question", "sentence"),
                 tfds_label_names=_ENTAILMENT),
        TaskSpec("rte", "RTE", 1, 2, 3, 4, _ENTAILMENT, ("accuracy",),
                 tfds_name="glue/rte", tfds_text_keys=("sentence1", "sentence2"),
                 tfds_label_names=_ENTAILMENT),
        TaskSpec("wnli", "WNLI", 1, 2, 3, 4, _BINARY, ("accuracy",),
                 tfds_name="glue/wnli", tfds_text_keys=("sentence1", "sentence2"),
                 tfds_label_names=("not_entailment", "entailment")),
        # Generated in memory by data.py; the columns describe its TSV export.
        TaskSpec("synthetic", "SYNTHETIC", 0, 1, 2, 3, ("b_more_positive", "a_more_positive"),
                 ("accuracy", "f1"), has_header=True, source="synthetic"),
    )
}


def get_task(name: str) -> TaskSpec:
    """Looks a task up by name.

    Args:
        name: task name, case-insensitive (``"QQP"``, ``"sst-2"`` and ``"sst2"`` all work).

    Returns:
        The task's spec.

    Raises:
        ValueError: the name is unknown; the message lists the valid names.
    """
    key = name.lower().replace("-", "").replace("_", "")
    if key not in TASKS:
        raise ValueError(
            f"Unknown task '{name}'. Choose one of: {', '.join(sorted(TASKS))}.")
    return TASKS[key]


TASK_TYPES = ("classification", "regression")
OWN_DATA_TASK = "custom"  # the task name of runs on the user's own files


def from_files(train_file: str, dev_file: str, text_fields: Sequence[str], label_field: str,
               task_type: str, labels: Optional[Sequence[str]]) -> TaskSpec:
    """The spec of a user's own data.

    Args:
        train_file: CSV, TSV (header row) or JSONL training file.
        dev_file: evaluation file in the same layout.
        text_fields: one field name (single texts) or two (pairs).
        label_field: the label's field name.
        task_type: ``"classification"`` or ``"regression"``.
        labels: class names in index order (classification); None for regression.

    The fields and task type are checked with the rest of the settings
    (config.validate); here only what the data decides.

    Raises:
        ValueError: a classification task whose training file has fewer than two labels.
    """
    regression = task_type == "regression"
    if not regression and len(labels or ()) < 2:
        raise ValueError(f"{train_file}: a classification task needs at least two labels in "
                         f"'{label_field}', found {list(labels or ())}.")
    return TaskSpec(
        OWN_DATA_TASK, "", 0, 1 if len(text_fields) == 2 else None, -1, None,
        None if regression else tuple(labels),
        ("pearson", "spearman") if regression else ("accuracy", "macro_f1"),
        source="files", files=(train_file, dev_file), text_fields=tuple(text_fields),
        label_field=label_field)
