"""The same distillation on Keras' TensorFlow and JAX backends.

Each backend runs in its own process (tests/backend_step.py): one AdamW step of four
stages from the same weights must report the same loss terms and leave the same
weights.  Two autodiff engines agreeing also checks each one's gradients.
"""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from kd_keras import config, distiller, schedules
from conftest import make_batch, tiny_teacher

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def run_step(backend, weights, out):
    result = subprocess.run(
        [sys.executable, os.path.join(HERE, "backend_step.py"), str(weights), str(out)],
        capture_output=True, text=True, timeout=300, cwd=REPO,
        env=dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=REPO))
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    return np.load(out)


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_one_step_gives_the_same_terms_and_weights_on_tensorflow_and_jax(tmp_path):
    weights = tmp_path / "weights.npz"
    on_tf = run_step("tensorflow", weights, tmp_path / "tf.npz")
    on_jax = run_step("jax", weights, tmp_path / "jax.npz")
    assert str(on_tf["backend"]) == "tensorflow" and str(on_jax["backend"]) == "jax"
    assert sorted(on_tf.files) == sorted(on_jax.files)
    filled = [n for n in on_jax.files if n.startswith("all_filled/")]
    names = sorted(set(on_tf.files) - {"backend"} - set(filled))
    terms = [n for n in names if "/weight" not in n]
    assert any("att_kl" in n for n in terms) and any("cos" in n for n in terms)
    for name in terms:
        assert abs(float(on_tf[name]) - float(on_jax[name])) <= 1e-5, name
        assert name.endswith(("/stage", "/accuracy")) or float(on_tf[name]) > 1e-2, name
    start = np.load(weights)
    for name in (n for n in names if "/weight" in n):
        np.testing.assert_allclose(on_jax[name], on_tf[name], atol=1e-5, err_msg=name)
    # The step moved the weights (by about the learning rate), so agreement means
    # something: the student's word embeddings are its first weight.
    assert np.abs(on_tf["all/weight0"] - start["s0"]).max() > 5e-4
    # Filler rows of weight 0 change nothing: the filled batch's step is the plain one,
    # on either backend.
    assert len(filled) == len([n for n in names if n.startswith("all/")])
    for name in filled:
        for run in (on_jax, on_tf):
            np.testing.assert_allclose(run[name], on_tf[name.replace("all_filled/", "all/")],
                                       atol=1e-5, err_msg=name)
    # Two examples without a label: the gold-label term reads the other four alone.
    assert abs(float(on_tf["all_unlabelled/hard"]) - float(on_tf["all/hard"])) > 1e-4
    assert float(on_tf["all_unlabelled/soft"]) == pytest.approx(float(on_tf["all/soft"]),
                                                                abs=1e-6)
    # With the lower layers frozen, pid's stage 2 left the embeddings alone on both.
    np.testing.assert_array_equal(on_jax["pid_stage_2_frozen/weight0"], start["s0"])
    np.testing.assert_array_equal(on_tf["pid_stage_2_frozen/weight0"], start["s0"])


@pytest.mark.parametrize("schedule", ["all", "pid", "sid", "kd", "finetune"])
@pytest.mark.parametrize("freeze", [False, True])
@pytest.mark.parametrize("internal", [("attention_kl", "cls_cosine"), ("attention_kl",)])
def test_step_variables_are_the_ones_tensorflow_finds_a_gradient_for(schedule, freeze,
                                                                     internal):
    """With attention KL alone, a stage's deepest layer moves only its query and key."""
    import tensorflow as tf

    teacher = tiny_teacher(num_layers=4, dropout=0.0)
    student = tiny_teacher(num_layers=2, dropout=0.0, hidden_size=36, seed=2)
    mapping = [(1, 2), (2, 4)]
    method = config.DistillConfig(schedule=schedule, epochs=1, epochs_per_stage=1,
                                  internal_losses=internal, freeze_lower_layers=freeze)
    model = distiller.Distiller(student, None if schedule == "finetune" else teacher,
                                schedules.build(method, mapping))
    x, y = make_batch()
    for stage in model.stages:
        active = stage.terms
        teacher_outputs = model.teacher_outputs(x, active)
        variables = model.stage_variables(stage)
        with tf.GradientTape() as tape:
            total, _, _ = model.compute_terms(x, y, active, teacher_outputs, training=True)
            loss = tf.reduce_sum(total)
        gradients = tape.gradient(loss, variables)
        with_gradient = [v.path for v, g in zip(variables, gradients) if g is not None]
        assert with_gradient == [v.path for v in model.step_variables(stage)]
