"""The Distiller: frozen teacher, loss terms per stage, staged compute, stage switching."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from conftest import make_batch, tiny_teacher
from kd_keras import callbacks, data, distiller, losses, models, schedules


def make_distiller(teacher, schedule="sid", student_layers=2, epochs=1, **kwargs):
    mapping = models.layer_mapping(teacher.num_layers, student_layers)
    student = models.derive_student(teacher, student_layers, mapping,
                                    **kwargs.pop("student_kwargs", {}))
    stages = schedules.build_schedule(schedule, len(mapping), epochs, epochs,
                                      kwargs.pop("kd_every_stage", False))
    model = distiller.Distiller(student, None if schedule == "finetune" else teacher,
                                mapping, stages, **kwargs)
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-3))
    model.build_optimizer()
    return model


def test_teacher_is_bit_identical_after_training_steps():
    teacher = tiny_teacher(seed=7)
    before = [w.numpy().copy() for w in teacher.model.weights]
    model = make_distiller(teacher, "all")
    student_before = [w.numpy().copy() for w in model.student.model.trainable_weights]
    x, y = make_batch()
    for _ in range(3):
        model.train_on_batch(x, y)
    for old, new in zip(before, teacher.model.weights):
        np.testing.assert_array_equal(old, new.numpy())
    changed = [not np.array_equal(a, b.numpy())
               for a, b in zip(student_before, model.student.model.trainable_weights)]
    assert sum(changed) > len(changed) // 2
    assert teacher.model.trainable_weights == []


def test_internal_losses_are_zero_when_student_equals_teacher(teacher):
    model = make_distiller(teacher, "all", student_layers=4)  # 4 -> 4: identity mapping
    x, y = make_batch()
    _, terms, _ = model.compute_terms(x, y, model.evaluation_stage(), training=False)
    for name in model.attention_names + model.cosine_names:
        assert np.abs(terms[name].numpy()).max() < 1e-6, name


def reference_terms(model, x, y, stage):
    """The same terms from full forward passes of both models, computed directly."""
    t, s = model.teacher(x), model.student(x, training=False)
    out = {}
    if stage.kd:
        out["soft"] = losses.soft_label_ce(t.logits, s.logits, reduction="none")
        out["hard"] = losses.hard_label_ce(y, s.logits, reduction="none")
    for p in stage.pairs:
        si, ti = model.mapping[p]
        out[model.attention_names[p]] = losses.attention_kl(
            t.attentions[ti - 1], s.attentions[si - 1], x["attention_mask"], "none")
        out[model.cosine_names[p]] = losses.cls_cosine_loss(
            t.hidden_states[ti][:, 0], s.hidden_states[si][:, 0], "none")
    return out


@pytest.mark.parametrize("schedule", ["sid", "pid"])
def test_staged_compute_equals_full_forward(teacher, schedule):
    model = make_distiller(teacher, schedule, kd_every_stage=(schedule == "pid"))
    x, y = make_batch()
    for stage in model.stages:
        _, terms, _ = model.compute_terms(x, y, stage, training=False)
        expected = reference_terms(model, x, y, stage)
        assert set(terms) == set(expected)
        for name, value in expected.items():
            np.testing.assert_allclose(terms[name].numpy(), value.numpy(), atol=1e-6)


def test_cached_teacher_logits_give_identical_losses(teacher):
    model = make_distiller(teacher, "kd")
    x, y = make_batch()
    cached = dict(x, teacher_logits=teacher.logits(x))
    total_a, terms_a, _ = model.compute_terms(x, y, model.stage, training=False)
    total_b, terms_b, _ = model.compute_terms(cached, y, model.stage, training=False)
    np.testing.assert_allclose(total_a.numpy(), total_b.numpy(), atol=1e-7)
    assert set(terms_a) == {"soft", "hard"} == set(terms_b)


def test_training_with_the_logit_cache_equals_training_without(teacher, synthetic_features):
    """A sid run (internal stages, then kd) trains the same student with cached logits,
    and the cached kd stage runs no teacher layer at all."""
    from kd_keras import pipeline

    logits = pipeline.predict_logits(teacher, synthetic_features, 32)
    weights = []
    for extra in (None, {distiller.TEACHER_LOGITS: logits}):
        tf_keras.utils.set_random_seed(0)
        model = make_distiller(teacher, "sid", cached_teacher_logits=extra is not None)
        dataset = data.make_dataset(synthetic_features, 16, True, seed=0, extra=extra,
                                    epochs=3)
        model.fit(dataset, epochs=3, steps_per_epoch=data.batches_per_epoch(
            synthetic_features.lengths, 16), callbacks=[callbacks.StageController(
                log=lambda line: None)], verbose=0)
        weights.append([w.numpy() for w in model.student.model.trainable_weights])
    for plain, cached in zip(*weights):
        np.testing.assert_allclose(cached, plain, atol=2e-5)
    assert model._depths(model.stages[-1], cached_logits=True) == (None, 0)


def test_total_loss_is_the_weighted_sum(teacher):
    model = make_distiller(teacher, "all", hard_label_weight=0.3, attention_weight=2.0,
                           cosine_weight=0.5)
    x, y = make_batch()
    total, terms, _ = model.compute_terms(x, y, model.stage, training=False)
    expected = terms["soft"] + 0.3 * terms["hard"]
    for a, c in zip(model.attention_names, model.cosine_names):
        expected += 2.0 * terms[a] + 0.5 * terms[c]
    np.testing.assert_allclose(total.numpy(), expected.numpy(), rtol=1e-6)


def test_projection_for_a_narrower_student(teacher):
    model = make_distiller(teacher, "all", student_kwargs={"hidden_size": 30,
                                                           "init": "random"})
    assert model.projections and model.projections[0].kernel.shape == (30, 48)
    kernel = model.projections[0].kernel.numpy().copy()
    x, y = make_batch()
    logs = model.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"])
    assert not np.array_equal(kernel, model.projections[0].kernel.numpy())


def test_head_count_mismatch_is_a_clear_error(teacher):
    with pytest.raises(models.ModelError, match="equal head counts"):
        make_distiller(teacher, "sid", student_kwargs={"hidden_size": 40, "num_heads": 4,
                                                       "init": "random"})


def test_fit_walks_sid_stages_and_reports_active_terms(teacher, synthetic_features):
    model = make_distiller(teacher, "sid", epochs=2)
    controller = callbacks.StageController(log=lambda line: None)
    dataset = data.make_dataset(synthetic_features, 16, True, seed=0)
    history = model.fit(dataset, epochs=schedules.max_epochs(model.stages),
                        callbacks=[controller], verbose=0)
    assert [h["stage"] for h in controller.history] == [1, 2, 3]
    assert history.history["stage"] == [1, 1, 2, 2, 3, 3]
    # Keras records a term only in the epochs whose stage has it on.
    assert len(history.history["cos_s1_t2"]) == 4 and len(history.history["cos_s2_t4"]) == 2
    assert "soft" in history.history and len(history.history["soft"]) == 2
    # Losses of active layers fall within each internal stage.
    assert history.history["cos_s1_t2"][1] < history.history["cos_s1_t2"][0]
    assert history.history["cos_s2_t4"][1] < history.history["cos_s2_t4"][0]
    assert int(model.stage_index.numpy()) == 3  # past the last stage: done


def test_cos_threshold_ends_internal_stages_early(teacher, synthetic_features):
    model = make_distiller(teacher, "pid", epochs=3)
    controller = callbacks.StageController(cos_threshold=10.0, log=lambda line: None)
    dataset = data.make_dataset(synthetic_features, 32, True, seed=0)
    model.fit(dataset, epochs=schedules.max_epochs(model.stages), callbacks=[controller],
              verbose=0)
    assert [(h["stage"], h["epochs"]) for h in controller.history] == [(1, 1), (2, 1), (3, 3)]
    assert controller.history[0]["reason"].startswith("cosine loss")


def test_finetune_runs_without_teacher(synthetic_features):
    student = tiny_teacher(num_layers=2, seed=3)
    stages = schedules.build_schedule("finetune", 0, 1, 1)
    model = distiller.Distiller(student, None, [], stages)
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-3))
    model.build_optimizer()
    logs = model.fit(data.make_dataset(synthetic_features, 32, True), epochs=1,
                     verbose=0).history
    assert set(logs) == {"loss", "hard", "accuracy", "stage"}
    with pytest.raises(ValueError, match="Only the finetune schedule"):
        distiller.Distiller(student, None, [], schedules.build_schedule("kd", 1, 1, 1))


def test_warmup_linear_decay():
    schedule = distiller.WarmupLinearDecay(1.0, total_steps=10, warmup_steps=2)
    values = [float(schedule(step)) for step in (0, 1, 2, 6, 10, 12)]
    np.testing.assert_allclose(values, [0.0, 0.5, 1.0, 0.5, 0.0, 0.0], atol=1e-6)


def test_regression_distils_with_squared_error():
    teacher = tiny_teacher(num_labels=1, seed=4)
    model = make_distiller(teacher, "kd", regression=True, hard_label_weight=0.5)
    x, _ = make_batch()
    y = tf.constant([0.5, 1.0, 2.0, 3.0, 4.5])
    total, terms, logits = model.compute_terms(x, y, model.stage, training=False)
    t = teacher.logits(x).numpy()[:, 0]
    s = logits.numpy()[:, 0]
    np.testing.assert_allclose(terms["soft"].numpy(), (t - s) ** 2, rtol=1e-5)
    np.testing.assert_allclose(terms["hard"].numpy(), (y.numpy() - s) ** 2, rtol=1e-5)
    np.testing.assert_allclose(total.numpy(), (t - s) ** 2 + 0.5 * (y.numpy() - s) ** 2,
                               rtol=1e-5)
    assert np.isfinite(model.train_on_batch(x, y, return_dict=True)["loss"])


def test_logits_and_speeds_give_each_models_own_logits(teacher, synthetic_features):
    from kd_keras import pipeline

    student = tiny_teacher(num_layers=1, seed=5)
    logits, speeds = pipeline.logits_and_speeds({"teacher": teacher, "student": student},
                                                synthetic_features, 32, min_seconds=0.05)
    for name, model in (("teacher", teacher), ("student", student)):
        np.testing.assert_allclose(logits[name],
                                   pipeline.predict_logits(model, synthetic_features, 32),
                                   rtol=0, atol=1e-6)
        assert logits[name].shape == (len(synthetic_features), 2)
        assert np.isfinite(speeds[name]) and speeds[name] > 0
    assert not np.allclose(logits["teacher"], logits["student"])


def test_teacher_logits_cache_on_disk_is_reused_and_keyed_by_teacher(
        synthetic_features, tmp_path, monkeypatch):
    """The first run writes the logits; a second run with the same teacher and data reads
    them without running the teacher; a changed teacher gets its own file."""
    from kd_keras import pipeline

    own_teacher = tiny_teacher(seed=3)
    expected = pipeline.predict_logits(own_teacher, synthetic_features, 32)
    first = pipeline.cached_teacher_logits(own_teacher, synthetic_features, 32, str(tmp_path))
    np.testing.assert_array_equal(first, expected)
    assert len(list(tmp_path.glob("teacher_logits_*.npy"))) == 1

    def no_teacher_run(*args, **kwargs):
        raise AssertionError("the teacher ran although its logits were cached")

    with monkeypatch.context() as patch:
        patch.setattr(pipeline, "predict_logits", no_teacher_run)
        again = pipeline.cached_teacher_logits(own_teacher, synthetic_features, 32,
                                               str(tmp_path))
    np.testing.assert_array_equal(again, expected)

    kernel = own_teacher.model.weights[-2]
    kernel.assign(kernel + 1.0)
    changed = pipeline.cached_teacher_logits(own_teacher, synthetic_features, 32, str(tmp_path))
    assert len(list(tmp_path.glob("teacher_logits_*.npy"))) == 2
    assert not np.allclose(changed, expected)
