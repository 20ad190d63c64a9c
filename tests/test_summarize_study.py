"""scripts/summarize_study.py: the paired bootstrap and the same-teacher check, on made-up runs."""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "scripts"))
import summarize_study  # noqa: E402


def one_hot_logits(predictions, classes=2):
    return np.eye(classes, dtype=np.float32)[np.asarray(predictions)]


def made_up_run(method, seed, predictions, teacher_logits):
    return dict(method=method, layers=3, seed=seed, student_logits=one_hot_logits(predictions),
                teacher_logits=teacher_logits)


def test_bootstrap_interval_of_a_sure_gap_is_that_gap():
    labels = np.array([0, 1] * 50)
    right = [made_up_run("sid", 0, labels, None)]
    wrong = [made_up_run("kd", 0, 1 - labels, None)]
    low, high = summarize_study.bootstrap_difference("accuracy", ["accuracy"], labels, right,
                                                     wrong, samples=50)
    assert low == high == 1.0


def test_bootstrap_interval_covers_the_observed_gap_and_pairs_examples():
    rng = np.random.RandomState(3)
    labels = rng.randint(0, 2, size=400)
    # The method is right on 80% of examples, the baseline on those same ones but 40 less:
    # paired resampling keeps the gap near 10 points with a narrow interval.
    ours = np.where(rng.rand(400) < 0.8, labels, 1 - labels)
    theirs = ours.copy()
    right = np.flatnonzero(ours == labels)
    theirs[right[:40]] = 1 - labels[right[:40]]
    low, high = summarize_study.bootstrap_difference(
        "accuracy", ["accuracy"], labels, [made_up_run("sid", 0, ours, None)],
        [made_up_run("kd", 0, theirs, None)], samples=300)
    assert low < 0.10 < high
    assert low > 0.06 and high < 0.14  # unpaired resampling would give about +-0.06


def test_runs_of_another_teacher_are_named():
    teacher = np.random.RandomState(0).randn(10, 2).astype(np.float32)
    runs = [made_up_run("kd", 0, [0] * 10, teacher),
            made_up_run("sid", 0, [0] * 10, teacher + 1e-6),  # same teacher, float noise
            made_up_run("sid", 1, [0] * 10, teacher + 0.01)]  # fine-tuned again
    assert summarize_study.other_teacher_runs(runs) == ["sid_L3_s1"]
