"""The user's own CSV / TSV (header row) and JSONL files: rows by field name, labels read
from the training file, every bad row named by file and line."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from typing import Iterator, List, Optional, Sequence, Tuple

from kd_keras.data.examples import Example, Label, not_utf8
from kd_keras.errors import DataError
from kd_keras.tasks import TaskSpec

OWN_FORMATS = {".csv": ",", ".tsv": "\t", ".jsonl": None}
# csv's default cap on a field (128 KiB) would stop a file at its first long text; the
# tokenizer truncates texts of any length.
csv.field_size_limit(2**31 - 1)


@dataclasses.dataclass(frozen=True)
class OwnRow:
    """One row of a user's file: its line number, texts and label text ("" if absent)."""

    line: int
    text_a: str
    text_b: Optional[str]
    label: str


def _lines(path: str) -> Iterator[str]:
    """A UTF-8 file's lines, line ends kept and a leading BOM dropped, read one at a time
    (a file larger than memory is never held whole).

    Raises:
        DataError: a line is not UTF-8; the message names the file and line.
    """
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as error:
                raise not_utf8(path, number, raw[error.start]) from None


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
    if extension == ".jsonl":
        for number, line in enumerate(_lines(path), start=1):
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
            nested = [name for name in needed
                      if isinstance(record.get(name), (dict, list))]
            if missing:
                record = DataError(f"no field {', '.join(map(repr, missing))} (the row has "
                                   f"{', '.join(map(repr, record)) or 'none'}).")
            elif nested:
                record = DataError(f"field '{nested[0]}' holds a JSON "
                                   f"{'object' if isinstance(record[nested[0]], dict) else 'list'}"
                                   "; texts and labels are strings or numbers.")
            yield number, record
        return
    delimiter = OWN_FORMATS[extension]
    reader = csv.reader(_lines(path), delimiter=delimiter,
                        quoting=csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL)
    try:
        header = [name.strip() for name in next(reader, [])]
    except csv.Error as error:
        raise DataError(f"{path}:1: the header row cannot be read ({error}).") from None
    repeated = sorted(name for name in set(header) if header.count(name) > 1 and name)
    if repeated:
        raise DataError(f"{path}:1: the header names the column '{repeated[0]}' "
                        f"{header.count(repeated[0])} times; give each column its own name.")
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
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:  # e.g. a quote left open to the end of the file
            raise DataError(f"{path}:{reader.line_num}: {error}; check the quoting of the "
                            "rows above.") from None
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            yield reader.line_num, DataError(f"expected {len(header)} columns as in the "
                                             f"header, found {len(row)}.")
            continue
        yield reader.line_num, dict(zip(header, row))


class OwnRows:
    """A user's CSV / TSV / JSONL file, read row by row as it is iterated (a file larger
    than memory is never held whole).

    Iterating yields the good rows as OwnRow; ``skipped`` counts the malformed rows
    passed over so far.

    Args:
        path: the file; its extension gives the format.
        text_fields: one or two field names holding the texts.
        label_field: the label's field, or None (prediction input, transfer text).
        skip_bad_rows: skip malformed rows (missing fields, empty texts or labels) and
            count them instead of failing.

    Raises (while iterating):
        DataError: as _records; a row is malformed and skip_bad_rows is off (the message
            names the file and line); or the file has no usable row.
    """

    def __init__(self, path: str, text_fields: Sequence[str], label_field: Optional[str],
                 skip_bad_rows: bool = False):
        self.path, self.text_fields, self.label_field = path, list(text_fields), label_field
        self.skip_bad_rows, self.skipped = skip_bad_rows, 0

    def __iter__(self) -> Iterator[OwnRow]:
        path, text_fields, label_field = self.path, self.text_fields, self.label_field
        needed = text_fields + ([label_field] if label_field else [])
        self.skipped, found = 0, False
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
                    found = True
                    yield OwnRow(line, texts[0], texts[1] if len(texts) > 1 else None, label)
                    continue
            if not self.skip_bad_rows:
                raise DataError(f"{path}:{line}: {record} Fix the row, or pass "
                                "--skip_bad_rows to skip malformed rows.")
            self.skipped += 1
        if not found:
            raise DataError(f"{path}: no rows to read"
                            + (f" ({self.skipped} malformed rows skipped)." if self.skipped
                               else " below the header."
                               if path.lower().endswith((".csv", ".tsv")) else "."))


def read_own_rows(path: str, text_fields: Sequence[str], label_field: Optional[str],
                  skip_bad_rows: bool = False) -> Tuple[List[OwnRow], int]:
    """Reads a user's CSV / TSV / JSONL file whole (see OwnRows for the arguments and
    errors).

    Returns:
        (rows, number of rows skipped).
    """
    rows = OwnRows(path, text_fields, label_field, skip_bad_rows)
    found = list(rows)
    return found, rows.skipped


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


def read_own_examples(spec: TaskSpec, split: str, skip_bad_rows: bool = False,
                      rows: Optional[Tuple[List[OwnRow], int]] = None
                      ) -> Tuple[List[Example], int]:
    """A split of the user's own data as examples, labels mapped to the spec's classes.

    Args:
        spec: the own-data task (tasks.from_files).
        split: "train" or "dev".
        skip_bad_rows: skip malformed rows and count them instead of failing.
        rows: the split's (rows, skipped) when read_own_rows has read them already (the
            training file's labels come from its rows): the file is not read again.

    Raises:
        DataError: as read_own_rows; a label that is not a number (regression) or that
            the training file never has (classification), with file and line.
    """
    path = spec.files[0 if split == "train" else 1]
    rows, skipped = rows or read_own_rows(path, spec.text_fields, spec.label_field,
                                          skip_bad_rows)
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

