"""scripts/bench.py runs end to end at tiny size, on TensorFlow and (handed over to
scripts/bench_jax.py) on JAX: a smoke test, timings are not checked."""

import json
import os
import subprocess
import sys

import pytest

from test_end_to_end import REPO


# Every row's step traced (minutes on a slow CPU): run with KD_KERAS_LONG_TESTS=1 after
# changing the Distiller or the benchmark scripts.  The default suite runs bench.py's
# `all` step in test_bench_only_all_prints_one_json_line_with_the_step_time.
@pytest.mark.skipif(not os.environ.get("KD_KERAS_LONG_TESTS"),
                    reason="every benchmark row (minutes); KD_KERAS_LONG_TESTS=1 runs it")
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


def bench_main(monkeypatch, *arguments):
    """scripts/bench.py's main() in this process (TensorFlow is imported already), run
    with ``arguments``; returns its exit code."""
    sys.path.insert(0, os.path.join(REPO, "scripts"))
    import bench

    monkeypatch.setattr(sys, "argv", ["bench.py", *arguments])
    return bench.main()


def test_bench_only_all_prints_one_json_line_with_the_step_time(monkeypatch, capsys):
    assert bench_main(monkeypatch, "--size=tiny", "--warmup=1", "--repeats=1",
                      "--only_all") == 0
    line = [text for text in capsys.readouterr().out.splitlines() if text.startswith("{")][-1]
    assert json.loads(line)["distill_all_seconds"] > 0


def test_bench_backend_jax_hands_over_to_bench_jax(monkeypatch):
    """The command bench.py starts; test_bench_jax.py runs bench_jax.py itself."""
    started = []
    monkeypatch.setattr(subprocess, "run", lambda command, env: started.append(
        (command, env)) or subprocess.CompletedProcess(command, 0))
    assert bench_main(monkeypatch, "--backend=jax", "--size=tiny", "--warmup=1",
                      "--repeats=1", "--rows=teacher_forward", "--no_write") == 0
    (command, env), = started
    assert command[:2] == [sys.executable, os.path.join(REPO, "scripts", "bench_jax.py")]
    assert env["KERAS_BACKEND"] == "jax"
    for flag in ("--size=tiny", "--warmup=1", "--repeats=1", "--no_write",
                 "--rows=teacher_forward"):
        assert flag in command, flag


def bench_sizes():
    sys.path.insert(0, os.path.join(REPO, "scripts"))
    import bench_sizes as module

    return module


def test_ratios_are_computed_from_the_rows_that_were_timed():
    seconds = {"teacher_forward": 1.0, "student_train_step": 3.0, "distill_all": 5.0,
               "distill_sid_stage_1": 1.0, "distill_sid_stage_2": 3.0,
               "distill_sid_classifier_cached": 4.5}
    found = bench_sizes().ratios({k: {"seconds": v} for k, v in seconds.items()}, n=2)
    # By hand: 5 / (1 + 3); mean(1, 3) / 5; 4.5 / 3; (2 * 2 + 4.5) / (3 * 5).
    assert found == {
        "fused_all / (teacher_forward + student_train_step)": 1.25,
        "mean sid internal stage / distill_all": 0.4,
        "sid classifier cached / student_train_step": 1.5,
        "sid run (N internal + cached classifier epochs) / same epochs of all": 8.5 / 15}
    # Without the second sid stage no sid ratio can be formed.
    del seconds["distill_sid_stage_2"]
    partial = bench_sizes().ratios({k: {"seconds": v} for k, v in seconds.items()}, n=2)
    assert not [name for name in partial if "sid run" in name or "mean sid" in name]


def test_a_cpu_capped_at_avx2_is_named_so_and_a_half_cap_is_refused(capsys):
    module = bench_sizes()
    assert module.isa_cap({}) == ""
    assert module.isa_cap(dict(module.AVX2_CAP)) == "AVX2"
    capped = module.cpu_description(dict(module.AVX2_CAP))
    assert not capped["bfloat16"] and "bf16" not in capped["tag"]
    if module.cpu_description({})["isa"] == "AVX-512":
        assert capped["isa"] == "AVX-512 capped at AVX2"
        assert capped["tag"].endswith("-avx512-capped-avx2")
    with pytest.raises(SystemExit) as refused:
        module.isa_cap({"ONEDNN_MAX_CPU_ISA": "AVX2"})
    assert refused.value.code == 2
    assert "ATEN_CPU_CAPABILITY=avx2" in capsys.readouterr().err


def test_bench_memory_takes_each_size_in_as_transfer_text_in_its_own_process(tokenizer,
                                                                            tmp_path):
    folder = tmp_path / "tokenizer"
    tokenizer.save_pretrained(str(folder))
    out = tmp_path / "memory.json"
    result = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "bench_memory.py"),
                             "--sizes=30,90", f"--tokenizer={folder}", f"--out={out}"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert [row["lines"] for row in rows] == [30, 90]
    for row in rows:
        assert row["start_mb"] <= row["after_tokenizing_mb"] <= row["peak_mb"]
        assert row["mapped"]  # the joined token ids live in files, not in memory
    assert "3x the lines" in result.stdout
