"""The student leaves the run in the formats its users deploy, each in its own folder:

==================  =====================================  ==============================
format              folder                                 run by
==================  =====================================  ==============================
saved_model         <export_dir>/<version>/                TF Serving, TensorFlow
litert              <export_dir>/litert/<version>/         ai-edge-litert (float32)
litert_int8         <export_dir>/litert_int8/<version>/    ai-edge-litert (int8 weights)
onnx                <export_dir>/onnx/<version>/           onnxruntime (float32)
onnx_int8           <export_dir>/onnx_int8/<version>/      onnxruntime (int8 weights)
hf                  <export_dir>/hf/<version>/             transformers, kd_keras.encoders
==================  =====================================  ==============================

The LiteRT and ONNX folders hold the model file, labels.txt, export.json,
tokenizer.json and text_inputs.py, which turns text into the model's inputs with the
``tokenizers`` package alone.  One call writes every requested format under one version
number (the first one free in all of them), all or none: each folder is built beside its
target and renamed into place once every format has been written, and an existing
version is never touched.

Full-integer LiteRT (int8 activations calibrated on training text) is not offered: it
converts, but the demo student's dev accuracy fell from 0.998 to 0.514 (the attention
scores and the additive padding mask share one int8 range; BENCHMARKS.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from kd_keras import files, tokenization
from kd_keras.errors import ExportError
from kd_keras.export import graph, litert, onnx, saved_model, text_inputs


@dataclasses.dataclass(frozen=True)
class Exportable:
    """A student and what its exports must know to take text.

    Attributes:
        model: the student, an encoders.EncoderClassifier.
        tokenizer: its Hugging Face fast tokenizer.
        label_names: class names in logit order (("score",) for regression).
        max_seq_length: longest input, [CLS] and [SEP]s included.
        pair: the task takes two texts.
    """

    model: object
    tokenizer: object
    label_names: Tuple[str, ...]
    max_seq_length: int
    pair: bool


def _ids_export(model_file: str, write_model: Callable[[Exportable, str], None],
                precision: str):
    """A writer of an ids-in format: the model file and what turns text into its inputs."""

    def write(student: Exportable, folder: str) -> None:
        write_model(student, os.path.join(folder, model_file))
        files.write_text(os.path.join(folder, "labels.txt"),
                         "\n".join(student.label_names) + "\n")
        files.write_text(os.path.join(folder, "tokenizer.json"),
                         student.tokenizer.backend_tokenizer.to_str())
        shutil.copyfile(text_inputs.__file__, os.path.join(folder, "text_inputs.py"))
        files.write_json(os.path.join(folder, "export.json"), {
            "model_file": model_file, "precision": precision,
            "inputs": list(graph.INPUT_NAMES),
            "outputs": ["logits", "probabilities"], "labels": list(student.label_names),
            "max_seq_length": student.max_seq_length, "pair": student.pair,
            "pad_id": int(student.tokenizer.pad_token_id or 0)})

    return write


def _litert_model(precision: str):
    def write(student: Exportable, path: str) -> None:
        with open(path, "wb") as handle:
            handle.write(litert.convert(student.model, precision))
    return write


def _onnx_model(int8: bool):
    return lambda student, path: onnx.convert(student.model, path, int8=int8)


def _saved_model(student: Exportable, folder: str) -> None:
    wordpiece = tokenization.is_wordpiece(student.tokenizer)
    if not wordpiece:
        print("Note: the raw-text signature needs a WordPiece vocabulary; this model's "
              "tokenizer is BPE, so the SavedModel has serving_default (token ids) only.")
    saved_model.save(folder, student.model, tokenization.vocab_tokens(student.tokenizer),
                     student.label_names, student.max_seq_length, student.pair,
                     lower_case=bool(getattr(student.tokenizer, "do_lower_case", True)),
                     text_signature=wordpiece)


def _hf_folder(student: Exportable, folder: str) -> None:
    from kd_keras import encoders

    encoders.save(student.model, folder, student.tokenizer,
                  id2label=dict(enumerate(student.label_names)))


# Format name -> writer of its folder (config.EXPORT_FORMATS lists the same names).
WRITERS: Dict[str, Callable[[Exportable, str], None]] = {
    "saved_model": _saved_model,
    "litert": _ids_export("model.tflite", _litert_model("float"), "float32"),
    "litert_int8": _ids_export("model.tflite", _litert_model("dynamic_int8"),
                               "int8 weights, dynamic-range activations"),
    "onnx": _ids_export("model.onnx", _onnx_model(False), "float32"),
    "onnx_int8": _ids_export("model.onnx", _onnx_model(True),
                             "int8 weights, dynamic activations"),
    "hf": _hf_folder,
}
# The formats that take token ids and run in their own runtime (runner()).
IDS_FORMATS: List[str] = [name for name in WRITERS if name.startswith(("litert", "onnx"))]


def folder_of(export_dir: str, format_name: str, version: int) -> str:
    """Where one format's version lives (the SavedModel keeps TF Serving's layout)."""
    if format_name == "saved_model":
        return os.path.join(export_dir, str(version))
    return os.path.join(export_dir, format_name, str(version))


def next_version(export_dir: str, formats: Sequence[str] = ("saved_model",)) -> int:
    """The first version number free in every one of ``formats`` (1 when none has one)."""
    versions = [0]
    for name in formats:
        folder = os.path.dirname(folder_of(export_dir, name, 0))
        if os.path.isdir(folder):
            versions += [int(entry) for entry in os.listdir(folder) if entry.isdigit()]
    return max(versions) + 1


def check_request(formats: Sequence[str]) -> None:
    """Refuses an export that cannot be written, before anything is.

    Raises:
        ExportError: an unknown format, or none.
    """
    unknown = [name for name in formats if name not in WRITERS]
    if unknown or not formats:
        raise ExportError(f"--export_formats: unknown format '{(unknown or [''])[0]}'; "
                          f"choose from {', '.join(WRITERS)}.")


def refuse_taken(export_dir: str, formats: Sequence[str], version: int) -> None:
    """Raises ExportError when ``version`` exists already in one of ``formats``."""
    taken = [folder_of(export_dir, name, version) for name in formats
             if os.path.exists(folder_of(export_dir, name, version))]
    if taken:
        raise ExportError(f"Export {taken[0]} already exists; pass another --export_version "
                          "or remove it.")


def export(student: Exportable, export_dir: str, formats: Sequence[str] = ("saved_model",),
           version: Optional[int] = None, complete: bool = False) -> Dict[str, str]:
    """Writes the student in each format under one version number, all or none.

    Args:
        student: the model and what its exports need.
        export_dir: the base folder.
        formats: names from WRITERS.
        version: the version number; when None, the first one free in every format
            asked for (a first LiteRT export is litert/1 beside an earlier SavedModel).
        complete: the version is one this student's export began (the pipeline's
            record says so): formats already there are kept, the missing ones written.

    Returns:
        Format name -> its folder.

    Raises:
        ExportError: a bad request (check_request) or a version that already exists.
    """
    formats = list(dict.fromkeys(formats))
    check_request(formats)
    version = next_version(export_dir, formats) if version is None else version
    targets = {name: folder_of(export_dir, name, version) for name in formats}
    if not complete:
        refuse_taken(export_dir, formats, version)
    with contextlib.ExitStack() as stack:  # every folder commits only if all were written
        for name in formats:
            if os.path.exists(targets[name]):  # complete: written before an interruption
                continue
            staging = stack.enter_context(files.atomic_folder(targets[name], replace=False))
            WRITERS[name](student, staging)
    return targets


def read_settings(folder: str) -> Dict:
    """export.json of an ids-in export."""
    with open(os.path.join(folder, "export.json"), encoding="utf-8") as handle:
        return json.load(handle)


def runner(format_name: str, folder: str, threads: Optional[int] = None):
    """The runtime of an ids-in export: a callable features -> logits [batch, labels]."""
    model_file = os.path.join(folder, read_settings(folder)["model_file"])
    if format_name.startswith("litert"):
        return litert.Runner(model_file, threads)
    return onnx.Runner(model_file, threads)

