"""Teacher and student side by side on dev: the task's metrics, parameters, speed,
attention KL per matched pair, and the majority-class baseline a student must beat."""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from kd_keras import backends, distiller, models, schedules
from kd_keras import metrics as glue_metrics
from kd_keras.config import DistillConfig
from kd_keras.data.features import Features
from kd_keras.encoders import EncoderClassifier
from kd_keras.pipeline import inference
from kd_keras.pipeline.inputs import TaskData


def attention_kl_per_layer(teacher, student, mapping, dev: Features, is_regression: bool,
                           batch_size: int) -> Optional[Dict[str, float]]:
    """Attention KL of every matched pair on ``dev`` (None when head counts differ)."""
    if teacher.num_heads != student.num_heads:
        return None
    method = DistillConfig(schedule="all", internal_losses=("attention_kl",))
    probe = distiller.Distiller(student, teacher, schedules.build(
        method, mapping, is_regression))
    probe.compile()
    values = probe.evaluate(backends.make_dataset(dev, batch_size, training=False),
                            return_dict=True, verbose=0)
    return {name: float(values[name]) for name in sorted(values) if name.startswith("att_kl_")}


def majority_class(task: TaskData) -> Optional[Dict]:
    """The baseline that always predicts the training set's most frequent class, scored on
    dev (None for regression): what a student must beat on imbalanced data."""
    spec = task.spec
    if spec.is_regression:
        return None
    counts = np.bincount(task.train.labels, minlength=spec.num_labels)
    majority = int(np.argmax(counts))
    constant = np.eye(spec.num_labels)[np.full(len(task.dev), majority)]
    return {"label": spec.labels[majority],
            "train_share": float(counts[majority] / counts.sum()),
            "dev": glue_metrics.compute(spec.metrics, task.dev.labels, constant)}


def evaluate(task: TaskData, teacher: EncoderClassifier, student: EncoderClassifier,
             mapping: Sequence[Tuple[int, int]], batch_size: int,
             speed_seconds: float = 1.0) -> Tuple[Dict, Dict[str, np.ndarray]]:
    """Teacher and student on dev and every extra evaluation split.

    Args:
        task: the tokenized splits.
        teacher, student: the models.
        mapping: [(student layer, teacher layer)], the pairs attention KL is reported for.
        batch_size: evaluation batch size.
        speed_seconds: time each model's dev passes for at least this long.

    Returns:
        (report: dev metrics, parameter counts, layers, examples/s, attention KL per pair
        and mean, the majority-class baseline, the speed-up; per-example outputs for
        dev_predictions.npz: dev labels and both models' logits, float32 [n, labels]).
    """
    spec, batch = task.spec, batch_size
    report = {}
    models_by_name = {"teacher": teacher, "student": student}
    dev_logits, speeds = inference.logits_and_speeds(models_by_name, task.dev, batch,
                                                     min_seconds=speed_seconds)
    saved = {"labels": task.dev.labels, "teacher_logits": dev_logits["teacher"],
             "student_logits": dev_logits["student"]}
    for name, classifier in models_by_name.items():
        report[name] = {"dev": glue_metrics.compute(spec.metrics, task.dev.labels,
                                                    dev_logits[name], spec.is_regression),
                        "parameters": models.count_params(classifier),
                        "layers": classifier.num_layers,
                        "examples_per_second": speeds[name]}
        for split, features in task.extra_dev.items():
            logits = inference.predict_logits(classifier, features, batch)
            report[name][split] = glue_metrics.compute(spec.metrics, features.labels, logits,
                                                       spec.is_regression)
            saved[f"{split}_{name}_logits"] = logits
            saved[f"{split}_labels"] = features.labels
    report["majority_class"] = majority_class(task)
    per_layer = attention_kl_per_layer(teacher, student, mapping, task.dev,
                                       spec.is_regression, batch)
    report["student"]["attention_kl"] = per_layer
    report["student"]["attention_kl_mean"] = (None if per_layer is None
                                              else float(np.mean(list(per_layer.values()))))
    report["speedup"] = (report["student"]["examples_per_second"]
                         / report["teacher"]["examples_per_second"])
    return report, saved
