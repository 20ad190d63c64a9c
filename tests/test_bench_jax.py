"""The JAX benchmark and the GPU run's pieces: bench_jax.py runs with TensorFlow
unimportable and reports what its timings imply, the FLOP count is BERT's by hand,
gpu_summary.py's ratios and targets, and (where PyTorch is installed) the eager PyTorch
peer computes the Distiller's terms."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(REPO, "scripts")
sys.path.insert(0, SCRIPTS)
import bench_sizes  # noqa: E402
import gpu_summary  # noqa: E402

needs_jax = pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                               reason="jax is not installed")


def test_layer_flops_count_bert_matrix_products_by_hand():
    size = dict(batch=2, seq=8, hidden=4, intermediate=16)
    # Per token: Q, K, V and the attention output are 4x4 (16 multiply-adds each), the
    # feed-forward 4x16 and 16x4 (64 each); per example and head-merged: scores and
    # context are 8x8x4 multiply-adds each.
    per_token = 4 * 16 + 2 * 64
    attention = 2 * 8 * 8 * 4
    expected = 2 * (2 * 8 * per_token + 2 * attention)
    assert bench_sizes.layer_flops(size) == expected
    # A forward-only layer once, a trained layer three times.
    assert bench_sizes.step_flops(size, 12, 6) == expected * (12 + 18)
    assert bench_sizes.step_flops(size, 0, 1) == 3 * expected


@needs_jax
def test_bench_jax_runs_without_tensorflow_and_reports_ratios_and_mfu(tmp_path):
    out = tmp_path / "jax.json"
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "tests", "without_tensorflow.py"),
         os.path.join(SCRIPTS, "bench_jax.py"), "--size=tiny", "--warmup=1", "--repeats=1",
         "--rows=teacher_forward,student_train_step,distill_all", "--peak_tflops=0.5",
         f"--json={out}"], cwd=REPO, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, KERAS_BACKEND="jax"))
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    found = json.loads(out.read_text())
    timings = found["timings"]
    assert set(timings) == {"teacher_forward", "student_train_step", "distill_all"}
    s = {name: value["seconds"] for name, value in timings.items()}
    assert found["ratios"]["fused_all / (teacher_forward + student_train_step)"] == \
        pytest.approx(s["distill_all"] / (s["teacher_forward"] + s["student_train_step"]))
    size = bench_sizes.SIZES["tiny"]
    flops = bench_sizes.step_flops(size, size["teacher_layers"], size["student_layers"])
    assert timings["distill_all"]["tflops_per_second"] == pytest.approx(
        flops / s["distill_all"] / 1e12)
    assert found["mfu"]["distill_all"] == pytest.approx(
        timings["distill_all"]["tflops_per_second"] / 0.5)
    assert found["environment"]["device"]["platform"] == "cpu"


def made_up_run(folder, precision, ours, parts, theirs):
    """bench_jax.py / bench_torch_step.py outputs with the given step seconds."""
    timing = {"seconds": ours, "examples_per_second": 32 / ours, "tflops_per_second": 2.0 / ours}
    jax_result = {"size": bench_sizes.SIZES["base32"],
                  "environment": {"date": "2026-12-03", "device": {"name": "NVIDIA H200"},
                                  "keras": "3.15.1", "jax": "0.11.2", "peak_tflops": 1000.0,
                                  "repeats": 20},
                  "timings": {"distill_all": timing,
                              "teacher_forward": {"seconds": parts[0]},
                              "student_train_step": {"seconds": parts[1]}},
                  "ratios": {"fused_all / (teacher_forward + student_train_step)":
                             ours / sum(parts)},
                  "mfu": {"distill_all": 2.0 / ours / 1000.0}}
    torch_result = {"torch": "2.11.0", "timings": {
        "distill_all": {"seconds": theirs, "examples_per_second": 32 / theirs,
                        "tflops_per_second": 2.0 / theirs},
        "teacher_forward": {"seconds": 0.004}}}
    (folder / f"jax_{precision}.json").write_text(json.dumps(jax_result))
    (folder / f"torch_{precision}.json").write_text(json.dumps(torch_result))


def test_gpu_summary_ratios_and_targets(tmp_path):
    made_up_run(tmp_path, "bfloat16", 0.010, (0.003, 0.0095), 0.031)  # 3.1x, 0.8x
    made_up_run(tmp_path, "float32", 0.020, (0.005, 0.010), 0.040)    # 2.0x, 1.33x
    summary = gpu_summary.summarize(str(tmp_path))
    bf16, f32 = summary["precisions"]["bfloat16"], summary["precisions"]["float32"]
    assert bf16["torch_all / kd_keras_all"] == pytest.approx(3.1)
    assert bf16["kd_keras_all_ms"] == pytest.approx(10.0)
    assert bf16["kd_keras_all / (teacher_forward + student_train_step)"] == \
        pytest.approx(0.8)
    assert bf16["kd_keras_all_mfu"] == pytest.approx(0.2)  # 200 TFLOP/s of 1,000
    assert bf16["torch_all_mfu"] == pytest.approx(2.0 / 0.031 / 1000.0)
    assert f32["torch_all / kd_keras_all"] == pytest.approx(2.0)
    assert [met for *_, met in gpu_summary.targets(summary)] == [True, True]
    made_up_run(tmp_path, "bfloat16", 0.010, (0.003, 0.006), 0.025)  # 2.5x, 1.11x
    assert [met for *_, met in gpu_summary.targets(gpu_summary.summarize(str(tmp_path)))] \
        == [False, False]


def test_gpu_summary_without_runs_says_what_to_run(tmp_path):
    with pytest.raises(SystemExit, match="run scripts/gpu_bench.sh first"):
        gpu_summary.summarize(str(tmp_path))


@needs_jax
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_the_pytorch_peer_computes_the_distillers_terms(tmp_path):
    folder = str(tmp_path / "check")
    made = subprocess.run([sys.executable, os.path.join(SCRIPTS, "bench_jax.py"),
                           f"--check_inputs={folder}"], capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, KERAS_BACKEND="jax"))
    assert made.returncode == 0, made.stderr[-3000:]
    checked = subprocess.run([sys.executable, os.path.join(SCRIPTS, "bench_torch_step.py"),
                              f"--check={folder}"], capture_output=True, text=True,
                             timeout=600)
    assert checked.returncode == 0, checked.stdout + checked.stderr[-3000:]
    assert "PyTorch terms equal kd_keras' within 1e-05 (6 terms)" in checked.stdout


def test_benchmarks_md_gpu_section_shows_the_summary(tmp_path):
    import bench  # scripts/bench.py (TensorFlow is there in the test environment)

    made_up_run(tmp_path, "bfloat16", 0.010, (0.003, 0.0095), 0.031)
    lines = bench.gpu_section(gpu_summary.summarize(str(tmp_path)))
    assert lines[0].startswith("## GPU: NVIDIA H200, 12 -> 6 layers, hidden 768, batch 32")
    assert "| bfloat16 | 10.00 | 31.00 | 3.10x | 0.800 | 20.0% | 6.5% |" in lines
    assert any(line.startswith("| bfloat16 `all` step >= 3x faster than eager PyTorch | "
                               "3.10 | yes |") for line in lines)
