"""Helper for test_distribute.py, run in its own process: TensorFlow must split the CPU
into two logical devices before it initialises.

Prints the largest difference between the student weights after one SGD step under
MirroredStrategy (2 replicas) and after one step without distribution, on the same
global batch, and the largest weight change of the step (to show it did something).
"""

import kd_keras  # noqa: F401
import numpy as np
import tensorflow as tf

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])

import tf_keras  # noqa: E402

from kd_keras import distribute, distiller, models, schedules  # noqa: E402


def one_step(strategy, x, y):
    with strategy.scope():
        config = models.bert_config(97, 2, num_layers=4, hidden_size=48, num_heads=3,
                                    intermediate_size=60, dropout=0.0)
        teacher = models.build_model(config, seed=11)
        mapping = models.layer_mapping(4, 2)
        student = models.derive_student(teacher, 2, mapping)
        stages = schedules.build_schedule("all", 2, 1, 1)
        model = distiller.Distiller(student, teacher, mapping, stages)
        model.compile(optimizer=tf_keras.optimizers.SGD(0.5))
        model.build_optimizer()
    before = [v.numpy().copy() for v in model.trainable_student_variables]
    dataset = tf.data.Dataset.from_tensors((x, y))  # one global batch of 8
    model.fit(dataset, epochs=1, verbose=0)
    after = [v.numpy() for v in model.trainable_student_variables]
    return before, after


rng = np.random.RandomState(0)
ids = rng.randint(5, 97, size=(8, 10)).astype(np.int32)
mask = np.ones((8, 10), np.int32)
mask[4:, 7:] = 0
x = {"input_ids": ids * mask, "attention_mask": mask,
     "token_type_ids": np.zeros((8, 10), np.int32)}
y = rng.randint(0, 2, size=8).astype(np.int32)

mirrored = distribute.get_strategy("mirrored")
assert mirrored.num_replicas_in_sync == 2, mirrored.num_replicas_in_sync
start, single = one_step(distribute.get_strategy("default"), x, y)
_, multi = one_step(mirrored, x, y)
diff = max(float(np.abs(a - b).max()) for a, b in zip(single, multi))
moved = max(float(np.abs(a - b).max()) for a, b in zip(start, single))
print(f"max_weight_diff={diff:.3e} max_update={moved:.3e}")
