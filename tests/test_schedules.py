"""Each schedule's stages: which terms are on, in which order."""

import pytest

from kd_keras import schedules


def summary(stages):
    return [(s.pairs, s.kd, s.hard_only, s.max_epochs) for s in stages]


def test_sid_stacks_pairs_then_classifier():
    assert summary(schedules.build_schedule("sid", 3, 4, 2)) == [
        ((0,), False, False, 2), ((0, 1), False, False, 2), ((0, 1, 2), False, False, 2),
        ((), True, False, 4)]


def test_pid_one_pair_at_a_time_with_kd_every_stage():
    stages = schedules.build_schedule("pid", 3, 4, 2, kd_every_stage=True)
    assert summary(stages) == [((0,), True, False, 2), ((1,), True, False, 2),
                               ((2,), True, False, 2), ((), True, False, 4)]
    assert schedules.max_epochs(stages) == 10


def test_single_stage_schedules():
    assert summary(schedules.build_schedule("all", 2, 3, 1)) == [((0, 1), True, False, 3)]
    assert summary(schedules.build_schedule("kd", 2, 3, 1)) == [((), True, False, 3)]
    finetune = schedules.build_schedule("finetune", 2, 3, 1)
    assert summary(finetune) == [((), False, True, 3)] and not finetune[0].uses_teacher


def test_bad_schedule_arguments():
    with pytest.raises(ValueError, match="Choose one of: all, pid, sid, kd, finetune"):
        schedules.build_schedule("xyz", 2, 1, 1)
    with pytest.raises(ValueError, match="at least 1"):
        schedules.build_schedule("sid", 2, 0, 1)
