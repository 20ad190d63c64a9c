"""The student: cut from the teacher (or --student, checked against it), distilled over
the method's schedule, the best epoch's kept in model_dir/student."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from kd_keras import distiller, models, schedules, tensorboard_logs
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


def distill(context: RunContext, task: TaskData, teacher: EncoderClassifier,
            unlabelled: Optional[Features] = None) -> Tuple[EncoderClassifier, Dict]:
    """Distils the teacher into a new student and saves the best one (by dev metric, over
    the epochs that train the classifier) to model_dir/student.

    Args:
        context, task, teacher: the run, its data, the fine-tuned teacher.
        unlabelled: text without labels to distil on beside task.train (transfer text,
            augmented copies; pipeline.transfer), or None.

    Returns:
        (the best student, {"history", "stages", "best_epoch", "dev_history"}).
    """
    config = context.config
    method = config.distill
    with context.strategy.scope():
        student, mapping = build_student(context, teacher, task.tokenizer)
        schedule = schedules.build(method, mapping, task.spec.is_regression)
        model = distiller.Distiller(student, None if method.schedule == "finetune"
                                    else teacher, schedule)
    print(f"Distilling {teacher.num_layers} -> {student.num_layers} layers with schedule "
          f"'{method.schedule}', layer pairs (student, teacher): {mapping}.")
    student_dir = context.path("student")
    evaluator = training.keep_best(context, task, student, student_dir,
                                   config.train.early_stopping_patience)
    extras = [evaluator]
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
    train = task.train if unlabelled is None else concatenate([task.train, unlabelled])
    logits = None
    if method.cache_teacher_logits and model.reads_teacher_logits:
        logits = logit_cache.teacher_logits(teacher, train, config.data.eval_batch_size,
                                            context.cache_dir)
    fit_info = training.fit(context, model, task, config.train.learning_rate, "distill",
                            extras, student_dir, train, logits)
    fit_info.update(best_epoch=evaluator.best, dev_history=evaluator.history)
    with context.strategy.scope():
        best = models.load_pretrained(student_dir, task.spec.num_labels, context.cache_dir)
    return best, fit_info
