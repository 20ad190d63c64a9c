"""The student: cut from the teacher (or --student, checked against it), distilled over
the method's schedule, the best epoch's kept in model_dir/student.

A finished distillation is recorded in model_dir/distilled.json with the settings that
made it: the same command run again (after a kill past the end of training, say) finds
the student there instead of distilling a second one, and any change to those settings
distils anew.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

from kd_keras import backup, distiller, files, models, schedules, tensorboard_logs
from kd_keras.config import RunConfig
from kd_keras.data.features import Features, concatenate
from kd_keras.encoders import EncoderClassifier
from kd_keras.pipeline import logit_cache, training
from kd_keras.pipeline.context import RunContext
from kd_keras.pipeline.inputs import TaskData


def build_student(context: RunContext, teacher: EncoderClassifier,
                  tokenizer) -> Tuple[EncoderClassifier, List[Tuple[int, int]]]:
    """The student (cut from the teacher, or --student checked against it) and the
    layer mapping [(student layer, teacher layer)]."""
    m = context.config.model
    if m.student:
        student = models.load_student(m.student, teacher, tokenizer, context.cache_dir)
        return student, models.layer_mapping(teacher.num_layers, student.num_layers,
                                             m.layer_map)
    mapping = models.layer_mapping(teacher.num_layers, m.student_layers, m.layer_map)
    student = models.derive_student(teacher, m.student_layers, mapping,
                                    hidden_size=m.student_hidden_size, init=m.student_init,
                                    seed=context.config.train.seed)
    return student, mapping


RECORD = "distilled.json"
# Settings that do not change the student a distillation makes: how the run is used and
# where its outputs go.
NOT_THE_STUDENTS = ("data.eval_batch_size", "data.speed_seconds",
                    "data.predict_file", "data.output_file", "train.model_dir",
                    "train.export_dir", "train.export_version", "train.export_formats",
                    "train.text_signature", "train.cache_dir")


def settings(config: RunConfig) -> Dict[str, object]:
    """"section.field" -> value of every setting that shapes the distilled student."""
    flat = {}
    for section in ("data", "model", "distill", "train"):
        for name, value in dataclasses.asdict(getattr(config, section)).items():
            flat[f"{section}.{name}"] = list(value) if isinstance(value, tuple) else value
    return {name: value for name, value in flat.items() if name not in NOT_THE_STUDENTS}


def _record(text: str) -> Dict:
    record = json.loads(text)
    if not isinstance(record, dict) or not {"settings", "fit"} <= set(record):
        raise ValueError("lacks settings or fit")
    return record


def finished(context: RunContext) -> Optional[Dict]:
    """The chief's record of a finished distillation by these same settings, with its
    student in place, or None.

    Raises:
        UserError: the record is damaged (files.read_record names it).
    """
    path = context.shared_path(RECORD)
    if not os.path.exists(path):
        return None
    record = files.read_record(path, _record)
    now, defaults = settings(context.config), settings(RunConfig())
    # A setting added after the record was written counts as its default there.
    changed = sorted(name for name in set(now) | set(record["settings"])
                     if now.get(name) != record["settings"].get(name, defaults.get(name)))
    if changed:
        flags = ", ".join(f"--{name.split('.')[-1]}" for name in changed)
        print(f"Distilling again: {flags} changed since the student in "
              f"{context.shared_path('student')} was distilled.")
        return None
    if not os.path.isdir(context.shared_path("student")):
        return None
    return record


def recorded_export(context: RunContext) -> Optional[int]:
    """The export version this folder's distillation record names (None: none yet, no
    record here, or --export_version asks for another)."""
    path = context.path(RECORD)
    if not os.path.exists(path):
        return None
    version = files.read_record(path, _record).get("export_version")
    wanted = context.config.train.export_version
    return version if wanted in (None, version) else None


def note_export(context: RunContext, version: int) -> None:
    """Records the version the distilled student is about to be exported under, so that
    a rerun completes that version instead of writing another (no-op without a record:
    other workers)."""
    path = context.path(RECORD)
    if os.path.exists(path):
        files.write_json(path, dict(files.read_record(path, _record), export_version=version))


def distill(context: RunContext, task: TaskData, teacher: EncoderClassifier,
            added: Sequence[Features] = ()) -> Tuple[EncoderClassifier, Dict]:
    """Distils the teacher into a new student and saves the best one (by dev metric, over
    the epochs that train the classifier) to model_dir/student; a distillation this
    folder records as finished with the same settings is not run again (its student and
    fit record are returned).

    Args:
        context, task, teacher: the run, its data, the fine-tuned teacher.
        added: text to distil on beside task.train (transfer text and augmented copies:
            pipeline.transfer); joined to it on disk, not in memory.

    Returns:
        (the best student, {"history", "stages", "best_epoch", "dev_history"}).
    """
    config = context.config
    record = finished(context)
    if record is not None:
        print(f"The student in {context.shared_path('student')} was distilled by these same "
              f"settings; using it (delete {context.shared_path(RECORD)} to distil again).")
        if context.is_chief:  # left by a run killed between the record and its removal
            backup.discard(context.shared_path("backup"), "distill")
        with context.strategy.scope():
            return models.load_pretrained(context.shared_path("student"),
                                          task.spec.num_labels, context.cache_dir), record["fit"]
    if context.is_chief and os.path.exists(context.path(RECORD)):
        os.remove(context.path(RECORD))  # another distillation's: this one replaces it
    method = config.distill
    with context.strategy.scope():
        student, mapping = build_student(context, teacher, task.tokenizer)
        schedule = schedules.build(method, mapping, task.spec.is_regression)
        model = distiller.Distiller(student, None if method.schedule == "finetune"
                                    else teacher, schedule)
    print(f"Distilling {teacher.num_layers} -> {student.num_layers} layers with schedule "
          f"'{method.schedule}', layer pairs (student, teacher): {mapping}.")
    student_dir = context.path("student")
    extras = [training.keep_best(context, task, student, student_dir,
                                 config.train.early_stopping_patience)]
    if method.schedule != "finetune":
        hparams = {"schedule": method.schedule, "lambda": method.hard_label_weight,
                   "temperature": method.temperature,
                   "internal_losses": ",".join(method.internal_losses),
                   "teacher_layers": teacher.num_layers, "student_layers": student.num_layers,
                   "kd_every_stage": method.kd_every_stage,
                   "learning_rate": config.train.learning_rate, "seed": config.train.seed}
        example = {name: values[None] for name, values in task.dev.row(0).items()}
        extras.append(tensorboard_logs.TensorBoardExtras(context.path("logs", "distill"),
                                                         hparams, example))
    train = concatenate([task.train, *added], context.cache_dir) if added else task.train
    logits = None
    if method.cache_teacher_logits and model.reads_teacher_logits:
        logits = logit_cache.teacher_logits(teacher, train, config.data.eval_batch_size,
                                            context.cache_dir)
    fit_info = training.fit(context, model, task, config.train.learning_rate, "distill",
                            extras, student_dir, train, logits)
    if context.is_chief:
        files.write_json(context.path(RECORD), {"settings": settings(config), "fit": fit_info})
    training.remove_backup(context, "distill")
    with context.strategy.scope():
        best = models.load_pretrained(student_dir, task.spec.num_labels, context.cache_dir)
    return best, fit_info
