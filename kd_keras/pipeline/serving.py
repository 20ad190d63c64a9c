"""The best student put to use: exported in the formats asked for, or labelling a file."""

from __future__ import annotations

import os
from typing import Dict, Optional

import numpy as np

from kd_keras import metrics as glue_metrics
from kd_keras import models, predictions
from kd_keras.data import glue, own_files
from kd_keras.data.examples import Example
from kd_keras.errors import DataError, ExportError
from kd_keras.data.features import Features, pad_batch, tokenize
from kd_keras.encoders import EncoderClassifier
from kd_keras.pipeline import distillation, inference, inputs
from kd_keras.pipeline.context import RunContext
from kd_keras.pipeline.inputs import TaskInputs
from kd_keras.tasks import TaskSpec


def load_student(context: RunContext, spec: TaskSpec) -> EncoderClassifier:
    """The best student the chief's model_dir holds.

    Raises:
        ModelError: there is none yet.
    """
    folder = context.shared_path("student")
    if not os.path.isdir(folder):
        raise models.ModelError(f"No student in {folder}; run --mode=distill (or the "
                                "pipeline) with this --model_dir first.")
    return models.load_pretrained(folder, spec.num_labels, context.cache_dir)


def exportable(context: RunContext, spec: TaskSpec, student: EncoderClassifier, tokenizer,
               train: Optional[Features] = None):
    """The student with what its exports need to take text (and, when a format asked
    for calibrates and the tokenized training examples are given, its sample)."""
    from kd_keras import export  # TensorFlow: imported only by runs that export

    length = context.config.data.max_seq_length
    calibration = None
    if train is not None and export.calibrated(context.config.train.export_formats):
        calibration = export.calibration_sample(train, length)
    return export.Exportable(student, tokenizer,
                             tuple(spec.labels) if spec.labels else ("score",),
                             length, spec.is_pair, calibration,
                             context.config.train.text_signature)


def check_text_signature(context: RunContext, tokenizer) -> None:
    """Refuses, before anything is trained or written, a raw-text SavedModel the
    student's tokenizer cannot have (export.check_text_signature)."""
    from kd_keras import export

    train = context.config.train
    export.check_text_signature(train.export_formats, train.text_signature, tokenizer)


def calibration_text(context: RunContext, task_inputs: TaskInputs, tokenizer
                     ) -> Optional[Features]:
    """The run's tokenized training examples when a format asked for calibrates on them
    (--mode=export reads them only then), else None.

    Raises:
        ExportError: they cannot be read (the files moved, GLUE offline).
    """
    from kd_keras import export

    needs_text = export.calibrated(context.config.train.export_formats)
    if not needs_text:
        return None
    try:
        return inputs.load_split(context, task_inputs, tokenizer, "train")[0]
    except DataError as error:
        raise ExportError(f"--export_formats={needs_text[0]} calibrates on the run's "
                          f"training text, which cannot be read: {error}") from None


def export_student(context: RunContext, student, version: Optional[int] = None
                   ) -> Dict[str, str]:
    """Writes the student (an export.Exportable: exportable()) in every --export_formats
    format, under ``version`` or the next free one; returns format -> folder."""
    from kd_keras import export

    return export.export(student, context.export_dir, context.config.train.export_formats,
                         version)


def export_distilled(context: RunContext, student) -> Dict[str, str]:
    """The pipeline's export of the student it distilled: under the version the
    distillation's record names, completing it after an interruption (only missing
    formats are written), or under a new one, recorded before anything is written."""
    from kd_keras import export

    formats = context.config.train.export_formats
    version = distillation.recorded_export(context)
    if version is not None:
        return export.export(student, context.export_dir, formats, version, complete=True)
    version = (context.config.train.export_version
               or export.next_version(context.export_dir, formats))
    export.refuse_taken(context.export_dir, formats, version)
    distillation.note_export(context, version)
    return export.export(student, context.export_dir, formats, version)


def score_exports(folders: Dict[str, str], task_dev: Features, spec: TaskSpec,
                  batch_size: int) -> Dict[str, Dict]:
    """Each LiteRT or ONNX export run by its own runtime on dev: the task's metrics and
    the model file's size, so int8 stands next to float."""
    from kd_keras import export

    scores = {}
    for name, folder in folders.items():
        if name not in export.IDS_FORMATS:
            continue
        run = export.runner(name, folder)
        logits = np.concatenate([
            run(pad_batch(task_dev, np.arange(start, min(start + batch_size, len(task_dev))))[0])
            for start in range(0, len(task_dev), batch_size)])
        model_file = os.path.join(folder, export.read_settings(folder)["model_file"])
        scores[name] = {"dev": glue_metrics.compute(spec.metrics, task_dev.labels, logits),
                        "bytes": os.path.getsize(model_file)}
    return scores


def predict(context: RunContext, spec: TaskSpec, tokenizer) -> None:
    """Labels --predict_file into --output_file with the best student.

    Raises:
        ValueError, DataError: no files named, an unknown output format, a file without
            rows or with a malformed one (file and line named).
    """
    data = context.config.data
    if not data.predict_file or not data.output_file:
        raise ValueError("--mode=predict needs --predict_file and --output_file.")
    if spec.files:
        predictions.check_output_format(data.output_file)
        rows, skipped = own_files.read_own_rows(data.predict_file, spec.text_fields, None,
                                                data.skip_bad_rows)
        examples = [Example(row.text_a, row.text_b, 0) for row in rows]
    else:
        examples, skipped = glue.read_glue_tsv(data.predict_file, spec, data.skip_bad_rows)
    if not examples:
        raise DataError(f"{data.predict_file} has no rows to predict.")
    student = load_student(context, spec)
    features = tokenize(examples, tokenizer, data.max_seq_length,
                        regression=spec.is_regression)
    logits = inference.predict_logits(student, features, data.eval_batch_size)
    write = predictions.write_own if spec.files else predictions.write_glue
    write(data.output_file, logits, spec.labels)
    print(f"Wrote {len(logits)} predictions to {data.output_file}"
          + (f" ({skipped} malformed rows skipped)." if skipped else "."))
