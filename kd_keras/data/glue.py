"""GLUE tasks from their TSV files or from TFDS (labels mapped by class name)."""

from __future__ import annotations

import io
import os
from typing import Dict, List, Optional, Sequence, Tuple

from kd_keras import net
from kd_keras.data.examples import Example, Label, read_text
from kd_keras.errors import DataError
from kd_keras.tasks import TaskSpec

# Hosts TFDS downloads GLUE from; checked before a download so offline fails in seconds.
TFDS_GLUE_HOSTS = ("dl.fbaipublicfiles.com", "firebasestorage.googleapis.com")


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



def load_tfds(spec: TaskSpec, split: str, tfds_data_dir: Optional[str] = None,
              hosts: Sequence[str] = TFDS_GLUE_HOSTS) -> List[Example]:
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
        if not net.host_reachable(hosts):
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

