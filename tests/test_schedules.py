"""Each schedule's stages as data: which terms are on, with which weights, in which
order, what each freezes and how it ends."""

import pytest

from kd_keras import config, schedules, terms

MAPPING = [(1, 2), (2, 4), (3, 6)]


def method(schedule, epochs=4, epochs_per_stage=2, **fields):
    return config.DistillConfig(schedule=schedule, epochs=epochs,
                                epochs_per_stage=epochs_per_stage, **fields)


def summary(schedule):
    return [([t.name for t in stage.terms], stage.max_epochs) for stage in schedule.stages]


def test_sid_stacks_pairs_then_classifier():
    sid = schedules.build(method("sid"), MAPPING)
    assert summary(sid) == [
        (["att_kl_s1_t2", "cos_s1_t2"], 2),
        (["att_kl_s1_t2", "cos_s1_t2", "att_kl_s2_t4", "cos_s2_t4"], 2),
        (["att_kl_s1_t2", "cos_s1_t2", "att_kl_s2_t4", "cos_s2_t4", "att_kl_s3_t6",
          "cos_s3_t6"], 2),
        (["soft", "hard"], 4)]
    assert [s.trains_classifier for s in sid.stages] == [False, False, False, True]
    assert sid.max_epochs == 10 and sid.mapping == tuple(MAPPING)
    # Validation reports the label terms and every pair, whatever the stage.
    assert [t.name for t in sid.evaluation] == ["soft", "hard"] + summary(sid)[2][0]


def test_pid_one_pair_at_a_time_with_kd_every_stage():
    pid = schedules.build(method("pid", kd_every_stage=True), MAPPING)
    assert summary(pid) == [(["soft", "hard", "att_kl_s1_t2", "cos_s1_t2"], 2),
                            (["soft", "hard", "att_kl_s2_t4", "cos_s2_t4"], 2),
                            (["soft", "hard", "att_kl_s3_t6", "cos_s3_t6"], 2),
                            (["soft", "hard"], 4)]
    assert pid.stages[1].name == "pid 2/4: layer 2 + kd"


def test_single_stage_schedules():
    assert summary(schedules.build(method("all", epochs=3), MAPPING[:2])) == [
        (["soft", "hard", "att_kl_s1_t2", "cos_s1_t2", "att_kl_s2_t4", "cos_s2_t4"], 3)]
    assert summary(schedules.build(method("kd", epochs=3), MAPPING)) == [(["soft", "hard"], 3)]
    finetune = schedules.build(method("finetune", epochs=3), MAPPING)
    assert summary(finetune) == [(["hard"], 3)] and not finetune.stages[0].uses_teacher
    assert finetune.stages[0].terms[0].weight == 1.0  # gold labels alone, not lambda


def test_every_weight_and_the_temperature_come_from_the_method():
    tinybert = method("all", internal_losses=("hidden_mse", "attention_mse", "embedding_mse"),
                      soft_label_weight=0.7, hard_label_weight=0.3, temperature=2.0,
                      hidden_mse_weight=2.5, attention_mse_weight=0.5,
                      embedding_mse_weight=4.0)
    stage = schedules.build(tinybert, MAPPING[:2]).stages[0]
    weights = {t.name: t.weight for t in stage.terms}
    assert weights == {"soft": 0.7, "hard": 0.3, "emb_mse": 4.0, "hid_mse_s1_t2": 2.5,
                       "att_mse_s1_t2": 0.5, "hid_mse_s2_t4": 2.5, "att_mse_s2_t4": 0.5}
    assert stage.terms[0].temperature == 2.0
    # Every registered term's weight is a setting (and so a flag) of the method.
    for name, kind in terms.REGISTRY.items():
        assert kind.weight_flag in config.DistillConfig.__dataclass_fields__, name


def test_freezing_and_early_ends_are_part_of_the_stage():
    pid = schedules.build(method("pid", freeze_lower_layers=True, cos_threshold=0.2), MAPPING)
    assert [s.frozen_below for s in pid.stages] == [1, 2, 3, 0]
    assert pid.stages[1].early_end == schedules.EarlyEnd(("cos_s2_t4",), 0.2)
    assert pid.stages[-1].early_end is None  # the classifier stage runs its epochs
    plain = schedules.build(method("sid"), MAPPING)
    assert all(s.frozen_below == 0 and s.early_end is None for s in plain.stages)
    # Without the cosine term there is nothing to end a stage on.
    kl_only = schedules.build(method("sid", internal_losses=("attention_kl",),
                                     cos_threshold=0.2), MAPPING)
    assert all(s.early_end is None for s in kl_only.stages)


def test_bad_schedule_arguments():
    with pytest.raises(ValueError, match="Choose one of: all, pid, sid, kd, finetune"):
        schedules.build(method("xyz"), MAPPING)
    with pytest.raises(ValueError, match="at least 1"):
        schedules.build(method("sid", epochs=0), MAPPING)
    with pytest.raises(ValueError, match="Unknown loss term 'mse'"):
        schedules.build(method("sid", internal_losses=("mse",)), MAPPING)
