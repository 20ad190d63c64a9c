"""The command line on Keras' JAX backend: a tiny sid run end to end with TensorFlow
unimportable, data-parallel over two CPU devices, its student exported from a TensorFlow
run, and the errors of what JAX cannot do."""

import glob
import importlib.util
import json
import os

import numpy as np
import pytest

from test_end_to_end import run_cli
from kd_keras.data.features import tokenize
from kd_keras.data.sources import load_examples

# Smaller than test_end_to_end's run: every new batch shape costs the jitted step a
# compilation on JAX.
JAX_RUN = ["--task=synthetic", "--teacher=tiny", "--tiny_layers=2", "--tiny_hidden_size=32",
           "--tiny_heads=2", "--teacher_epochs=1", "--student_layers=1", "--epochs=1",
           "--epochs_per_stage=1", "--synthetic_size=128", "--max_seq_length=16",
           "--batch_size=32", "--speed_seconds=0", "--schedule=sid"]

pytestmark = pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                                reason="jax is not installed")


TWO_CPU_DEVICES = "--xla_force_host_platform_device_count=2"


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("jax"))
    # As on a machine with Keras and JAX only (nothing may need TensorFlow), data-parallel
    # over two CPU devices.
    result = run_cli(*JAX_RUN, f"--model_dir={model_dir}", "--distribution_strategy=mirrored",
                     backend="jax", check=False, tensorflow=False, xla_flags=TWO_CPU_DEVICES)
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    return model_dir, result


def test_sid_run_on_jax_without_tensorflow_writes_results_and_tensorboard_but_no_export(
        jax_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model_dir, result = jax_run
    with open(os.path.join(model_dir, "results.json")) as handle:
        results = json.load(handle)
    assert [s["stage"] for s in results["stages"]] == [1, 2]
    assert set(results["student"]["attention_kl"]) == {"att_kl_s1_t2"}
    assert results["history"]["cos_s1_t2"][0] > 0 and results["speedup"] > 0
    assert os.path.exists(os.path.join(model_dir, "student", "model.safetensors"))
    assert "Export skipped" in result.stdout and "KERAS_BACKEND=tensorflow" in result.stdout
    assert not os.path.exists(os.path.join(model_dir, "export"))
    assert not os.path.exists(os.path.join(model_dir, "backup", "distill"))  # finished
    found = set()
    for path in glob.glob(os.path.join(model_dir, "logs", "distill", "**", "events.*"),
                          recursive=True):
        events = EventAccumulator(path, size_guidance={"tensors": 0})
        events.Reload()
        found |= set(events.Tags()["tensors"])
    assert {"epoch_loss", "epoch_att_kl_s1_t2", "epoch_stage", "epoch_f1",
            "epoch_learning_rate", "stage", "attention/stage_1",
            "_hparams_/session_start_info"} <= found


def test_export_on_jax_is_refused_and_tensorflow_exports_the_jax_student(jax_run):
    model_dir, _ = jax_run
    # --model_dir alone: the folder's config.json supplies the run's other flags.
    refused = run_cli(f"--model_dir={model_dir}", "--mode=export", backend="jax", check=False)
    assert refused.returncode == 2, refused.stdout + refused.stderr[-2000:]
    assert "KERAS_BACKEND=tensorflow" in refused.stderr + refused.stdout
    assert not os.path.exists(os.path.join(model_dir, "export"))
    exported = run_cli(f"--model_dir={model_dir}", "--mode=export", check=False)
    assert exported.returncode == 0, exported.stdout + exported.stderr[-4000:]

    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (ops of the raw-text signature)

    from kd_keras import tasks, tokenization

    # The SavedModel serves the dev logits the JAX run recorded.
    recorded = np.load(os.path.join(model_dir, "dev_predictions.npz"))
    examples, _ = load_examples(tasks.get_task("synthetic"), "dev", synthetic_size=128,
                                     seed=0)
    tokenizer = tokenization.load_tokenizer(os.path.join(model_dir, "student"), str(model_dir))
    features = tokenize(examples, tokenizer, 16)
    serve = tf.saved_model.load(os.path.join(model_dir, "export", "1")).signatures[
        "serving_default"]
    served = serve(**{k: tf.constant(v) for k, v in features.padded().items()})["logits"]
    np.testing.assert_allclose(served.numpy(), recorded["student_logits"], atol=1e-5)


@pytest.mark.parametrize("flags, message", [
    (["--distribution_strategy=multi_worker_mirrored"], "needs Keras' TensorFlow backend"),
    (["--distribution_strategy=mirrored", "--batch_size=31"],
     "--batch_size=31 does not split over the 2 devices"),
])
def test_what_jax_cannot_do_is_one_line_and_exit_2(tmp_path, flags, message):
    result = run_cli(*JAX_RUN, f"--model_dir={tmp_path / 'run'}", *flags, backend="jax",
                     check=False, tensorflow=False, xla_flags=TWO_CPU_DEVICES)
    assert result.returncode == 2, result.stdout + result.stderr[-2000:]
    assert message in result.stderr.strip().splitlines()[-1]
    assert not os.path.exists(tmp_path / "run")


def test_glue_without_data_dir_or_tensorflow_is_one_line_and_exit_2(tmp_path, monkeypatch):
    monkeypatch.delenv("GLUE_DIR", raising=False)
    result = run_cli(*JAX_RUN, "--task=mrpc", f"--model_dir={tmp_path / 'run'}", backend="jax",
                     check=False, tensorflow=False)
    assert result.returncode == 2, result.stdout + result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert "TFDS needs TensorFlow, which is not installed" in last and "--data_dir" in last
    assert not os.path.exists(tmp_path / "run")
