"""The Keras 3 Distiller (TensorFlow backend): its terms against direct full forward
passes, what a step may change, and 2 mirrored replicas against 1."""

import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

from kd_keras import distiller_k3, encoders, losses, schedules, terms
from kd_keras.encoders import EncoderConfig

HERE = os.path.dirname(os.path.abspath(__file__))
TEACHER = EncoderConfig("bert", 97, 48, 4, 3, 60, max_positions=64)
MAPPING = [(1, 2), (2, 4)]


def models(student_hidden=48):
    keras.utils.set_random_seed(3)
    teacher = encoders.build(TEACHER)
    student = encoders.build(TEACHER.replace(num_layers=2, hidden_size=student_hidden,
                                             attention_dropout=0.0))
    return teacher, student


def batch(seed=0):
    rng = np.random.RandomState(seed)
    ids = rng.randint(5, 97, size=(6, 9)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[4:, 6:] = 0
    x = {"input_ids": ids * mask, "attention_mask": mask,
         "token_type_ids": np.zeros_like(ids)}
    return x, rng.randint(0, 2, size=6).astype(np.int32)


def sid_stages():
    return [distiller_k3.stage_terms(stage, MAPPING)
            for stage in schedules.build_schedule("sid", 2, 1, 1)]


@pytest.mark.parametrize("student_hidden", [48, 36])
def test_terms_equal_direct_computation_on_full_forward_passes(student_hidden):
    teacher, student = models(student_hidden)
    model = distiller_k3.Distiller(student, teacher, sid_stages())
    x, y = batch()
    t, s = teacher.forward(x), student.forward(x)  # everything, no shortcut
    project = model.projections.get
    stage_2 = model.stages[1]
    total, values, logits = model.compute_terms(x, y, stage_2,
                                                model.teacher_outputs(x, stage_2), False)
    assert logits is None  # internal stage: no head
    expected = {}
    for s_layer, t_layer in MAPPING:
        expected[f"att_kl_s{s_layer}_t{t_layer}"] = losses.attention_kl(
            t.attentions[t_layer - 1], s.attentions[s_layer - 1], x["attention_mask"], "none")
        cls = s.hidden_states[s_layer][:, 0]
        if project(s_layer) is not None:
            cls = project(s_layer)(cls)
        expected[f"cos_s{s_layer}_t{t_layer}"] = losses.cls_cosine_loss(
            t.hidden_states[t_layer][:, 0], cls, "none")
    assert set(values) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(np.asarray(values[name]), np.asarray(value), atol=1e-6)
    np.testing.assert_allclose(np.asarray(total), sum(np.asarray(v) for v in expected.values()),
                               atol=1e-5)
    # The classifier stage with the teacher's logits cached in the batch: no teacher pass.
    cached = distiller_k3.Distiller(student, teacher, sid_stages(), cached_teacher_logits=True)
    x_cached = dict(x, teacher_logits=np.asarray(t.logits))
    last = cached.stages[-1]
    assert cached.teacher_outputs(x_cached, last).hidden_states == []
    total, values, _ = cached.compute_terms(x_cached, y, last,
                                            cached.teacher_outputs(x_cached, last), False)
    soft = losses.soft_label_ce(t.logits, s.logits, reduction="none")
    hard = losses.hard_label_ce(y, s.logits, reduction="none")
    np.testing.assert_allclose(np.asarray(total), np.asarray(soft + 0.1 * hard), atol=1e-5)


def test_fit_trains_only_the_stage_and_never_the_teacher():
    teacher, student = models()
    model = distiller_k3.Distiller(student, teacher, sid_stages())
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    model.build_optimizer()
    teacher_before = [w.numpy().copy() for w in teacher.weights]
    student_before = {w.path: w.numpy().copy() for w in student.weights}
    x, y = batch()
    history = model.fit(x, y, batch_size=6, epochs=1, verbose=0).history
    assert history["loss"][0] > 0 and "att_kl_s1_t2" in history and "soft" not in history
    for before, after in zip(teacher_before, teacher.weights):
        np.testing.assert_array_equal(before, after.numpy())
    changed = {w.path for w in student.weights
               if not np.array_equal(student_before[w.path], w.numpy())}
    # Stage 1 trains the embeddings and layer 1 (layer_0) only.
    assert {p.split("/")[0] for p in changed} == {"embeddings", "layer_0"}, changed
    model.set_stage(2)
    history = model.fit(x, y, batch_size=6, epochs=1, verbose=0).history
    assert "soft" in history and "att_kl_s1_t2" not in history and history["stage"][0] == 3.0


def test_two_mirrored_replicas_make_the_single_device_update():
    result = subprocess.run([sys.executable, os.path.join(HERE, "mirrored_step_k3.py")],
                            capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, PYTHONPATH=os.path.dirname(HERE)))
    match = re.search(r"max_weight_diff=(\S+) max_update=(\S+)", result.stdout)
    assert match, result.stdout + result.stderr
    diff, update = float(match.group(1)), float(match.group(2))
    # A loss that Keras does not scale by the replica count would double the update.
    assert update > 1e-3 and diff <= 1e-5


def test_stage_terms_follow_the_schedule():
    stages = schedules.build_schedule("pid", 2, 1, 1)
    names = [[t.name for t in distiller_k3.stage_terms(stage, MAPPING)] for stage in stages]
    assert names == [["att_kl_s1_t2", "cos_s1_t2"], ["att_kl_s2_t4", "cos_s2_t4"],
                     ["soft", "hard"]]
    finetune = schedules.build_schedule("finetune", 2, 1, 1)[0]
    assert [type(t) for t in distiller_k3.stage_terms(finetune, MAPPING)] == [terms.HardLabel]
    tinybert = distiller_k3.stage_terms(schedules.build_schedule("all", 2, 1, 1)[0], MAPPING,
                                        internal=["hidden_mse", "attention_mse"])
    assert [t.name for t in tinybert] == ["soft", "hard", "hid_mse_s1_t2", "att_mse_s1_t2",
                                          "hid_mse_s2_t4", "att_mse_s2_t4"]


def distiller_with_dropout(seed):
    keras.utils.set_random_seed(seed)
    teacher = encoders.build(TEACHER)
    student = encoders.derive_student(teacher, 2, MAPPING)  # hidden dropout 0.1 stays on
    model = distiller_k3.Distiller(student, teacher, sid_stages()[-1:])
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    model.build_optimizer()
    return model


def test_restoring_every_variable_resumes_exactly_dropout_included():
    """Keras 3 keeps each dropout layer's seed-generator state in a variable: a backup of
    model and optimizer variables continues with the masks an uninterrupted run draws."""
    import tensorflow as tf

    x, y = batch()
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(2)  # 3 batches
    whole = distiller_with_dropout(seed=3)
    whole.fit(data, epochs=1, verbose=0)
    first = distiller_with_dropout(seed=3)
    first.fit(data.take(1), epochs=1, verbose=0)
    backup = [v.numpy() for v in first.variables + first.optimizer.variables]
    resumed = distiller_with_dropout(seed=99)  # another process, other initial seeds
    for variable, value in zip(resumed.variables + resumed.optimizer.variables, backup):
        variable.assign(value)
    resumed.fit(data.skip(1), epochs=1, verbose=0)
    seeds = [v for v in resumed.student.variables if "seed_generator" in v.path]
    assert len(seeds) >= 4  # the dropout layers' states are variables, so backups hold them
    for a, b in zip(whole.student.weights, resumed.student.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
    # Without the restored seed states the masks differ, and so do the weights.
    unseeded = distiller_with_dropout(seed=99)
    for variable, value in zip(unseeded.weights + unseeded.optimizer.variables,
                               [v.numpy() for v in first.weights + first.optimizer.variables]):
        variable.assign(value)
    unseeded.fit(data.skip(1), epochs=1, verbose=0)
    assert max(float(np.abs(a.numpy() - b.numpy()).max())
               for a, b in zip(whole.student.weights, unseeded.student.weights)) > 1e-5


def test_derived_student_copies_the_matched_teacher_layers():
    keras.utils.set_random_seed(1)
    teacher = encoders.build(TEACHER)
    student = encoders.derive_student(teacher, 2, MAPPING)
    assert student.num_layers == 2 and student.config.attention_dropout == 0.0
    for (s, t) in MAPPING:
        for a, b in zip(student.encoder_layers[s - 1].weights,
                        teacher.encoder_layers[t - 1].weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    for a, b in zip(student.head.weights + student.embeddings.weights,
                    teacher.head.weights + teacher.embeddings.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    narrow = encoders.derive_student(teacher, 2, MAPPING, hidden_size=36, init="random")
    assert narrow.hidden_size == 36 and narrow.config.intermediate_size == 144
    with pytest.raises(encoders.EncoderError, match="--student_init=random"):
        encoders.derive_student(teacher, 2, MAPPING, hidden_size=36)


def test_freeze_lower_layers_trains_one_layer_at_a_time():
    changed = {}
    for freeze in (False, True):
        teacher, student = models()
        stages = [distiller_k3.stage_terms(stage, MAPPING)
                  for stage in schedules.build_schedule("pid", 2, 1, 1)]
        model = distiller_k3.Distiller(student, teacher, stages, freeze_lower_layers=freeze)
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        model.build_optimizer()
        model.set_stage(1)  # pid stage 2: layer pair (2, 4)
        before = {w.path: w.numpy().copy() for w in student.weights}
        x, y = batch()
        model.fit(x, y, batch_size=6, epochs=1, verbose=0)
        changed[freeze] = {w.path.split("/")[0] for w in student.weights
                           if not np.array_equal(before[w.path], w.numpy())}
    assert changed[False] == {"embeddings", "layer_0", "layer_1"}
    assert changed[True] == {"layer_1"}


def test_stage_warmup_restarts_at_each_stage_and_otherwise_is_todays_schedule():
    from kd_keras import distiller

    plain = distiller_k3.StageWarmup(1e-3, total_steps=100, warmup_steps=10)
    today = distiller.WarmupLinearDecay(1e-3, 100, 10)
    for step in (0, 5, 10, 11, 60, 100, 120):
        assert float(plain(step)) == pytest.approx(float(today(step)), abs=1e-9), step
    start = keras.Variable(50, dtype="int64")
    restarting = distiller_k3.StageWarmup(1e-3, total_steps=100, warmup_steps=10,
                                          stage_start=start)
    assert float(restarting(50)) == 0.0
    assert float(restarting(55)) == pytest.approx(0.5 * float(today(55)))
    assert float(restarting(60)) == pytest.approx(float(today(60)))
    # The Distiller records where each stage starts.
    teacher, student = models()
    model = distiller_k3.Distiller(student, teacher, sid_stages())
    model.compile(optimizer=keras.optimizers.SGD(distiller_k3.StageWarmup(
        0.1, 100, 10, stage_start=None)))
    model.build_optimizer()
    x, y = batch()
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)  # 3 steps
    model.set_stage(1)
    assert int(model.stage_start.numpy()) == 3
