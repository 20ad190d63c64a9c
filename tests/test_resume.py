"""A run stopped mid-stage (SIGKILL, SIGTERM, a full disk) and rerun equals an
uninterrupted run."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

from test_end_to_end import REPO, run_cli

sys.path.insert(0, os.path.join(REPO, "scripts"))
import make_example_data  # noqa: E402
import multi_worker_local  # noqa: E402

MODEL = ["--teacher=tiny", "--tiny_layers=4", "--tiny_hidden_size=48", "--tiny_heads=3",
         "--teacher_epochs=1", "--student_layers=2", "--epochs=1", "--epochs_per_stage=2",
         "--max_seq_length=32", "--batch_size=16", "--checkpoint_steps=3", "--schedule=sid",
         "--mode=distill", "--speed_seconds=0"]
# Smaller on JAX (a 2-stage sid), where every new shape costs the jitted step a compile.
JAX_MODEL = [{"--tiny_layers=4": "--tiny_layers=2", "--tiny_hidden_size=48":
              "--tiny_hidden_size=32", "--tiny_heads=3": "--tiny_heads=2",
              "--student_layers=2": "--student_layers=1"}.get(f, f) for f in MODEL]


def run_flags(source, folder, backend="tensorflow"):
    """The run's flags on the synthetic task or on own CSV files (256 training rows)."""
    model = JAX_MODEL if backend == "jax" else MODEL
    if source == "synthetic":
        return ["--task=synthetic", "--synthetic_size=256", *model]
    make_example_data.write_example(folder, train_size=256, dev_size=64)
    # own_data_added: 128 labelled reviews, 128 more as transfer text, one augmented copy
    # of each labelled one (written once, read back by the rerun).
    added = (["--max_train_examples=128", f"--transfer_file={folder}/unlabelled.csv",
              "--max_transfer_examples=128", "--augment=1"]
             if source == "own_data_added" else [])
    return [f"--train_file={folder}/train.csv", f"--dev_file={folder}/dev.csv",
            "--text_fields=review", "--label_field=sentiment", *added, *model]


def student_weights(model_dir):
    from safetensors.numpy import load_file

    return load_file(os.path.join(model_dir, "student", "model.safetensors"))


def read_backup(model_dir):
    """The latest backup's state.json ({} when there is none yet)."""
    path = os.path.join(model_dir, "backup", "distill", "state.json")
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (FileNotFoundError, json.JSONDecodeError):  # not yet, or being replaced
        return {}


def _chief_log(processes, logs, path):
    """output() of a started run: waits for every process, closes the logs and returns
    the chief's (kept in files, which unlike a pipe never fill and stall the run)."""
    def output():
        for process in processes:
            process.wait(timeout=600)
        for log in logs:
            log.close()
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    return output


def one_process(backend):
    """Starts kd_keras.main as one process: (flags, model_dir) -> (processes, output),
    output() waiting for the end and returning what it printed."""
    def start(flags, model_dir):
        path = tempfile.mkstemp(suffix=".log", dir=os.path.dirname(model_dir))[1]
        log = open(path, "w")
        process = subprocess.Popen([sys.executable, "-m", "kd_keras.main", *flags,
                                    f"--model_dir={model_dir}"], cwd=REPO,
                                   stdout=log, stderr=subprocess.STDOUT,
                                   env=dict(os.environ, PYTHONUNBUFFERED="1",
                                            KERAS_BACKEND=backend))
        return [process], _chief_log([process], [log], path)
    return start


def two_workers(flags, model_dir):
    """Starts the run as a two-worker MultiWorkerMirroredStrategy job on local ports
    (scripts/multi_worker_local.py); output() returns the chief's log."""
    log_dir = tempfile.mkdtemp(prefix="workers_", dir=os.path.dirname(model_dir))
    processes, logs, paths = multi_worker_local.start_workers(flags, model_dir, log_dir)
    return processes, _chief_log(processes, logs, paths[0])


def run_to_end(start, run, model_dir):
    processes, output = start(run, model_dir)
    seen = output()
    assert [p.returncode for p in processes] == [0] * len(processes), seen[-4000:]
    return seen


def kill_mid_epoch(start, run, model_dir, epoch, batch, how=signal.SIGKILL):
    """Starts the run; sends every process of it ``how`` (SIGKILL, or SIGTERM: stop after
    a backup) once a backup inside epoch ``epoch`` past batch ``batch`` exists (both
    0-based)."""
    processes, output = start(run, model_dir)
    deadline = time.time() + 300
    while time.time() < deadline and all(p.poll() is None for p in processes):
        state = read_backup(model_dir)
        if state.get("epoch") == epoch and state.get("batch", 0) > batch:
            for process in processes:
                process.send_signal(how)
            break
        time.sleep(0.02)
    seen = output()
    expected = -signal.SIGKILL if how == signal.SIGKILL else 75  # 75: stopped, resumable
    assert [p.returncode for p in processes] == [expected] * len(processes), seen
    return seen


# The own-data variants run the same check on CSV files (both sources end in the same
# Features and make_dataset), the second with transfer text and augmented copies; they
# are left out of the default suite for CI's time: run them with KD_KERAS_LONG_TESTS=1.
SOURCES = ["synthetic"] + (["own_data", "own_data_added"]
                           if os.environ.get("KD_KERAS_LONG_TESTS") else [])


@pytest.mark.parametrize("source", SOURCES)
def test_interrupted_four_ways_in_one_folder_then_rerun_equals_uninterrupted(tmp_path, source):
    """One folder stopped by a full disk in stage 2's first epoch, then by SIGTERM and
    by SIGKILL in its second (that epoch's logged means span three processes' batches),
    then run to the end."""
    check_sigkill_then_rerun(tmp_path, source, "tensorflow", interruptions=(
        "disk_full", (signal.SIGTERM, 3, 2), (signal.SIGKILL, 3, 8)))


def fill_the_disk_mid_stage_2(run, model_dir):
    """Runs until the 16th distillation backup (in stage 2's first epoch) finds the disk
    full (tests/with_full_disk.py): one error line naming the backup, exit 2, no partial
    file, the backups before it kept."""
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "tests", "with_full_disk.py"),
         "distill.previous.next:16", *run, f"--model_dir={model_dir}"],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2 and len(errors) == 1, result.stdout[-3000:] + result.stderr
    assert "no space left on the disk writing" in errors[0]
    assert os.path.join(model_dir, "backup", "distill") in errors[0]
    assert not [name for _, folders, names in os.walk(model_dir) for name in folders + names
                if name.startswith(".tmp") or name.endswith(".tmp")]
    assert [s["stage"] for s in read_backup(model_dir)["run_state"]["stages"]] == [1]
    return result.stdout


def check_sigkill_then_rerun(tmp_path, source, backend, start=None,
                             interruptions=((signal.SIGKILL, 2, 5),)):
    """Stops a sid run on ``backend`` inside stage 2 once or more, one after another in
    the same folder, reruns it to the end, and compares it with an uninterrupted run of
    the same flags (tests/test_resume_jax.py runs it on JAX).

    Args:
        start: how the distillation runs start (one_process(backend) when None;
            two_workers for a multi-worker job); the teacher is fine-tuned in one process.
        interruptions: in order, each stopping one process: (signal, epoch, batch) sends
            the signal once a backup inside that 0-based epoch past that batch exists
            (SIGTERM: preemption, a backup at the next batch and exit 75); "disk_full"
            (first only: one process, TensorFlow) fills the disk at a backup in stage 2's
            first epoch.  Epochs 2 and 3 are stage 2.
    """
    start = start or one_process(backend)
    run = run_flags(source, str(tmp_path / "data"), backend)
    stages = 3 if backend == "tensorflow" else 2  # student layers + the classifier stage
    teacher_dir = str(tmp_path / "teacher_run")
    # The teacher is fine-tuned on TensorFlow for either backend: its Hugging Face folder
    # reads the same on both, and the JAX steps compile slower (CI's time).
    run_cli(*run[:-2], "--mode=train_teacher", f"--model_dir={teacher_dir}")
    straight = str(tmp_path / "straight")
    shutil.copytree(os.path.join(teacher_dir, "teacher"), os.path.join(straight, "teacher"))
    run_to_end(start, run, straight)
    with open(os.path.join(straight, "results.json")) as handle:
        expected = json.load(handle)
    want = student_weights(straight)

    resumed = str(tmp_path / "resumed")
    shutil.copytree(os.path.join(teacher_dir, "teacher"), os.path.join(resumed, "teacher"))
    last_epoch = 2  # 0-based epoch of the latest backup
    for k, interruption in enumerate(interruptions):
        if interruption == "disk_full":
            output = fill_the_disk_mid_stage_2(run, resumed)
        else:
            how, last_epoch, batch = interruption
            output = kill_mid_epoch(start, run, resumed, epoch=last_epoch, batch=batch,
                                    how=how)
            if how != signal.SIGKILL:
                assert f"stopped: {how.name} received" in output
                assert "run the same command again to resume" in output
        if k == 0:
            assert f"Stage 2/{stages}: sid 2/{stages}" in output
        else:
            assert "Resuming distill from its backup at epoch " in output
        assert f"Stage 2/{stages} ends" not in output
        # The backup left is inside stage 2: stage 1 has ended, stage 2 has not.
        assert [s["stage"] for s in read_backup(resumed)["run_state"]["stages"]] == [1]
    second = run_to_end(start, run, resumed)
    line = next(l for l in second.splitlines() if l.startswith("Resuming distill"))
    assert line.startswith(f"Resuming distill from its backup at epoch {last_epoch + 1}, "
                           "batch ")
    last_batch = ([i[2] for i in interruptions if i != "disk_full"] or [0])[-1]
    assert int(line.rsplit(" ", 1)[1].rstrip(".")) > last_batch  # mid-epoch
    assert not os.path.exists(os.path.join(resumed, "backup", "distill"))

    with open(os.path.join(resumed, "results.json")) as handle:
        got = json.load(handle)
    assert got["stages"] == expected["stages"]
    assert [s["stage"] for s in got["stages"]] == list(range(1, stages + 1))
    assert got["dev_history"] == expected["dev_history"]
    # Every epoch's training means, the interrupted ones counted whole
    # (callbacks.ResumedEpochMeans).
    assert got["history"].keys() == expected["history"].keys()
    for metric, values in expected["history"].items():
        np.testing.assert_allclose(got["history"][metric], values, atol=1e-6,
                                   err_msg=f"history {metric}")
    assert got["student"]["dev"] == expected["student"]["dev"]
    have = student_weights(resumed)
    assert want.keys() == have.keys()
    for name in want:
        np.testing.assert_allclose(have[name], want[name], atol=1e-6, err_msg=name)
