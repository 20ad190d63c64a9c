"""scripts/bench.py runs end to end at tiny size, on TensorFlow and (handed over to
scripts/bench_jax.py) on JAX: a smoke test, timings are not checked."""

import json
import os
import subprocess
import sys

from test_end_to_end import REPO


def test_bench_tiny_prints_every_measurement_and_ratio():
    result = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "bench.py"),
                             "--size=tiny", "--warmup=1", "--repeats=1", "--no_write"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("teacher_forward", "student_train_step", "naive_distill_step", "distill_all",
                 "distill_pid_stage_1", "distill_sid_stage_2", "distill_sid_classifier_cached",
                 "serving_student_batch_32", "serving_teacher_batch_1",
                 "mean sid internal stage / distill_all"):
        assert name in result.stdout, name


def test_bench_only_all_prints_one_json_line_with_the_step_time():
    result = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "bench.py"),
                             "--size=tiny", "--warmup=1", "--repeats=1", "--only_all"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    line = [text for text in result.stdout.splitlines() if text.startswith("{")][-1]
    assert json.loads(line)["distill_all_seconds"] > 0


def test_bench_backend_jax_hands_over_to_bench_jax():
    result = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "bench.py"),
                             "--backend=jax", "--size=tiny", "--warmup=1", "--repeats=1",
                             "--rows=teacher_forward", "--no_write"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " on JAX " in result.stdout and "teacher_forward" in result.stdout
