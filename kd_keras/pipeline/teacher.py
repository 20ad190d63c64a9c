"""The fine-tuned teacher: one an earlier run fine-tuned into the chief's model_dir,
--teacher as given (--teacher_finetuned), or fine-tuned now and saved to
model_dir/teacher."""

from __future__ import annotations

import json
import os

from kd_keras import backup, distiller, files, models, schedules
from kd_keras.config import TINY_TEACHER
from kd_keras.encoders import EncoderClassifier
from kd_keras.pipeline import training
from kd_keras.pipeline.context import RunContext
from kd_keras.pipeline.inputs import TaskData


def is_finetuned(context: RunContext) -> bool:
    """Whether the chief's model_dir already holds a teacher fine-tuned on this task."""
    marker = context.shared_path("teacher", models.TASK_MARKER)
    if not os.path.exists(marker):
        return False
    with open(marker, encoding="utf-8") as handle:
        return json.load(handle).get("task") == context.config.data.task


def load(context: RunContext, task: TaskData) -> EncoderClassifier:
    """The fine-tuned teacher from model_dir, or --teacher as given (the tiny teacher
    built from random weights)."""
    config, spec = context.config, task.spec
    if is_finetuned(context):
        return models.load_pretrained(context.shared_path("teacher"), spec.num_labels,
                                      context.cache_dir)
    if config.model.teacher == TINY_TEACHER:
        m = config.model
        bert = models.bert_config(len(task.tokenizer.get_vocab()), spec.num_labels,
                                  num_layers=m.tiny_layers, hidden_size=m.tiny_hidden_size,
                                  num_heads=m.tiny_heads, max_position_embeddings=
                                  max(128, config.data.max_seq_length))
        return models.build_model(bert, seed=config.train.seed)
    return models.load_pretrained(config.model.teacher, spec.num_labels, context.cache_dir)


def train(context: RunContext, task: TaskData) -> EncoderClassifier:
    """Fine-tunes the teacher on the task and saves the best epoch's to model_dir/teacher."""
    config = context.config
    epochs = config.train.teacher_epochs
    with context.strategy.scope():
        teacher = load(context, task)
        model = distiller.Distiller(teacher, None,
                                    schedules.finetune(epochs, task.spec.is_regression))
    print(f"Fine-tuning the teacher ({teacher.num_layers} layers, "
          f"{models.count_params(teacher):,} parameters) for {epochs} epochs.")
    best_dir = context.path("teacher")
    fit_info = training.fit(context, model, task, config.train.teacher_learning_rate,
                            "teacher", [training.keep_best(context, task, teacher, best_dir)],
                            best_dir)
    # Only a finished fine-tuning counts as a fine-tuned teacher (an interrupted one
    # resumes from its backup instead), so the backup goes once the marker is written.
    files.write_json(os.path.join(best_dir, models.TASK_MARKER),
                     {"task": task.spec.name, "dev": fit_info["best_epoch"],
                      "dev_history": fit_info["dev_history"]})
    training.remove_backup(context, "teacher")
    with context.strategy.scope():
        return models.load_pretrained(best_dir, task.spec.num_labels, context.cache_dir)


def ensure(context: RunContext, task: TaskData) -> EncoderClassifier:
    """The fine-tuned teacher: found in model_dir, given as fine-tuned, or trained now."""
    if is_finetuned(context) or context.config.model.teacher_finetuned:
        if is_finetuned(context) and context.is_chief:
            # Left by a run killed between the teacher's marker and the backup's removal.
            backup.discard(context.shared_path("backup"), "teacher")
        with context.strategy.scope():
            return load(context, task)
    return train(context, task)
