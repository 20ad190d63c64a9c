"""The command line end to end on a tiny run: stages, results.json, TensorBoard, export."""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from kd_keras.data.examples import Example
from kd_keras.data.features import tokenize

TINY_RUN = ["--task=synthetic", "--teacher=tiny", "--tiny_layers=4", "--tiny_hidden_size=48",
            "--tiny_heads=3", "--teacher_epochs=2", "--student_layers=2", "--epochs=1",
            "--epochs_per_stage=2", "--synthetic_size=256", "--max_seq_length=32",
            "--batch_size=32", "--speed_seconds=0"]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args, check=True, backend="tensorflow", tensorflow=True, xla_flags=None):
    """``python -m kd_keras.main *args`` in a new process on Keras' ``backend``.

    Args:
        check: raise with the process's output when it exits non-zero.
        tensorflow: False runs it with TensorFlow unimportable (tests/without_tensorflow.py),
            as on a machine with Keras and JAX only.
        xla_flags: added to this process's $XLA_FLAGS for the process.
    """
    launcher = ["-m"] if tensorflow else [os.path.join(REPO, "tests", "without_tensorflow.py")]
    env = dict(os.environ, KERAS_BACKEND=backend)
    if xla_flags is not None:
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {xla_flags}".strip()
    result = subprocess.run([sys.executable, *launcher, "kd_keras.main", *args], cwd=REPO,
                            capture_output=True, text=True, timeout=900, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def run_cli_batch(*commands, check=True):
    """Each argument list as ``python -m kd_keras.main *args`` would run it, one after
    another in one new process (tests/cli_batch.py: TensorFlow imported once, each
    command with its own flags, stdout and stderr): one result per command, with
    returncode, stdout and stderr as run_cli's.

    Args:
        check: raise with a command's output when it exits non-zero.
    """
    import tempfile
    import types

    with tempfile.TemporaryDirectory() as folder:
        cases, found = os.path.join(folder, "cases.json"), os.path.join(folder, "found.json")
        with open(cases, "w", encoding="utf-8") as handle:
            json.dump([list(command) for command in commands], handle)
        subprocess.run([sys.executable, os.path.join(REPO, "tests", "cli_batch.py"), cases,
                        found], cwd=REPO, check=True, timeout=900, capture_output=True)
        with open(found, encoding="utf-8") as handle:
            results = [types.SimpleNamespace(**result) for result in json.load(handle)]
    for command, result in zip(commands, results):
        if check and result.returncode != 0:
            raise AssertionError(f"{command}: exit {result.returncode}\n{result.stdout}\n"
                                 f"{result.stderr}")
    return results


def tags(log_dir):
    found = set()
    for path in glob.glob(os.path.join(log_dir, "**", "events.out.tfevents.*"), recursive=True):
        accumulator = EventAccumulator(path, size_guidance={"tensors": 0, "images": 0})
        accumulator.Reload()
        found |= set(accumulator.Tags()["tensors"]) | set(accumulator.Tags()["images"])
    return found


@pytest.fixture(scope="module")
def sid_run(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("sid"))
    result = run_cli(*TINY_RUN, "--schedule=sid", f"--model_dir={model_dir}",
                     "--export_formats=saved_model,litert_int8,onnx")
    return model_dir, result


def test_sid_pipeline_results(sid_run):
    model_dir, result = sid_run
    with open(os.path.join(model_dir, "results.json")) as handle:
        results = json.load(handle)
    assert results["task"] == "synthetic" and results["schedule"] == "sid"
    assert [s["stage"] for s in results["stages"]] == [1, 2, 3]
    for who in ("teacher", "student"):
        assert set(results[who]["dev"]) == {"accuracy", "f1"}
        assert results[who]["parameters"] > 0
    assert results["student"]["layers"] == 2 and results["teacher"]["layers"] == 4
    assert set(results["student"]["attention_kl"]) == {"att_kl_s1_t2", "att_kl_s2_t4"}
    assert results["student"]["attention_kl_mean"] >= 0
    history = results["history"]
    assert history["cos_s1_t2"][1] < history["cos_s1_t2"][0]  # stage 1 learns layer 1
    assert "Stage 2/3: sid 2/3: layers 1-2" in result.stdout
    assert "speed-up" in result.stdout
    assert os.path.exists(os.path.join(model_dir, "config.json"))
    assert not os.path.exists(os.path.join(model_dir, "backup", "distill"))  # finished


def test_the_pipeline_writes_each_format_asked_and_scores_it_with_its_runtime(sid_run):
    """One flag, every format; LiteRT int8 and ONNX float scored on dev by their own
    runtimes, next to the student's own dev metric."""
    model_dir, result = sid_run
    with open(os.path.join(model_dir, "results.json")) as handle:
        results = json.load(handle)
    export_dir = os.path.join(model_dir, "export")
    assert results["exports"] == {"saved_model": os.path.join(export_dir, "1"),
                                  "litert_int8": os.path.join(export_dir, "litert_int8", "1"),
                                  "onnx": os.path.join(export_dir, "onnx", "1")}
    assert set(results["export_scores"]) == {"litert_int8", "onnx"}
    student = results["student"]["dev"]["accuracy"]
    assert results["export_scores"]["onnx"]["dev"]["accuracy"] == pytest.approx(student,
                                                                                abs=0.01)
    assert abs(results["export_scores"]["litert_int8"]["dev"]["accuracy"] - student) <= 0.1
    assert "Student onnx: " in result.stdout and "with its own runtime" in result.stdout


def test_the_saved_config_is_the_flags_given_then_what_help_says(sid_run):
    """config.json holds the flags the run gave and, for every other setting, the value
    --helpfull names (the tiny-teacher preset's where it says so)."""
    from test_presets import check_against_help

    with open(os.path.join(sid_run[0], "config.json")) as handle:
        saved = json.load(handle)
    given = {arg[2:].split("=")[0] for arg in TINY_RUN} | {"schedule", "model_dir",
                                                          "export_formats"}
    check_against_help(saved, given)
    assert saved["train"]["learning_rate"] == 5e-4  # the preset's, not the flag's 1e-4


def test_sid_tensorboard_tags(sid_run):
    model_dir, _ = sid_run
    found = tags(os.path.join(model_dir, "logs", "distill"))
    for tag in ("epoch_loss", "epoch_att_kl_s1_t2", "epoch_cos_s2_t4", "epoch_soft",
                "epoch_hard", "epoch_learning_rate", "epoch_stage", "epoch_accuracy",
                "epoch_f1", "stage", "attention/stage_1", "attention/stage_3",
                "_hparams_/session_start_info"):
        assert tag in found, tag


def test_export_matches_student(sid_run, tokenizer):
    import tensorflow_text  # noqa: F401  (registers the ops the raw-text signature uses)

    from kd_keras import models

    model_dir, _ = sid_run
    student = models.load_pretrained(os.path.join(model_dir, "student"), 2, model_dir)
    loaded = tf.saved_model.load(os.path.join(model_dir, "export", "1"))
    examples = [Example("w2 w4 w6", "w1 w3 w8 w5", 1),
                Example("w11 w13", "w20 w22 w24 w7 w9", 0)]
    features = tokenize(examples, tokenizer, 32)
    x = {k: tf.constant(v) for k, v in features.padded().items()}
    expected = np.asarray(student(x))
    got = loaded.signatures["serving_default"](**x)
    assert np.abs(got["logits"].numpy() - expected).max() <= 1e-5
    np.testing.assert_allclose(got["probabilities"].numpy().sum(-1), 1.0, atol=1e-6)
    text = loaded.signatures["serving_text"](
        text_a=tf.constant([e.text_a for e in examples]),
        text_b=tf.constant([e.text_b for e in examples]))
    assert np.abs(text["logits"].numpy() - expected).max() <= 1e-5
    labels = [b.decode() for b in text["label"].numpy()]
    assert labels == [["b_more_positive", "a_more_positive"][i] for i in expected.argmax(-1)]
    assets = os.listdir(os.path.join(model_dir, "export", "1", "assets"))
    assert {"vocab.txt", "labels.txt"} <= set(assets)
    assert not [n for n in os.listdir(os.path.join(model_dir, "export")) if n.startswith(".")]


def test_pid_pipeline_stage_sequence(sid_run, tmp_path):
    teacher = os.path.join(sid_run[0], "teacher")  # fine-tuned there: no second fine-tuning
    run_cli(*TINY_RUN, "--schedule=pid", f"--model_dir={tmp_path}", "--cos_threshold=10",
            "--mode=distill", f"--teacher={teacher}", "--teacher_finetuned")
    with open(tmp_path / "results.json") as handle:
        stages = json.load(handle)["stages"]
    assert [(s["stage"], s["epochs"]) for s in stages] == [(1, 1), (2, 1), (3, 1)]
    assert stages[0]["name"].startswith("pid 1/3: layer 1")


def test_evaluate_predict_and_export_modes(sid_run, tmp_path):
    """evaluate with the run's flags; predict and export with --model_dir alone (the
    folder's config.json supplies the rest); a refused export changes nothing.  Each
    group of commands runs in one process (run_cli_batch)."""
    model_dir, _ = sid_run
    common = [f"--model_dir={model_dir}"]
    predict_in = tmp_path / "in.tsv"
    predict_in.write_text("text_a\ttext_b\tlabel\nw2 w4\tw1 w3\ta_more_positive\n"
                          "w1\tw2 w4 w6\tb_more_positive\n")
    out = tmp_path / "out.tsv"
    evaluated, _, _ = run_cli_batch(
        [*TINY_RUN, *common, "--mode=evaluate"],
        [*common, "--mode=predict", f"--predict_file={predict_in}", f"--output_file={out}"],
        [*common, "--mode=export"])  # next free version
    assert "speed-up" in evaluated.stdout
    lines = out.read_text().splitlines()
    assert lines[0] == "index\tprediction" and len(lines) == 3
    assert all(line.split("\t")[1] in ("a_more_positive", "b_more_positive")
               for line in lines[1:])
    assert os.path.isdir(os.path.join(model_dir, "export", "2"))
    before = snapshot(os.path.join(model_dir, "export"))
    bad = ((["--export_version=1"], "already exists"),
           (["--export_formats=onnx,tflite"], "unknown format 'tflite'"))
    *refusals, exported = run_cli_batch(
        *([*common, "--mode=export", *flags] for flags, _ in bad),
        [*common, "--mode=export", "--export_formats=litert,litert_int8,litert_full_int8,hf"],
        check=False)
    for (_, says), refused in zip(bad, refusals):
        assert refused.returncode == 2 and says in refused.stderr, refused.stderr[-2000:]
        assert len([line for line in refused.stderr.splitlines()
                    if line.startswith("error: ")]) == 1
    assert exported.returncode == 0, exported.stderr[-2000:]
    # The refusals wrote nothing and changed nothing: what is new is the last export's.
    after = snapshot(os.path.join(model_dir, "export"))
    assert {name: after.get(name) for name in before} == before
    formats = ("litert", "litert_int8", "litert_full_int8", "hf")
    # One version for all four: the first free in each (the pipeline wrote litert_int8/1).
    assert ({tuple(name.split(os.sep)[:2]) for name in set(after) - set(before)}
            == {(name, "2") for name in formats})
    assert not os.path.exists(os.path.join(model_dir, "export", "litert", "1"))


def test_check_export_script(sid_run):
    model_dir, _ = sid_run
    result = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "check_export.py"),
                             os.path.join(model_dir, "export", "1")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "REST request body" in result.stdout and "serving_text" in result.stdout


def snapshot(folder):
    """Every file under folder with its size and modification time."""
    found = {}
    for root, _, files in os.walk(folder):
        for name in files:
            stat = os.stat(os.path.join(root, name))
            found[os.path.relpath(os.path.join(root, name), folder)] = (stat.st_size,
                                                                        stat.st_mtime_ns)
    return found


def test_another_run_in_a_used_folder_is_refused_and_changes_nothing(sid_run, tmp_path):
    model_dir, _ = sid_run
    before = snapshot(model_dir)
    glue = tmp_path / "MRPC"
    glue.mkdir()
    for split in ("train", "dev"):
        (glue / f"{split}.tsv").write_text("Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
                                           "1\t1\t2\tw2 w4\tw2 w6\n0\t3\t4\tw1\tw2\n")
    others = {"a GLUE task after the demo": ["--task=mrpc", f"--data_dir={tmp_path}",
                                             "--schedule=kd"],
              "another teacher": [*TINY_RUN, "--tiny_layers=2"],
              "another student": [*TINY_RUN, "--student_layers=1"]}
    results = run_cli_batch(*([*flags, f"--model_dir={model_dir}"]
                              for flags in others.values()), check=False)
    for name, result in zip(others, results):
        assert result.returncode == 2, (name, result.stdout, result.stderr)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, (name, result.stderr)
        assert errors[0].startswith(f"error: --model_dir={model_dir} holds another run"), name
    assert snapshot(model_dir) == before


def test_the_same_command_again_reuses_the_teacher_and_the_student(sid_run):
    model_dir, _ = sid_run
    kept = {k: v for k, v in snapshot(model_dir).items()
            if k.startswith(("teacher", "student", "export"))}
    exports = sorted(os.listdir(os.path.join(model_dir, "export")))
    result = run_cli(*TINY_RUN, "--schedule=sid", f"--model_dir={model_dir}")
    assert "Fine-tuning the teacher" not in result.stdout
    assert "was distilled by these same settings; using it" in result.stdout
    assert "Stage 1/" not in result.stdout
    # Teacher, student and export untouched; the export printed is the one there.
    assert {k: v for k, v in snapshot(model_dir).items()
            if k.startswith(("teacher", "student", "export"))} == kept
    assert sorted(os.listdir(os.path.join(model_dir, "export"))) == exports
    shown = next(line for line in result.stdout.splitlines()
                 if line.startswith("Student saved_model: ")).split(": ", 1)[1]
    assert os.path.dirname(shown) == os.path.join(model_dir, "export")
    assert os.path.basename(shown) in exports
