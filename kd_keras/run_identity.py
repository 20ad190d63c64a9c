"""What a model_dir holds, so that two different runs never share one.

A run's identity is its data (GLUE task and folder, or the user's files, fields and
labels), its teacher source, its tokenizer (a digest of the vocabulary and casing) and,
for modes that train a student, the student's shape and the schedule.  The first run
records it in ``model_dir/run_identity.json``; a later run whose identity differs in any
part both know is refused before it writes anything, and a matching run (the same
command again, a resume, or another mode on the same folder) adds what it knows.
"""

from __future__ import annotations

import json
import os
from typing import Dict, Optional, Sequence

from kd_keras import config as config_lib
from kd_keras import files
from kd_keras.errors import RunMismatch

IDENTITY_FILE = "run_identity.json"
STUDENT_MODES = ("pipeline", "distill")


def _folder_or_name(source: str) -> str:
    """Local folders by absolute path (so ./t and /abs/t are one teacher), other names as
    they are (minilm, hub names)."""
    return os.path.abspath(source) if os.path.isdir(source) else source


def describe(config: config_lib.RunConfig, tokenizer_digest: Optional[str] = None,
             labels: Optional[Sequence[str]] = None) -> Dict[str, object]:
    """The identity of a run, for the parts its mode uses.

    Args:
        config: the run's configuration.
        tokenizer_digest: tokenization.tokenizer_digest of the loaded tokenizer, once known.
        labels: the class names of the task, once known (own data reads them from the
            training file).

    Returns:
        part name -> JSON-serialisable value.
    """
    d, m = config.data, config.model
    if d.own_data:
        data = {"train_file": os.path.abspath(d.train_file),
                "dev_file": os.path.abspath(d.dev_file), "text_fields": list(d.text_fields),
                "label_field": d.label_field, "task_type": d.task_type}
    else:
        data = {"task": d.task,
                "data_dir": os.path.abspath(d.data_dir) if d.data_dir else None}
    teacher: object = _folder_or_name(m.teacher)
    if m.teacher == config_lib.TINY_TEACHER:
        teacher = {"tiny": [m.tiny_layers, m.tiny_hidden_size, m.tiny_heads]}
    identity: Dict[str, object] = {"data": data, "teacher": teacher}
    if config.mode in STUDENT_MODES:
        identity["student"] = {
            "pretrained": _folder_or_name(m.student) if m.student else None,
            "layers": None if m.student else m.student_layers,
            "hidden_size": m.student_hidden_size, "init": m.student_init,
            "layer_map": list(m.layer_map) if m.layer_map else None}
        identity["schedule"] = config.distill.schedule
        identity["method"] = {"internal_losses": list(config.distill.internal_losses),
                              "freeze_lower_layers": config.distill.freeze_lower_layers,
                              "stage_warmup": config.distill.stage_warmup}
        identity["added_text"] = {
            "transfer_file": os.path.abspath(d.transfer_file) if d.transfer_file else None,
            "transfer_fields": list(d.transfer_fields or d.text_fields)
            if d.transfer_file else None,
            "transfer_task": d.transfer_task,
            "max_transfer_examples": d.max_transfer_examples,
            "augment": d.augment, "augment_method": d.augment_method if d.augment else None,
            "augment_seed": config.train.seed if d.augment else None}
        if d.augment and d.augment_method == "mlm":  # only then: older records match
            identity["added_text"]["augment_model"] = _folder_or_name(
                d.augment_model or m.teacher)
        if d.augment and d.augment_labels != config_lib.DataConfig().augment_labels:
            # Only when set: folders recorded before the option existed still match.
            identity["added_text"]["augment_labels"] = d.augment_labels
    if tokenizer_digest is not None:
        identity["tokenizer"] = tokenizer_digest
    if labels is not None:
        identity["labels"] = list(labels)
    return identity


def recorded(model_dir: str) -> Dict[str, object]:
    """The identity recorded in model_dir ({} for a new folder).

    A folder written before identities were recorded has only config.json: its identity
    is derived from that.
    """
    path = os.path.join(model_dir, IDENTITY_FILE)
    if os.path.exists(path):
        return files.read_record(path, _identity)
    legacy = os.path.join(model_dir, "config.json")
    if os.path.exists(legacy):
        return describe(files.read_record(legacy, config_lib.from_json))
    return {}


def _identity(text: str) -> Dict[str, object]:
    identity = json.loads(text)
    if not isinstance(identity, dict):
        raise ValueError("not a JSON object")
    return identity


def _show(value: object) -> str:
    return json.dumps(value, sort_keys=True)


def check(model_dir: str, identity: Dict[str, object]) -> None:
    """Refuses a run whose identity differs from the one model_dir records.

    Only the parts both know are compared: a teacher-only run and a later distillation of
    that teacher in the same folder match.

    Raises:
        RunMismatch: one line naming the folder, what differs, and what to do.
    """
    _refuse_if_different(model_dir, recorded(model_dir), identity)


def _refuse_if_different(model_dir: str, record: Dict[str, object],
                         identity: Dict[str, object]) -> None:
    differences = [f"{part}: {_show(record[part])} there, {_show(value)} now"
                   for part, value in identity.items()
                   if part in record and record[part] != value]
    if differences:
        same_teacher = all(record.get(part) == identity.get(part)
                           for part in ("data", "teacher", "tokenizer", "labels"))
        hint = (f" To distil its fine-tuned teacher another way, pass --teacher="
                f"{os.path.join(model_dir, 'teacher')} --teacher_finetuned with the new folder."
                if same_teacher and os.path.isdir(os.path.join(model_dir, "teacher")) else "")
        raise RunMismatch(
            f"--model_dir={model_dir} holds another run ({'; '.join(differences)}). Pass a "
            "new --model_dir (or leave it unset for one per task and schedule), or delete "
            f"that folder to start over.{hint}")


def record(model_dir: str, identity: Dict[str, object]) -> None:
    """Checks identity against model_dir, then records what this run adds, atomically."""
    existing = recorded(model_dir)
    _refuse_if_different(model_dir, existing, identity)
    files.write_json(os.path.join(model_dir, IDENTITY_FILE), dict(existing, **identity))
