"""scripts/reproduce.sh, reduced (synthetic task, tiny teacher, one seed): runs, resumes."""

import collections
import os
import shutil
import subprocess
import sys

from test_end_to_end import REPO

# The real reduced study runs two methods (a run takes most of a minute on a slow CPU);
# every method's flags reach the script in test_two_copies_share_the_runs, and pid runs
# end to end in test_end_to_end.py.  Its student-depth sweep (two more runs, the table
# and the figure) runs with KD_KERAS_LONG_TESTS=1.
METHODS = "kd sid"
SWEEP = bool(os.environ.get("KD_KERAS_LONG_TESTS"))
METHOD_ROWS = ("standard KD", "internal KD, sid |")


# Stands in for python in test_two_copies_share_the_runs: records which run folder it was
# asked to train, takes a second, and leaves what a finished run leaves.
FAKE_PYTHON = """#!/usr/bin/env bash
[[ $1 == -m ]] || exit 0  # scripts/summarize_study.py: nothing to summarize
for arg; do
  case $arg in --model_dir=*) dir=${arg#--model_dir=} ;; --mode=*) mode=${arg#--mode=} ;; esac
done
echo "$dir" >> "$CALLS"
sleep 1
if [[ $mode == train_teacher ]]; then
  mkdir -p "$dir/teacher" && echo '{}' > "$dir/teacher/kd_keras_task.json"
else
  echo '{}' > "$dir/results.json"
fi
"""


def reproduce_env(out, record, python=sys.executable, **extra):
    return dict(os.environ, REDUCED="1", OUT=str(out), RECORD=str(record), PYTHON=python,
                **extra)


def reproduce(out, record):
    return subprocess.run(["bash", os.path.join(REPO, "scripts", "reproduce.sh")], cwd=REPO,
                          env=reproduce_env(out, record, METHODS=METHODS,
                                            **({} if SWEEP else {"SWEEP_LAYERS": ""})),
                          capture_output=True, text=True, timeout=900)


def test_reduced_study_runs_then_resumes_without_redoing_work(tmp_path):
    out, record = tmp_path / "out", tmp_path / "record"
    first = reproduce(out, record)
    assert first.returncode == 0, first.stdout + first.stderr
    tables = (record / "study_tables.md").read_text()
    for row in METHOD_ROWS:
        assert row in tables, row
    assert "majority class" in tables and "(reference)" in tables
    swept = ["kd_L1_s0", "sid_L1_s0"] if SWEEP else []
    if SWEEP:
        assert "student depth sweep" in tables and "| 1 | " in tables
        assert (record / "student_depth.png").stat().st_size > 1000
    runs = sorted(p.name for p in (out / "synthetic").iterdir())
    assert runs == sorted(["cache", "teacher", "kd_L2_s0", "sid_L2_s0", *swept])
    # Every method had the same budget of epochs: 2 stages x 1 + 1 classifier epoch.
    logs = {}
    for run in (r for r in runs if r not in ("teacher", "cache")):
        logs[run] = (out / "synthetic" / run / "log.txt").read_text()
        layers = int(run.split("_L")[1][0])
        assert f"Epoch {layers + 1}/{layers + 1}" in logs[run], run
    # The runs share one cache: the teacher's logits are computed by the first run that
    # needs them and read from disk by the others.
    computed = sum("Cached the teacher's logits" in log for log in logs.values())
    reused = sum("Reusing the teacher's logits" in log for log in logs.values())
    assert computed == 1 and reused == len(logs) - 1, (computed, reused)

    # The record keeps each finished run's small files, and the teacher's dev history.
    for run in logs:
        assert (record / "synthetic" / run / "results.json").exists(), run
        assert (record / "synthetic" / run / "dev_predictions.npz").exists(), run
    assert "dev_history" in (record / "synthetic" / "teacher" / "teacher" /
                             "kd_keras_task.json").read_text()

    # Interrupted work: one run is missing from the record; a rerun redoes only that one
    # (the cheapest: kd, one stage).
    os.remove(record / "synthetic" / "kd_L2_s0" / "results.json")
    second = reproduce(out, record)
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.count("run:  ") == 1 and "run:  " + str(out) in second.stdout
    assert "kd_L2_s0" in [l for l in second.stdout.splitlines() if l.startswith("run:")][0]

    # The run folders are lost (a new machine): every run is recorded, so nothing reruns,
    # not even the teacher, and the tables come from the record alone.
    shutil.rmtree(out)
    os.remove(record / "study_tables.md")
    third = reproduce(out, record)
    assert third.returncode == 0, third.stdout + third.stderr
    assert "run:  " not in third.stdout
    assert "(reference)" in (record / "study_tables.md").read_text()


def test_two_copies_share_the_runs(tmp_path):
    """Two copies started together on one OUT: the teacher is trained once, every run
    exactly once, and both copies do part of the work."""
    fake = tmp_path / "fake_python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    calls = tmp_path / "calls.txt"
    env = reproduce_env(tmp_path / "out", tmp_path / "record", python=str(fake),
                        CALLS=str(calls))
    copies = [subprocess.Popen(["bash", os.path.join(REPO, "scripts", "reproduce.sh")],
                               cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [copy.communicate(timeout=120)[0] for copy in copies]
    assert [copy.returncode for copy in copies] == [0, 0], outputs

    trained = collections.Counter(os.path.basename(line)
                                  for line in calls.read_text().split())
    expected = ["teacher", "finetune_L2_s0", "kd_L2_s0", "all_L2_s0", "pid_L2_s0",
                "sid_L2_s0", "sid_kd_L2_s0", "kd_L1_s0", "sid_L1_s0"]
    assert trained == collections.Counter(expected), trained
    for output in outputs:
        assert any(line.startswith("run:  ") and "teacher" not in line
                   for line in output.splitlines()), output
    assert "busy: " in outputs[0] + outputs[1]
    for run in expected[1:]:
        assert (tmp_path / "record" / "synthetic" / run / "results.json").exists(), run


def test_recipe_variants_and_teacher_flags_reach_the_runs(tmp_path):
    """What the variants of issue #30 and TEACHER_FLAGS pass to each run (fake python)."""
    fake = tmp_path / "fake_python"
    fake.write_text(FAKE_PYTHON.replace('echo "$dir" >> "$CALLS"', 'echo "$*" >> "$CALLS"')
                    .replace("sleep 1", ""))
    fake.chmod(0o755)
    calls = tmp_path / "calls.txt"
    env = reproduce_env(tmp_path / "out", tmp_path / "record", python=str(fake),
                        CALLS=str(calls), METHODS="sid_mse sid_long_aug kd_long finetune_aug",
                        SWEEP_LAYERS="", TEACHER_FLAGS="--teacher_epochs=7")
    done = subprocess.run(["bash", os.path.join(REPO, "scripts", "reproduce.sh")], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = {line.split("--model_dir=")[1].rsplit("/", 1)[1]: line.split()
            for line in calls.read_text().splitlines()}
    assert "--teacher_epochs=7" in runs["teacher"]
    assert not any(a.startswith("--teacher_learning_rate") for a in runs["teacher"])
    assert "--internal_losses=attention_kl,cls_cosine,hidden_mse" in runs["sid_mse_L2_s0"]
    # sid_long: the classifier stage twice as long (1 -> 2 epochs), copies without labels.
    assert {"--schedule=sid", "--epochs=2", "--augment=4"} <= set(runs["sid_long_aug_L2_s0"])
    assert "--augment_labels=source" not in runs["sid_long_aug_L2_s0"]
    # kd_long: standard KD for as many epochs as sid_long (2 stages + 2 classifier epochs).
    assert {"--schedule=kd", "--epochs=4"} <= set(runs["kd_long_L2_s0"])
    assert {"--schedule=finetune", "--augment_labels=source"} <= set(runs["finetune_aug_L2_s0"])
