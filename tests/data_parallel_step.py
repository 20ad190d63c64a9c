"""Helper for test_distribute.py, run in its own process on Keras' JAX backend with the
CPU split into two XLA devices (XLA_FLAGS must say so before JAX starts): two AdamW steps
of the Distiller, dropout on, without distribution and then data-parallel over the two
devices (--distribution_strategy=mirrored on JAX), from the same weights and seeds, on
a batch whose last rows are zero-weight fillers.

Prints the device count, how many devices hold a student variable, the largest student-weight difference between the two runs
and the largest update of the steps.
"""

import os

os.environ["KERAS_BACKEND"] = "jax"
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kd_keras import backends, config, distiller, encoders, optimization, schedules  # noqa: E402
from kd_keras.encoders import EncoderConfig  # noqa: E402

TEACHER = EncoderConfig("bert", 97, 48, 4, 3, 60, max_positions=64)  # dropout 0.1


def two_steps(x, y, weights):
    keras.utils.set_random_seed(11)
    teacher = encoders.build(TEACHER)
    student = encoders.build(TEACHER.replace(num_layers=2, hidden_size=36, num_heads=3,
                                             intermediate_size=40))
    model = distiller.Distiller(student, teacher, schedules.build(
        config.DistillConfig(schedule="all", epochs=1, epochs_per_stage=1), [(1, 2), (2, 4)]))
    model.compile(optimizer=optimization.make_optimizer(1e-3, 10, 0.0, 0.01))
    model.build_optimizer()
    before = [np.asarray(v).copy() for v in model.trainable_student_variables]
    for _ in range(2):
        logs = model.train_on_batch(x, y, sample_weight=weights, return_dict=True)
    assert np.isfinite(logs["loss"])
    holders = len(model.trainable_student_variables[0].value.sharding.device_set)
    return before, [np.asarray(v) for v in model.trainable_student_variables], holders


rng = np.random.RandomState(0)
ids = rng.randint(5, 97, size=(8, 10)).astype(np.int32)
mask = np.ones((8, 10), np.int32)
mask[4:, 7:] = 0
x = {"input_ids": ids * mask, "attention_mask": mask,
     "token_type_ids": np.zeros((8, 10), np.int32)}
y = rng.randint(0, 2, size=8).astype(np.int32)
weights = np.array([1, 1, 1, 1, 1, 1, 0, 0], np.float32)

start, single, _ = two_steps(x, y, weights)
strategy = backends.strategy("mirrored")
_, parallel, holders = two_steps(x, y, weights)
diff = max(float(np.abs(a - b).max()) for a, b in zip(single, parallel))
moved = max(float(np.abs(a - b).max()) for a, b in zip(start, single))
print(f"devices={strategy.num_replicas_in_sync} variable_on={holders} max_weight_diff={diff:.3e} "
      f"max_update={moved:.3e}")
