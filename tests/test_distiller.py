"""The Distiller (Keras 3, TensorFlow backend): its terms against direct full forward
passes, what a step may change, stage switching through fit_schedule, the logit cache,
2 mirrored replicas against 1, and exact restores."""

import os

import keras
import numpy as np
import pytest

from conftest import make_batch, tiny_teacher
from kd_keras import (backends, callbacks, config, distiller, encoders, losses, models,
                      optimization, schedules, terms)
from kd_keras.data.batching import batches_per_epoch
from kd_keras.encoders import EncoderConfig

HERE = os.path.dirname(os.path.abspath(__file__))
TEACHER = EncoderConfig("bert", 97, 48, 4, 3, 60, max_positions=64)
MAPPING = [(1, 2), (2, 4)]


def pair_of_models(student_hidden=48):
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


def method(schedule, epochs=1, **fields):
    """The method of a schedule with one epoch a stage."""
    return config.DistillConfig(schedule=schedule, epochs=epochs, epochs_per_stage=epochs,
                                **fields)


def sid_schedule():
    return schedules.build(method("sid"), MAPPING)


@pytest.mark.parametrize("student_hidden", [48, 36])
def test_terms_equal_direct_computation_on_full_forward_passes(student_hidden):
    teacher, student = pair_of_models(student_hidden)
    model = distiller.Distiller(student, teacher, sid_schedule())
    x, y = batch()
    t, s = teacher.forward(x), student.forward(x)  # everything, no shortcut
    project = model.projections.get
    stage_2 = model.stages[1].terms
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
    # The classifier stage with the teacher's logits given (cached): no teacher pass.
    last = model.stages[-1].terms
    given = model.teacher_outputs(x, last, np.asarray(t.logits))
    assert given.hidden_states == []
    total, values, _ = model.compute_terms(x, y, last, given, False)
    soft = losses.soft_label_ce(t.logits, s.logits, 1.0, reduction="none")
    hard = losses.hard_label_ce(y, s.logits, reduction="none")
    np.testing.assert_allclose(np.asarray(total), np.asarray(soft + 0.1 * hard), atol=1e-5)


def test_fit_trains_only_the_stage_and_never_the_teacher():
    teacher, student = pair_of_models()
    model = distiller.Distiller(student, teacher, sid_schedule())
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


def test_stage_terms_follow_the_schedule():
    stages = schedules.build(method("pid"), MAPPING).stages
    names = [[t.name for t in stage.terms] for stage in stages]
    assert names == [["att_kl_s1_t2", "cos_s1_t2"], ["att_kl_s2_t4", "cos_s2_t4"],
                     ["soft", "hard"]]
    finetune = schedules.build(method("finetune"), MAPPING).stages[0]
    assert [type(t) for t in finetune.terms] == [terms.HardLabel]
    tinybert = schedules.build(method("all", internal_losses=("hidden_mse", "attention_mse")),
                               MAPPING).stages[0].terms
    assert [t.name for t in tinybert] == ["soft", "hard", "hid_mse_s1_t2", "att_mse_s1_t2",
                                          "hid_mse_s2_t4", "att_mse_s2_t4"]


def distiller_with_dropout(seed):
    keras.utils.set_random_seed(seed)
    teacher = encoders.build(TEACHER)
    student = encoders.derive_student(teacher, 2, MAPPING)  # hidden dropout 0.1 stays on
    model = distiller.Distiller(student, teacher, schedules.from_terms(
        [sid_schedule().stages[-1].terms]))
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
        teacher, student = pair_of_models()
        pid = schedules.build(method("pid", freeze_lower_layers=freeze), MAPPING)
        model = distiller.Distiller(student, teacher, pid)
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
    def today(step):  # linear warm-up over 10 steps to 1e-3, then linear decay to 0 at 100
        return 1e-3 * (step / 10 if step < 10 else max(100 - step, 0) / 90)

    plain = optimization.StageWarmup(1e-3, total_steps=100, warmup_steps=10)
    for step in (0, 5, 10, 11, 60, 100, 120):
        assert float(plain(step)) == pytest.approx(float(today(step)), abs=1e-9), step
    start = keras.Variable(50, dtype="int64")
    restarting = optimization.StageWarmup(1e-3, total_steps=100, warmup_steps=10,
                                          stage_start=start)
    assert float(restarting(50)) == 0.0
    assert float(restarting(55)) == pytest.approx(0.5 * float(today(55)))
    assert float(restarting(60)) == pytest.approx(float(today(60)))
    # The Distiller records where each stage starts.
    teacher, student = pair_of_models()
    model = distiller.Distiller(student, teacher, sid_schedule())
    model.compile(optimizer=keras.optimizers.SGD(optimization.StageWarmup(
        0.1, 100, 10, stage_start=None)))
    model.build_optimizer()
    x, y = batch()
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)  # 3 steps
    model.set_stage(1)
    assert int(model.stage_start.numpy()) == 3



# ------------------------------------------------------------ the pipeline's Distiller


def make_distiller(teacher, schedule="sid", student_layers=2, epochs=1, student_kwargs=None,
                   **options):
    """A Distiller of a schedule over a student cut from ``teacher``, compiled with Adam."""
    mapping = models.layer_mapping(teacher.num_layers, student_layers)
    student = models.derive_student(teacher, student_layers, mapping, **(student_kwargs or {}))
    regression = options.pop("regression", False)
    model = distiller.Distiller(student, None if schedule == "finetune" else teacher,
                                schedules.build(method(schedule, epochs, **options), mapping,
                                                regression))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.build_optimizer()
    return model


def terms_of(model, x, y, active, training=False):
    return model.compute_terms(x, y, active, model.teacher_outputs(x, active), training)


def test_teacher_is_bit_identical_after_training_steps():
    teacher = tiny_teacher(seed=7)
    before = [w.numpy().copy() for w in teacher.weights]
    model = make_distiller(teacher, "all")
    student_before = [w.numpy().copy() for w in model.student.trainable_weights]
    x, y = make_batch()
    for _ in range(3):
        model.train_on_batch(x, y)
    for old, new in zip(before, teacher.weights):
        np.testing.assert_array_equal(old, new.numpy())
    changed = [not np.array_equal(a, b.numpy())
               for a, b in zip(student_before, model.student.trainable_weights)]
    assert sum(changed) > len(changed) // 2
    assert teacher.trainable_weights == []


def test_internal_losses_are_zero_when_student_equals_teacher(teacher):
    model = make_distiller(teacher, "all", student_layers=4)  # 4 -> 4: identity mapping
    x, y = make_batch()
    _, values, _ = terms_of(model, x, y, model.evaluation_terms)
    internal = [name for name in values if name.startswith(("att_kl_", "cos_"))]
    assert len(internal) == 8
    for name in internal:
        assert np.abs(np.asarray(values[name])).max() < 1e-6, name


@pytest.mark.parametrize("schedule", ["sid", "pid"])
def test_staged_compute_equals_full_forward(teacher, schedule):
    model = make_distiller(teacher, schedule, kd_every_stage=(schedule == "pid"))
    x, y = make_batch()
    t, s = teacher.forward(x), model.student.forward(x)  # everything, no shortcut
    for stage in model.stages:
        _, values, _ = terms_of(model, x, y, stage.terms)
        expected = {}
        if stage.trains_classifier:
            expected["soft"] = losses.soft_label_ce(t.logits, s.logits, 1.0, reduction="none")
            expected["hard"] = losses.hard_label_ce(y, s.logits, reduction="none")
        pairs = {term.pair for term in stage.terms if term.pair}
        for si, ti in sorted(pairs):
            expected[f"att_kl_s{si}_t{ti}"] = losses.attention_kl(
                t.attentions[ti - 1], s.attentions[si - 1], x["attention_mask"], "none")
            expected[f"cos_s{si}_t{ti}"] = losses.cls_cosine_loss(
                t.hidden_states[ti][:, 0], s.hidden_states[si][:, 0], "none")
        assert set(values) == set(expected)
        for name, value in expected.items():
            np.testing.assert_allclose(np.asarray(values[name]), np.asarray(value), atol=1e-6)


def test_cached_teacher_logits_give_identical_losses(teacher):
    model = make_distiller(teacher, "kd")
    x, y = make_batch()
    active = model.terms
    total_a, terms_a, _ = terms_of(model, x, y, active)
    given = model.teacher_outputs(x, active, teacher(x))
    total_b, terms_b, _ = model.compute_terms(x, y, active, given, False)
    np.testing.assert_allclose(np.asarray(total_a), np.asarray(total_b), atol=1e-6)
    assert set(terms_a) == {"soft", "hard"} == set(terms_b)
    assert model.requirements(active, True).teacher_layers is None  # no teacher pass
    assert model.reads_teacher_logits


def fit_sid(teacher, features, teacher_logits=None, epochs=1, **options):
    model = make_distiller(teacher, "sid", epochs=epochs, **options)
    steps = batches_per_epoch(features.lengths, 16)
    history = model.fit_schedule(
        lambda epoch, batch: backends.make_dataset(
            features, 16, True, seed=0, teacher_logits=teacher_logits, epochs=epoch + 1,
            start_epoch=epoch, start_batch=batch), steps)
    return model, history


def test_training_with_the_logit_cache_equals_training_without(teacher, synthetic_features):
    """A sid run (internal stages, then kd) trains the same student with cached logits."""
    from kd_keras.pipeline import inference

    logits = inference.predict_logits(teacher, synthetic_features, 32)
    weights = []
    for cached in (None, logits):
        keras.utils.set_random_seed(0)
        model, _ = fit_sid(teacher, synthetic_features, cached)
        weights.append([w.numpy() for w in model.student.trainable_weights])
    for plain, cached in zip(*weights):
        np.testing.assert_allclose(cached, plain, atol=2e-5)


def test_total_loss_is_the_weighted_sum(teacher):
    model = make_distiller(teacher, "all", hard_label_weight=0.3, attention_weight=2.0,
                           cosine_weight=0.5)
    x, y = make_batch()
    total, values, _ = terms_of(model, x, y, model.terms)
    expected = np.asarray(values["soft"]) + 0.3 * np.asarray(values["hard"])
    for s, t in model.mapping:
        expected += (2.0 * np.asarray(values[f"att_kl_s{s}_t{t}"])
                     + 0.5 * np.asarray(values[f"cos_s{s}_t{t}"]))
    np.testing.assert_allclose(np.asarray(total), expected, rtol=1e-6)


def test_projection_for_a_narrower_student_is_trained(teacher):
    model = make_distiller(teacher, "all", student_kwargs={"hidden_size": 30,
                                                           "init": "random"})
    assert model.projections[1].kernel.shape == (30, 48)
    kernel = model.projections[1].kernel.numpy().copy()
    x, y = make_batch()
    logs = model.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"])
    assert not np.array_equal(kernel, model.projections[1].kernel.numpy())


def test_head_count_mismatch_is_a_clear_error(teacher):
    student = tiny_teacher(num_layers=2, seed=2, hidden_size=40, num_heads=4)
    with pytest.raises(models.ModelError, match="equal head counts"):
        distiller.Distiller(student, teacher, sid_schedule())


def test_fit_schedule_walks_sid_stages_and_reports_active_terms(teacher, synthetic_features):
    model, history = fit_sid(teacher, synthetic_features, epochs=2)
    assert history["stage"] == [1, 1, 2, 2, 3, 3]
    # Keras records a term only in the epochs whose stage has it on.
    assert len(history["cos_s1_t2"]) == 4 and len(history["cos_s2_t4"]) == 2
    assert len(history["soft"]) == 2
    # Losses of active layers fall within each internal stage.
    assert history["cos_s1_t2"][1] < history["cos_s1_t2"][0]
    assert history["cos_s2_t4"][1] < history["cos_s2_t4"][0]
    assert int(model.stage_index.numpy()) == 3 and model.run_finished  # past the last stage


def test_cos_threshold_ends_internal_stages_early(teacher, synthetic_features):
    model = make_distiller(teacher, "pid", epochs=3, cos_threshold=10.0)
    controller = callbacks.StageController(log=lambda line: None)
    steps = batches_per_epoch(synthetic_features.lengths, 32)
    model.fit_schedule(lambda epoch, batch: backends.make_dataset(
        synthetic_features, 32, True, seed=0, epochs=epoch + 1, start_epoch=epoch), steps,
        [controller])
    assert [(h["stage"], h["epochs"]) for h in controller.history] == [(1, 1), (2, 1), (3, 3)]
    assert controller.history[0]["reason"].startswith("cosine loss")


def test_finetune_runs_without_teacher(synthetic_features):
    student = tiny_teacher(num_layers=2, seed=3)
    model = distiller.Distiller(student, None, schedules.build(method("finetune"), []))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.build_optimizer()
    logs = model.fit(backends.make_dataset(synthetic_features, 32, True), epochs=1,
                     verbose=0).history
    assert set(logs) == {"loss", "hard", "accuracy", "stage"}
    with pytest.raises(ValueError, match="Only the finetune schedule"):
        distiller.Distiller(student, None, schedules.build(method("kd"), [(1, 1)]))


def test_adamw_decays_kernels_and_embeddings_only():
    """With zero gradients only decoupled weight decay moves weights: not LayerNorm's
    gamma and beta, not biases.  No warm-up: the first step has the peak rate."""
    model = tiny_teacher(num_layers=1, seed=1)
    optimizer = optimization.make_optimizer(1e-2, total_steps=10, warmup_proportion=0.0,
                                         weight_decay=0.5)
    variables = model.trainable_variables
    before = [v.numpy().copy() for v in variables]
    optimizer.apply([keras.ops.zeros_like(v) for v in variables], variables)
    moved = {v.path.split("/")[-1] for v, old in zip(variables, before)
             if not np.array_equal(old, v.numpy())}
    assert moved == {"kernel", "embeddings"}
    kernel = next(i for i, v in enumerate(variables) if v.path.endswith("kernel"))
    np.testing.assert_allclose(variables[kernel].numpy(), before[kernel] * (1 - 1e-2 * 0.5),
                               rtol=1e-6)


def test_regression_distils_with_squared_error():
    teacher = tiny_teacher(num_labels=1, seed=4)
    model = make_distiller(teacher, "kd", regression=True, hard_label_weight=0.5)
    x, _ = make_batch()
    y = np.array([0.5, 1.0, 2.0, 3.0, 4.5], np.float32)
    total, values, logits = terms_of(model, x, y, model.terms)
    t = np.asarray(teacher(x))[:, 0]
    s = np.asarray(logits)[:, 0]
    np.testing.assert_allclose(np.asarray(values["soft"]), (t - s) ** 2, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(values["hard"]), (y - s) ** 2, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(total), (t - s) ** 2 + 0.5 * (y - s) ** 2,
                               rtol=1e-5)
    assert np.isfinite(model.train_on_batch(x, y, return_dict=True)["loss"])


def test_logits_and_speeds_give_each_models_own_logits(teacher, synthetic_features):
    from kd_keras.pipeline import inference

    student = tiny_teacher(num_layers=1, seed=5)
    logits, speeds = inference.logits_and_speeds({"teacher": teacher, "student": student},
                                                synthetic_features, 32, min_seconds=0.05)
    for name, model in (("teacher", teacher), ("student", student)):
        np.testing.assert_allclose(logits[name],
                                   inference.predict_logits(model, synthetic_features, 32),
                                   rtol=0, atol=1e-6)
        assert logits[name].shape == (len(synthetic_features), 2)
        assert np.isfinite(speeds[name]) and speeds[name] > 0
    assert not np.allclose(logits["teacher"], logits["student"])


def test_speed_timing_reads_no_input_pipeline(teacher, synthetic_features, monkeypatch):
    """The dev batches are padded once: the timed passes (3 rounds at least) run only the
    models, so the input pipeline's cost never enters the speed-up."""
    from kd_keras.pipeline import inference

    iterations = []

    class CountedDataset:
        def __init__(self, dataset):
            self.dataset = dataset

        def __iter__(self):
            iterations.append(1)
            return iter(self.dataset)

    real = backends.make_dataset
    monkeypatch.setattr(inference.backends, "make_dataset",
                        lambda *args, **kwargs: CountedDataset(real(*args, **kwargs)))
    student = tiny_teacher(num_layers=1, seed=5)
    _, speeds = inference.logits_and_speeds({"teacher": teacher, "student": student},
                                           synthetic_features, 32, min_seconds=0)
    assert len(iterations) == 1
    assert all(np.isfinite(value) and value > 0 for value in speeds.values())


def test_teacher_logits_cache_on_disk_is_reused_and_keyed_by_teacher(
        synthetic_features, tmp_path, monkeypatch):
    """The first run writes the logits; a second run with the same teacher and data reads
    them without running the teacher; a changed teacher gets its own file."""
    from kd_keras.pipeline import inference, logit_cache

    own_teacher = tiny_teacher(seed=3)
    expected = inference.predict_logits(own_teacher, synthetic_features, 32)
    first = logit_cache.teacher_logits(own_teacher, synthetic_features, 32, str(tmp_path))
    np.testing.assert_array_equal(first, expected)
    assert len(list(tmp_path.glob("teacher_logits_*.npz"))) == 1

    def no_teacher_run(*args, **kwargs):
        raise AssertionError("the teacher ran although its logits were cached")

    with monkeypatch.context() as patch:
        patch.setattr(inference, "predict_logits", no_teacher_run)
        again = logit_cache.teacher_logits(own_teacher, synthetic_features, 32,
                                               str(tmp_path))
    np.testing.assert_array_equal(again, expected)

    kernel = own_teacher.weights[-2]
    kernel.assign(kernel + 1.0)
    changed = logit_cache.teacher_logits(own_teacher, synthetic_features, 32, str(tmp_path))
    assert len(list(tmp_path.glob("teacher_logits_*.npz"))) == 2
    assert not np.allclose(changed, expected)


def test_clipnorm_measures_each_gradient_with_repeated_token_ids_summed():
    """An embedding gradient arrives as one row per token; clipnorm must measure the
    summed gradient.  SGD with clipnorm: w - lr * g * min(1, c / ||g||), g dense."""
    import tensorflow as tf

    student = tiny_teacher(num_layers=1, dropout=0.0, seed=4)
    model = distiller.Distiller(student, None, schedules.from_terms([[terms.make("hard", 1.0)]]))
    model.compile(optimizer=keras.optimizers.SGD(0.5, clipnorm=0.05))
    model.build_optimizer()
    x, y = make_batch(batch=6, seq=10)
    x["input_ids"] = tf.constant(np.where(x["attention_mask"].numpy() > 0, 7, 0))  # id 7 repeats
    variables = model.trainable_student_variables
    with tf.GradientTape() as tape:
        total, _, _ = model.compute_terms(x, y, model.terms, None, training=True)
        loss = tf.reduce_mean(total)
    expected = []
    for v, g in zip(variables, tape.gradient(loss, variables)):
        g = tf.convert_to_tensor(g).numpy()
        expected.append(v.numpy() - 0.5 * g * min(1.0, 0.05 / np.linalg.norm(g)))
    model.train_on_batch(x, y)
    words = next(k for k, v in enumerate(variables) if v.path == "embeddings/word/embeddings")
    for k, v in enumerate(variables):
        np.testing.assert_allclose(v.numpy(), expected[k], atol=1e-6, err_msg=v.path)
    assert np.abs(variables[words].numpy()[7] - expected[words][7]).max() < 1e-6


def test_examples_without_a_label_train_on_the_teacher_alone():
    """The gold-label term reads only labelled examples (label weight 1): an unlabelled
    example's label changes neither the loss nor the update, and accuracy counts the
    labelled ones."""
    teacher = tiny_teacher(seed=7, dropout=0.0)
    x, y = make_batch()  # 5 examples
    labelled = np.array([1, 1, 1, 0, 0], np.float32)
    model = make_distiller(teacher, "kd")
    active = model.terms
    given = model.teacher_outputs(x, active)
    _, plain, _ = model.compute_terms(x, y, active, given, False)
    _, masked, logits = model.compute_terms(x, y, active, given, False, labelled)
    np.testing.assert_allclose(np.asarray(masked["hard"]),
                               np.asarray(plain["hard"]) * labelled, atol=1e-7)
    np.testing.assert_allclose(np.asarray(masked["soft"]), np.asarray(plain["soft"]))
    other = np.asarray(y).copy()
    other[3:] = 1 - other[3:]  # other labels on the unlabelled examples only
    after = []
    for labels in (np.asarray(y), other):
        model = make_distiller(teacher, "kd")
        logs = model.train_on_batch(x, {"labels": labels, "label_weights": labelled},
                                    return_dict=True)
        after.append([w.numpy() for w in model.student.trainable_weights])
    for a, b in zip(*after):
        np.testing.assert_array_equal(a, b)
    right = (np.argmax(np.asarray(logits), -1) == np.asarray(y))[:3]
    assert logs["accuracy"] == pytest.approx(right.mean())
