"""What every data source yields: labelled examples, and the one error a bad input file
raises.  Files are read as UTF-8; errors name the file and line."""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Union

from kd_keras.errors import DataError
from kd_keras.tasks import TaskSpec

Label = Union[int, float]


@dataclasses.dataclass(frozen=True)
class Example:
    """One example: a text (or a pair) and its label, if it has one.

    Attributes:
        text_a: first (or only) sentence.
        text_b: second sentence, or None for single-sentence tasks.
        label: class index, a float score for regression, or None for text without a
            label (transfer text, augmented copies: the student learns the teacher's
            outputs on it, not a gold label).
    """

    text_a: str
    text_b: Optional[str]
    label: Optional[Label]


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
        raise not_utf8(path, raw[:error.start].count(b"\n") + 1,
                       raw[error.start]) from None


def not_utf8(path: str, line: int, byte: int) -> DataError:
    """The error of a text file whose ``line`` holds ``byte``, which is not UTF-8."""
    return DataError(f"{path}:{line}: not UTF-8 text (byte 0x{byte:02x}); save the file as "
                     "UTF-8 and run again.")


def splits(spec: TaskSpec) -> List[str]:
    """The task's splits: train, dev, then any extra evaluation splits (MNLI's
    dev_mismatched)."""
    return ["train", "dev"] + [name for name, _, _ in spec.extra_dev]

