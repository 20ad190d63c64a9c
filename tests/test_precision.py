"""--mixed_precision and --xla: the step runs, losses stay float32 and match full precision."""

import keras
import numpy as np
import pytest

from conftest import make_batch, tiny_teacher
from kd_keras import config, distiller, models, schedules


def one_step(policy="float32", jit_compile=False):
    """(loss, distiller, student weights, update) after one `all` step of a fresh tiny pair
    under a dtype policy."""
    keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(0)
        teacher = tiny_teacher(seed=7, dropout=0.0)
        mapping = models.layer_mapping(4, 2)
        student = models.derive_student(teacher, 2, mapping)
        model = distiller.Distiller(student, teacher, schedules.build(
            config.DistillConfig(schedule="all", epochs=1, epochs_per_stage=1), mapping))
        model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=jit_compile)
        model.build_optimizer()
        x, y = make_batch()
        before = np.concatenate([w.numpy().ravel() for w in student.trainable_weights])
        # Dynamic loss scaling (float16) skips a step whose scaled gradients overflow and
        # halves the scale; Keras starts at 2 ** 15, which overflows once here.
        for _ in range(3):
            logs = model.train_on_batch(x, y, return_dict=True)
            after = [w.numpy() for w in student.trainable_weights]
            update = np.concatenate([w.ravel() for w in after]) - before
            if np.abs(update).max() > 0:
                break
        return logs["loss"], model, after, update
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="module")
def reference():
    return one_step()


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_step(policy, reference):
    loss, model, weights, update = one_step(policy)
    layer = model.student.encoder_layers[0]
    assert layer.compute_dtype == policy.split("_")[1]
    assert all(w.dtype == np.float32 for w in weights)  # variables stay float32
    if policy == "mixed_float16":
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    ref_loss, _, _, ref_update = reference
    np.testing.assert_allclose(loss, ref_loss, rtol=0.05)
    # The same update as in float32, up to half-precision rounding.
    cosine = update @ ref_update / (np.linalg.norm(update) * np.linalg.norm(ref_update))
    assert cosine > 0.98
    assert np.linalg.norm(update) > 0


def test_xla_step_matches(reference):
    loss, _, weights, _ = one_step(jit_compile=True)
    ref_loss, _, ref_weights, _ = reference
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    for got, want in zip(weights, ref_weights):
        np.testing.assert_allclose(got, want, atol=1e-5)
