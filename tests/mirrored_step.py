"""Helper for test_distribute.py, run in its own process (TensorFlow must split the CPU
into two logical devices before it starts): one SGD step of the Keras 3 Distiller under
MirroredStrategy (2 replicas) against one step without distribution, same global batch.

Prints the largest student-weight difference and the largest update of the step.
"""

import numpy as np
import tensorflow as tf

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])

import keras  # noqa: E402

from kd_keras import config, distiller, encoders, schedules  # noqa: E402
from kd_keras.encoders import EncoderConfig  # noqa: E402

TEACHER = EncoderConfig("bert", 97, 48, 4, 3, 60, max_positions=64, hidden_dropout=0.0,
                        attention_dropout=0.0, classifier_dropout=0.0)


def one_step(strategy, x, y):
    with strategy.scope():
        keras.utils.set_random_seed(11)
        teacher = encoders.build(TEACHER)
        student = encoders.build(TEACHER.replace(num_layers=2, hidden_size=36, num_heads=3,
                                                 intermediate_size=40))
        mapping = [(1, 2), (2, 4)]
        model = distiller.Distiller(student, teacher, schedules.build(
            config.DistillConfig(schedule="all", epochs=1, epochs_per_stage=1), mapping))
        model.compile(optimizer=keras.optimizers.SGD(0.5))
        model.build_optimizer()
    before = [v.numpy().copy() for v in model.trainable_student_variables]
    model.fit(tf.data.Dataset.from_tensors((x, y)), epochs=1, verbose=0)
    return before, [v.numpy() for v in model.trainable_student_variables]


rng = np.random.RandomState(0)
ids = rng.randint(5, 97, size=(8, 10)).astype(np.int32)
mask = np.ones((8, 10), np.int32)
mask[4:, 7:] = 0
x = {"input_ids": ids * mask, "attention_mask": mask,
     "token_type_ids": np.zeros((8, 10), np.int32)}
y = rng.randint(0, 2, size=8).astype(np.int32)

mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
start, single = one_step(tf.distribute.get_strategy(), x, y)
_, multi = one_step(mirrored, x, y)
diff = max(float(np.abs(a - b).max()) for a, b in zip(single, multi))
moved = max(float(np.abs(a - b).max()) for a, b in zip(start, single))
print(f"max_weight_diff={diff:.3e} max_update={moved:.3e}")
