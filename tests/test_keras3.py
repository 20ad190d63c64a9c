"""Keras 3 everywhere: importing kd_keras changes no global setting and pulls in neither
tf-keras nor a Hugging Face TF class; the loss-term flags reach the Distiller."""

import dataclasses
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import make_batch, tiny_teacher
from kd_keras import config as config_lib
from kd_keras import distiller, models, schedules

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

USER_SESSION = """
import os, sys
import kd_keras, kd_keras.main, kd_keras.pipeline, kd_keras.export
import numpy as np
import tensorflow as tf
import keras
assert "TF_USE_LEGACY_KERAS" not in os.environ, "kd_keras set TF_USE_LEGACY_KERAS"
assert tf.keras.__version__.split(".")[0] == "3", tf.keras.__version__
assert "tf_keras" not in sys.modules, "tf_keras was imported"
hf_tf = [m for m in sys.modules if m.startswith("transformers") and "modeling_tf" in m]
assert not hf_tf, hf_tf
# A user's own Keras 3 model still trains.
keras.utils.set_random_seed(0)
x = np.random.RandomState(0).normal(size=(64, 4)).astype("float32")
y = x @ np.array([1.0, -2.0, 0.5, 3.0], "float32")
model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(1)])
model.compile(optimizer=tf.keras.optimizers.SGD(0.1), loss="mse")
losses = model.fit(x, y, epochs=5, verbose=0).history["loss"]
assert losses[-1] < 0.1 * losses[0], losses
print("user session ok")
"""


def test_importing_kd_keras_leaves_a_users_keras_3_alone():
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["PYTHONPATH"] = REPO
    result = subprocess.run([sys.executable, "-c", USER_SESSION], capture_output=True,
                            text=True, timeout=300, env=env)
    assert result.returncode == 0 and "user session ok" in result.stdout, result.stderr[-3000:]


def test_tinybert_terms_are_a_flag_away_and_train():
    """--internal_losses=hidden_mse,attention_mse,embedding_mse: every sid stage gets the
    embedding MSE and the per-pair terms, and a step trains on them."""
    teacher = tiny_teacher(seed=2)
    mapping = models.layer_mapping(4, 2)
    student = models.derive_student(teacher, 2, mapping, hidden_size=36, init="random")
    tinybert = ("hidden_mse", "attention_mse", "embedding_mse")
    model = distiller.Distiller(student, teacher, schedules.build(config_lib.DistillConfig(
        schedule="sid", epochs=1, epochs_per_stage=1, internal_losses=tinybert), mapping))
    assert [t.name for t in model.stages[1].terms] == ["emb_mse", "hid_mse_s1_t2", "att_mse_s1_t2",
                                                 "hid_mse_s2_t4", "att_mse_s2_t4"]
    assert sorted(model.projections) == [0, 1, 2]  # widths differ: embeddings projected too
    pid = distiller.Distiller(student, teacher, schedules.build(config_lib.DistillConfig(
        schedule="pid", epochs=1, epochs_per_stage=1, internal_losses=("hidden_mse",
                                                                       "embedding_mse"),
        freeze_lower_layers=True), mapping))
    # pid trains one pair a stage: the embeddings only with the first; a frozen stage 2
    # trains layer 2 alone, not the embeddings the term would otherwise read.
    assert [[t.name for t in stage.terms] for stage in pid.stages[:2]] == [
        ["emb_mse", "hid_mse_s1_t2"], ["hid_mse_s2_t4"]]
    trained = {id(v) for v in pid.stage_variables(pid.stages[1])}
    assert not trained & {id(v) for v in student.embeddings.trainable_variables}
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.build_optimizer()
    model.set_stage(1)
    x, y = make_batch()
    logs = model.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"]) and logs["emb_mse"] > 0 and "att_kl_s1_t2" not in logs


def test_unknown_internal_loss_is_named_with_the_choices():
    config = config_lib.RunConfig()
    bad = dataclasses.replace(config, distill=dataclasses.replace(
        config.distill, internal_losses=("attention_kl", "magic")))
    with pytest.raises(ValueError, match="unknown term 'magic'; choose from attention_kl, "
                                         "cls_cosine, hidden_mse, attention_mse, embedding_mse"):
        config_lib.validate(bad)


def test_negative_speed_seconds_is_refused():
    config = config_lib.RunConfig()
    bad = dataclasses.replace(config, data=dataclasses.replace(config.data, speed_seconds=-1))
    with pytest.raises(ValueError, match="--speed_seconds must be 0 or more"):
        config_lib.validate(bad)
