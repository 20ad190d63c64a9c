"""The student leaves the run in the formats its users deploy, each in its own folder:

==================  =====================================  ==============================
format              folder                                 run by
==================  =====================================  ==============================
saved_model         <export_dir>/<version>/                TF Serving, TensorFlow
litert              <export_dir>/litert/<version>/         ai-edge-litert (float32)
litert_int8         <export_dir>/litert_int8/<version>/    ai-edge-litert (int8 weights)
litert_full_int8    <export_dir>/litert_full_int8/<v>/     ai-edge-litert (int8 weights and
                                                           activations, calibrated)
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

Full-integer LiteRT calibrates its activations' int8 ranges on a sample of training
text (Exportable.calibration); an export asked for it without one is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from kd_keras import files, tokenization
from kd_keras.data.features import Features, pad_batch
from kd_keras.errors import ExportError
from kd_keras.export import graph, litert, onnx, saved_model, text_inputs


@dataclasses.dataclass(frozen=True)
class Exportable:
    """A student and what its exports must know to take text.

    Attributes:
        model: the student, an encoders.EncoderClassifier.
        tokenizer: its tokenization.TextTokenizer.
        label_names: class names in logit order (("score",) for regression).
        max_seq_length: longest input, [CLS] and [SEP]s included.
        pair: the task takes two texts.
        calibration: training examples for full-integer formats to calibrate on, int32
            [examples, max_seq_length] per name in graph.INPUT_NAMES (calibration_sample);
            None when there is no training text at hand.
        text_signature: the SavedModel's serving_text: "auto" (WordPiece students),
            "on" (required), "off".
    """

    model: object
    tokenizer: object
    label_names: Tuple[str, ...]
    max_seq_length: int
    pair: bool
    calibration: Optional[Dict[str, np.ndarray]] = None
    text_signature: str = "auto"


# Training examples a full-integer export calibrates on: enough for stable ranges on the
# students measured (BENCHMARKS.md), a few seconds of calibration for MiniLM-sized ones.
CALIBRATION_EXAMPLES = 100
# The formats that calibrate on training text.
CALIBRATED_FORMATS = ("litert_full_int8",)


def calibrated(formats: Sequence[str]) -> List[str]:
    """Those of ``formats`` that calibrate on training text (CALIBRATED_FORMATS)."""
    return [name for name in formats if name in CALIBRATED_FORMATS]


def calibration_sample(train: Features, max_seq_length: int,
                       size: int = CALIBRATION_EXAMPLES) -> Dict[str, np.ndarray]:
    """``size`` training examples spread evenly over the set, padded to max_seq_length.

    Args:
        train: the tokenized training examples.
        max_seq_length: the length every row is padded to (one shape for the calibrator).
        size: how many to take (all when there are fewer).

    Returns:
        int32 [min(size, examples), max_seq_length] per name in graph.INPUT_NAMES.
    """
    rows = np.unique(np.linspace(0, len(train) - 1, min(size, len(train))).round()
                     .astype(int))
    inputs, _ = pad_batch(train, rows, multiple=max_seq_length)
    return {name: inputs[name] for name in graph.INPUT_NAMES}


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
        calibration = student.calibration if precision == "full_int8" else None
        with open(path, "wb") as handle:
            handle.write(litert.convert(student.model, precision, calibration))
    return write


def _onnx_model(int8: bool):
    return lambda student, path: onnx.convert(student.model, path, int8=int8)


def _saved_model(student: Exportable, folder: str) -> None:
    wordpiece = tokenization.is_wordpiece(student.tokenizer)
    if student.text_signature == "auto" and not wordpiece:
        print("Note: the raw-text signature needs a WordPiece vocabulary; this model's "
              "tokenizer is BPE, so the SavedModel has serving_default (token ids) only.")
    saved_model.save(folder, student.model, tokenization.vocab_tokens(student.tokenizer),
                     student.label_names, student.max_seq_length, student.pair,
                     lower_case=student.tokenizer.do_lower_case,
                     text_signature=wordpiece and student.text_signature != "off")


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
    "litert_full_int8": _ids_export("model.tflite", _litert_model("full_int8"),
                                    "int8 weights and activations, calibrated on "
                                    "training text"),
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


def check_request(formats: Sequence[str], student: Optional[Exportable] = None) -> None:
    """Refuses an export that cannot be written, before anything is.

    Raises:
        ExportError: an unknown format, or none; a calibrated format for a student
            without a calibration sample; a text signature it cannot have
            (check_text_signature).
    """
    unknown = [name for name in formats if name not in WRITERS]
    if unknown or not formats:
        raise ExportError(f"--export_formats: unknown format '{(unknown or [''])[0]}'; "
                          f"choose from {', '.join(WRITERS)}.")
    if student is None:
        return
    needs_text = calibrated(formats)
    if needs_text and student.calibration is None:
        raise ExportError(f"--export_formats={needs_text[0]} calibrates its int8 ranges on "
                          "training text, and none is at hand; export it from a run whose "
                          "training data can be read, or ask for litert_int8 (int8 "
                          "weights, no data needed).")
    check_text_signature(formats, student.text_signature, student.tokenizer)


def check_text_signature(formats: Sequence[str], text_signature: str, tokenizer) -> None:
    """Refuses a SavedModel that must take raw text from a student whose tokenizer the
    graph cannot run (tensorflow-text tokenizes WordPiece, not byte-level BPE).

    Raises:
        ExportError: text_signature "on", saved_model asked for, a BPE tokenizer.
    """
    if (text_signature == "on" and "saved_model" in formats
            and not tokenization.is_wordpiece(tokenizer)):
        raise ExportError("--text_signature=on: the SavedModel's raw-text signature "
                          "tokenizes with WordPiece in the graph, and this student's "
                          "tokenizer is BPE; use --text_signature=auto (token ids, with "
                          "text_inputs.py beside the litert or onnx exports) or a "
                          "WordPiece teacher.")


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
    check_request(formats, student)
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

