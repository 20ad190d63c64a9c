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
            made_up_run("sid", 0, [0] * 10, teacher + 0.004),  # same teacher, bf16 rounding
            made_up_run("sid", 1, [0] * 10, teacher + 0.1)]  # fine-tuned again
    assert summarize_study.other_teacher_runs(runs) == ["sid_L3_s1"]


def test_task_table_reports_means_spread_and_single_seed_runs():
    labels = np.array([0, 0, 0, 1] * 25)  # majority class (0) is 75% right
    teacher = one_hot_logits(labels)  # the teacher is always right
    results = dict(teacher=dict(layers=6, parameters=600), student=dict(parameters=300,
                                                                        attention_kl_mean=0.5))

    def run(method, seed, wrong, speedup):
        predictions = labels.copy()
        predictions[:wrong] = 1 - predictions[:wrong]
        made = made_up_run(method, seed, predictions, teacher)
        made.update(labels=labels, results=dict(results, speedup=speedup))
        return made

    runs = [run("kd", 0, 20, 2.0), run("kd", 1, 30, 3.0), run("sid", 0, 10, 2.5)]
    lines = summarize_study.task_table("rte", runs, layers=3, samples=50)
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in lines if line.startswith("| ") and "---" not in line}
    assert rows["majority class"][1] == "75.0"
    assert rows["teacher (6 layers)"][1] == "100.0"
    # KD: 80% and 70% right -> 75.0 +- 5.0 (population std of two seeds).
    assert rows["standard KD"][:4] == ["2", "75.0 ± 5.0", "0.500", "(reference)"]
    # sid, one seed: 90% right, no spread shown; 15 points above KD's mean.
    assert rows["internal KD, sid"][:2] == ["1", "90.0"]
    assert rows["internal KD, sid"][3].startswith("+15.0 [")
    assert "median of 3 runs, 2.00-3.00x" in "\n".join(lines)
    assert "2.50x" in "\n".join(lines)
    one_run = summarize_study.task_table("rte", runs[2:], layers=3, samples=50)
    assert "2.50x the teacher's on this CPU (1 run)" in "\n".join(one_run)


def test_task_table_shows_mnli_mismatched_beside_matched():
    labels = np.array([0, 1, 2, 1] * 5)
    mismatched = np.array([2, 2, 0, 1] * 5)
    results = dict(teacher=dict(layers=6, parameters=600),
                   student=dict(parameters=300, attention_kl_mean=None), speedup=2.0)

    def run(method, wrong):
        predictions = mismatched.copy()
        predictions[:wrong] = (predictions[:wrong] + 1) % 3
        return dict(method=method, layers=3, seed=0, labels=labels, results=results,
                    student_logits=one_hot_logits(labels, 3),
                    teacher_logits=one_hot_logits(labels, 3),
                    dev_mismatched_labels=mismatched,
                    dev_mismatched_teacher_logits=one_hot_logits(mismatched, 3),
                    dev_mismatched_student_logits=one_hot_logits(predictions, 3))

    lines = summarize_study.task_table("mnli", [run("kd", 4), run("sid", 2)], 3, samples=20)
    header = [line for line in lines if line.startswith("| method")][0]
    assert "| dev accuracy | dev_mismatched accuracy |" in header
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in lines if line.startswith("| ") and "---" not in line}
    assert rows["majority class"][1:3] == ["50.0", "50.0"]  # class 1 on dev, class 2 here
    assert rows["teacher (6 layers)"][1:3] == ["100.0", "100.0"]
    assert rows["standard KD"][1:3] == ["100.0", "80.0"]  # 4 of 20 wrong
    assert rows["internal KD, sid"][1:3] == ["100.0", "90.0"]


def test_load_runs_keeps_named_methods_and_says_which_it_leaves_out(tmp_path, capsys):
    for name in ("finetune_aug_L3_s0", "sid_long_L3_s1", "mystery_L3_s0"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "results.json").write_text("{}")
        np.savez(folder / "dev_predictions.npz", student_logits=one_hot_logits([0, 1]))
    runs = summarize_study.load_runs(str(tmp_path))
    assert sorted((r["method"], r["seed"]) for r in runs) == [("finetune_aug", 0),
                                                              ("sid_long", 1)]
    assert "mystery_L3_s0: method 'mystery'" in capsys.readouterr().err
