"""tf.distribute: strategy names, one mirrored step equal to one single-device step, and
two-worker jobs on local ports (a whole run; a distillation from a teacher in the chief's
folder; killed and rerun)."""

import importlib.util
import os
import re
import subprocess
import sys

import pytest

from kd_keras import backends

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def test_unknown_strategy_lists_choices():
    with pytest.raises(ValueError, match="Choose one of: default, one_device, mirrored"):
        backends.strategy("magic")


def test_too_many_gpus_is_an_error():
    with pytest.raises(ValueError, match="GPU"):
        backends.strategy("mirrored", num_gpus=64)


def test_mirrored_step_equals_single_device_step():
    result = subprocess.run([sys.executable, os.path.join(HERE, "mirrored_step.py")],
                            capture_output=True, text=True, timeout=300,
                            cwd=os.path.dirname(HERE),
                            env=dict(os.environ, PYTHONPATH=os.path.dirname(HERE)))
    match = re.search(r"max_weight_diff=(\S+) max_update=(\S+)", result.stdout)
    assert match, result.stdout + result.stderr
    diff, update = float(match.group(1)), float(match.group(2))
    # The step changed the weights; a loss Keras does not scale by the replica count
    # (a plain mean over each replica's half) would double the update.
    assert update > 1e-3
    assert diff <= 1e-5 and diff < update / 50  # 2 replicas changed them as 1 did


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_jax_data_parallel_steps_equal_single_device_steps():
    result = subprocess.run([sys.executable, os.path.join(HERE, "data_parallel_step.py")],
                            capture_output=True, text=True, timeout=300,
                            cwd=os.path.dirname(HERE),
                            env=dict(os.environ, PYTHONPATH=os.path.dirname(HERE)))
    match = re.search(r"devices=(\d+) variable_on=(\d+) max_weight_diff=(\S+) "
                      r"max_update=(\S+)", result.stdout)
    assert match, result.stdout + result.stderr[-4000:]
    devices, holders = int(match.group(1)), int(match.group(2))
    diff, update = float(match.group(3)), float(match.group(4))
    assert devices == 2 and holders == 2  # replicated over both devices
    assert update > 1e-4
    # Dropout on, filler rows in the batch: two devices train as one does.
    assert diff <= 1e-5 and diff < update / 50


def test_two_local_workers_run_the_pipeline_on_the_teacher_in_the_chiefs_folder(tmp_path):
    """scripts/multi_worker_local.py's two-worker job, after a one-process run fine-tuned
    the teacher: that teacher sits in the chief's model_dir only, and the other worker
    must take it from there too, not fine-tune one of its own (which made the two
    workers' collectives disagree and both fail)."""
    from test_end_to_end import run_cli

    sys.path.insert(0, os.path.join(REPO, "scripts"))
    import multi_worker_local

    run_cli(*multi_worker_local.TINY_JOB, "--mode=train_teacher", f"--model_dir={tmp_path}")
    teacher = tmp_path / "teacher" / "model.safetensors"
    before = teacher.read_bytes()
    script = os.path.join(REPO, "scripts", "multi_worker_local.py")
    result = subprocess.run([sys.executable, script, f"--model_dir={tmp_path}"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "worker 0: exit 0" in result.stdout and "worker 1: exit 0" in result.stdout
    assert teacher.read_bytes() == before
    assert not (tmp_path / "workers" / "worker_1" / "teacher").exists()
    assert (tmp_path / "student" / "model.safetensors").exists()
    assert os.path.exists(tmp_path / "results.json")
    assert os.path.isdir(tmp_path / "export" / "1")
    assert os.path.isdir(tmp_path / "workers" / "worker_1")  # the other worker's own copy
    assert not os.path.exists(tmp_path / "backup")  # removed once, by the chief, at the end


@pytest.mark.skipif(not os.environ.get("KD_KERAS_LONG_TESTS"),
                    reason="three two-worker runs (minutes); KD_KERAS_LONG_TESTS=1 runs it")
def test_two_worker_job_killed_mid_stage_then_rerun_equals_uninterrupted(tmp_path):
    from test_resume import check_sigkill_then_rerun, two_workers

    check_sigkill_then_rerun(tmp_path, "synthetic", "tensorflow", start=two_workers)
