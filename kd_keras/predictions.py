"""Prediction files written by ``--mode=predict``.

GLUE tasks keep GLUE's submission layout (``index<TAB>prediction``).  Own data gets the
label name and every class probability per row, in the format the output file's
extension names (.csv, .tsv or .jsonl).
"""

from __future__ import annotations

import csv
import json
import os
from typing import Optional, Sequence

import numpy as np

from kd_keras import files

OUTPUT_FORMATS = (".csv", ".tsv", ".jsonl")


def check_output_format(path: str) -> None:
    """Raises ValueError (before any work) when the output file's type is unknown."""
    extension = os.path.splitext(path)[1].lower()
    if extension not in OUTPUT_FORMATS:
        raise ValueError(f"--output_file {path}: unknown file type '{extension}'; end it in "
                         f"{', '.join(OUTPUT_FORMATS)}.")


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _write_atomically(path: str, write) -> None:
    with files.atomic_file(path, newline="") as handle:
        write(handle)


def write_glue(path: str, logits: np.ndarray, labels: Optional[Sequence[str]]) -> None:
    """GLUE layout: a header, then ``index<TAB>label`` (or the score for regression).

    Args:
        logits: float [n, num_labels], or [n, 1] for regression.
        labels: class names in index order, or None for regression.
    """
    def write(handle):
        handle.write("index\tprediction\n")
        for i, row in enumerate(logits):
            value = f"{row[0]:.6f}" if labels is None else labels[int(row.argmax())]
            handle.write(f"{i}\t{value}\n")

    _write_atomically(path, write)


def write_own(path: str, logits: np.ndarray, labels: Optional[Sequence[str]]) -> None:
    """Own data: per input row its index, the predicted label name and the probability of
    every class (``prob_<label>`` columns in CSV / TSV, a ``probabilities`` object in
    JSONL); for regression the predicted score.

    Args:
        path: .csv, .tsv or .jsonl.
        logits: float [n, num_labels], or [n, 1] for regression.
        labels: class names in index order, or None for regression.
    """
    extension = os.path.splitext(path)[1].lower()
    probabilities = None if labels is None else _softmax(np.asarray(logits, np.float64))

    def record(i):
        if labels is None:
            return {"index": i, "prediction": float(logits[i][0])}
        return {"index": i, "prediction": labels[int(probabilities[i].argmax())],
                "probabilities": {name: float(p) for name, p in zip(labels, probabilities[i])}}

    def write(handle):
        if extension == ".jsonl":
            for i in range(len(logits)):
                handle.write(json.dumps(record(i), ensure_ascii=False) + "\n")
            return
        writer = csv.writer(handle, delimiter="\t" if extension == ".tsv" else ",",
                            lineterminator="\n")
        writer.writerow(["index", "prediction"] + [f"prob_{name}" for name in labels or ()])
        for i in range(len(logits)):
            row = record(i)
            value = f"{row['prediction']:.6f}" if labels is None else row["prediction"]
            writer.writerow([i, value]
                            + [f"{p:.6f}" for p in row.get("probabilities", {}).values()])

    _write_atomically(path, write)
