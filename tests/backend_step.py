"""Helper for test_backends.py, run in its own process on the backend KERAS_BACKEND names
(the backend is fixed when Keras is first imported).

    KERAS_BACKEND=jax python tests/backend_step.py WEIGHTS.npz OUT.npz

Builds a tiny teacher and a narrower student (so the [CLS] projections are used), loads
both models' weights from WEIGHTS.npz when it exists (and writes them there when it does
not: the first backend run makes them), then for each case -- the `all` step, a sid
internal stage, a pid stage with the lower layers frozen, the classifier stage with the
warm-up restarted at its start (--stage_warmup) -- runs one
AdamW train step from the same starting weights with dropout off and writes every loss
term the step reported and the student's weights after it to OUT.npz.  On JAX also the
`all` step on the batch filled up with zero-weight rows ("all_filled"), as JAX's numpy
batches fill a short batch (both backends take example weights), and on the batch with
two examples without a label ("all_unlabelled").
"""

import os
import sys

import numpy as np

import keras  # noqa: E402

from kd_keras import config, distiller, encoders, optimization, schedules  # noqa: E402
from kd_keras.encoders import EncoderConfig  # noqa: E402

# A wide initializer, so attention is far from uniform and the terms far from 0.
TEACHER = EncoderConfig("bert", 97, 48, 4, 3, 60, max_positions=64, hidden_dropout=0.0,
                        attention_dropout=0.0, classifier_dropout=0.0, initializer_range=0.3)
STUDENT = TEACHER.replace(num_layers=2, hidden_size=36, intermediate_size=40)
MAPPING = [(1, 2), (2, 4)]
# (name, schedule, stage index, freeze_lower_layers, stage warm-up)
CASES = [("all", "all", 0, False, False), ("sid_stage_1", "sid", 0, False, False),
         ("pid_stage_2_frozen", "pid", 1, True, False),
         ("sid_classifier_stage_warmup", "sid", 2, False, True)]


def batch():
    rng = np.random.RandomState(0)
    ids = rng.randint(5, 97, size=(6, 10)).astype(np.int32)
    mask = np.ones((6, 10), np.int32)
    mask[3:, 7:] = 0
    x = {"input_ids": ids * mask, "attention_mask": mask,
         "token_type_ids": (np.arange(10)[None, :] >= 5).astype(np.int32) * mask}
    return x, rng.randint(0, 2, size=6).astype(np.int32)


def models(weights_path):
    keras.utils.set_random_seed(3)
    teacher, student = encoders.build(TEACHER), encoders.build(STUDENT)
    if os.path.exists(weights_path):
        saved = np.load(weights_path)
        for prefix, model in (("t", teacher), ("s", student)):
            for k, variable in enumerate(model.weights):
                variable.assign(saved[f"{prefix}{k}"])
    else:
        np.savez(weights_path, **{f"{prefix}{k}": np.asarray(v)
                                  for prefix, model in (("t", teacher), ("s", student))
                                  for k, v in enumerate(model.weights)})
    return teacher, student


def one_step(name, schedule, stage, freeze, stage_warmup, weights_path, x, y, found,
             sample_weight=None):
    teacher, student = models(weights_path)
    method = config.DistillConfig(schedule=schedule, epochs=1, epochs_per_stage=1,
                                  freeze_lower_layers=freeze)
    model = distiller.Distiller(student, teacher, schedules.build(method, MAPPING))
    rng = np.random.RandomState(7)
    for _, projection in sorted(model.projections.items()):  # the same start on both
        projection.kernel.assign(rng.normal(0, 0.2, projection.kernel.shape).astype(np.float32))
        projection.bias.assign(np.zeros(projection.bias.shape, np.float32))
    model.compile(optimizer=optimization.make_optimizer(
        1e-3, 100, 0.1 if stage_warmup else 0.0, 0.01,
        model.stage_start if stage_warmup else None))
    model.build_optimizer()
    if stage_warmup:  # the stage began at step 5; this is step 7: 2/10 of the warm-up
        model.optimizer.iterations.assign(5)
        model.set_stage(stage)
        model.optimizer.iterations.assign(7)
    else:
        model.set_stage(stage)
    logs = model.train_on_batch(x, y, sample_weight=sample_weight, return_dict=True)
    for term, value in logs.items():
        found[f"{name}/{term}"] = np.float64(value)
    for k, variable in enumerate(model.trainable_student_variables):
        found[f"{name}/weight{k}"] = np.asarray(variable)


def filled(x, y):
    """The batch with two zero-weight filler rows (copies of rows 0 and 1), as
    the JAX backend's numpy batches fill a short batch: (x, y, weights)."""
    rows = np.resize(np.arange(len(y)), len(y) + 2)
    weights = (np.arange(len(rows)) < len(y)).astype(np.float32)
    return {k: v[rows] for k, v in x.items()}, y[rows], weights


def main(weights_path, out_path):
    x, y = batch()
    found = {}
    for case in CASES:
        one_step(*case, weights_path, x, y, found)
    x_filled, y_filled, weights = filled(x, y)
    one_step("all_filled", "all", 0, False, False, weights_path, x_filled, y_filled, found,
             sample_weight=weights)
    # Text without labels (transfer text, augmented copies): the last two examples.
    unlabelled = {"labels": y, "label_weights": np.array([1, 1, 1, 1, 0, 0], np.float32)}
    one_step("all_unlabelled", "all", 0, False, False, weights_path, x, unlabelled, found)
    np.savez(out_path, backend=keras.backend.backend(), **found)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
