"""The best student put to use: exported as a SavedModel, or labelling a file."""

from __future__ import annotations

import os
from typing import Optional

from kd_keras import models, predictions, tokenization
from kd_keras.data import glue, own_files
from kd_keras.data.examples import Example
from kd_keras.errors import DataError
from kd_keras.data.features import tokenize
from kd_keras.encoders import EncoderClassifier
from kd_keras.pipeline import inference
from kd_keras.pipeline.context import RunContext
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


def export_student(context: RunContext, spec: TaskSpec, student: EncoderClassifier,
                   tokenizer, version: Optional[int] = None) -> str:
    """Exports the student as a SavedModel (TensorFlow); returns the version folder."""
    from kd_keras import export  # TensorFlow: imported only by runs that export

    labels = list(spec.labels) if spec.labels else ["score"]
    lower = bool(getattr(tokenizer, "do_lower_case", True))
    wordpiece = tokenization.is_wordpiece(tokenizer)
    if not wordpiece:
        print("Note: the raw-text signature needs a WordPiece vocabulary; this model's "
              "tokenizer is BPE, so the export has serving_default (token ids) only.")
    return export.export_student(student, models.vocab_tokens(tokenizer), labels,
                                 context.export_dir, context.config.data.max_seq_length,
                                 spec.is_pair, version=version, lower_case=lower,
                                 text_signature=wordpiece)


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
