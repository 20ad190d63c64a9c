"""Distilling on the user's own files, end to end: README's worked example at tiny sizes
(classification from CSV), and regression from JSONL."""

import collections
import csv
import json
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

from test_end_to_end import REPO, run_cli, run_cli_batch, tags

sys.path.insert(0, os.path.join(REPO, "scripts"))
import make_example_data  # noqa: E402
from kd_keras.data.examples import Example
from kd_keras.data.features import tokenize

TINY_MODEL = ["--teacher=tiny", "--tiny_layers=4", "--tiny_hidden_size=48", "--tiny_heads=3",
              "--teacher_epochs=2", "--student_layers=2", "--epochs=1",
              "--epochs_per_stage=1", "--max_seq_length=32", "--batch_size=32",
              "--speed_seconds=0"]


def read_labels(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return [row["sentiment"] for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("reviews"))
    make_example_data.write_example(folder, train_size=320, dev_size=80)
    model_dir = os.path.join(folder, "run")
    own = [f"--train_file={folder}/train.csv", f"--dev_file={folder}/dev.csv",
           "--text_fields=review", "--label_field=sentiment"]
    result = run_cli(*own, *TINY_MODEL, "--schedule=sid", f"--model_dir={model_dir}")
    return folder, model_dir, own, result


def test_results_use_the_users_labels_metrics_and_majority_class(example):
    folder, model_dir, _, result = example
    with open(os.path.join(model_dir, "results.json")) as handle:
        results = json.load(handle)
    assert results["task"] == "custom"
    assert results["data"]["labels"] == ["negative", "neutral", "positive"]
    for who in ("teacher", "student"):
        assert set(results[who]["dev"]) == {"accuracy", "macro_f1"}
    # The majority class is the training file's most frequent label, scored on dev.
    train, dev = read_labels(f"{folder}/train.csv"), read_labels(f"{folder}/dev.csv")
    majority = collections.Counter(train).most_common(1)[0][0]
    assert results["majority_class"]["label"] == majority
    assert results["majority_class"]["dev"]["accuracy"] == pytest.approx(
        dev.count(majority) / len(dev))
    assert f"majority class '{majority}'" in result.stdout
    assert [s["stage"] for s in results["stages"]] == [1, 2, 3]
    with open(os.path.join(model_dir, "run_identity.json")) as handle:
        assert json.load(handle)["labels"] == ["negative", "neutral", "positive"]
    found = tags(os.path.join(model_dir, "logs", "distill"))
    assert {"epoch_macro_f1", "epoch_att_kl_s1_t2", "attention/stage_1"} <= found


def student_logits(model_dir, texts):
    from kd_keras import models, tokenization

    student = models.load_pretrained(os.path.join(model_dir, "student"), 3, model_dir)
    tokenizer = tokenization.load_tokenizer(os.path.join(model_dir, "student"), model_dir)
    features = tokenize([Example(t, None, 0) for t in texts], tokenizer, 32)
    return np.asarray(student({k: tf.constant(v) for k, v in features.padded().items()}))


def test_export_and_predict_return_the_users_label_names(example, tmp_path):
    import tensorflow_text  # noqa: F401  (ops of the raw-text signature)

    folder, model_dir, own, _ = example
    labels = ["negative", "neutral", "positive"]
    texts = [json.loads(line)["review"] for line in open(f"{folder}/new.jsonl")]
    expected = student_logits(model_dir, texts)
    export = os.path.join(model_dir, "export", "1")
    assert open(os.path.join(export, "assets", "labels.txt")).read().split() == labels
    served = tf.saved_model.load(export).signatures["serving_text"](
        text_a=tf.constant(texts))
    assert np.abs(served["logits"].numpy() - expected).max() <= 1e-5
    assert [b.decode() for b in served["label"].numpy()] == [
        labels[i] for i in expected.argmax(-1)]
    # Predict: the text field alone (no label), label names and probabilities back.
    out = tmp_path / "predictions.csv"
    run_cli(*own, *TINY_MODEL, f"--model_dir={model_dir}", "--mode=predict",
            f"--predict_file={folder}/new.jsonl", f"--output_file={out}")
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    probabilities = np.exp(expected) / np.exp(expected).sum(-1, keepdims=True)
    assert [r["prediction"] for r in rows] == [labels[i] for i in expected.argmax(-1)]
    np.testing.assert_allclose([[float(r[f"prob_{n}"]) for n in labels] for r in rows],
                               probabilities, atol=1e-5)


def test_a_finished_run_is_used_with_its_folder_alone(example, tmp_path):
    """predict with --model_dir alone labels as predict with every training flag does; a
    flag that repeats the run's value is fine, one that contradicts it is refused with
    both values named, and the folder is left as it was."""
    folder, model_dir, own, _ = example
    full, alone = tmp_path / "full.csv", tmp_path / "alone.csv"
    predict = ["--mode=predict", f"--model_dir={model_dir}",
               f"--predict_file={folder}/new.jsonl"]
    before = sorted(os.listdir(model_dir))
    *predicted, other = run_cli_batch(
        [*own, *TINY_MODEL, *predict, f"--output_file={full}"],
        [*predict, f"--output_file={alone}"],
        [*predict, f"--output_file={tmp_path / 'repeated.csv'}", "--text_fields=review",
         "--teacher=tiny"],
        [*predict, f"--output_file={tmp_path / 'no.csv'}", "--label_field=stars"],
        check=False)
    assert [p.returncode for p in predicted] == [0, 0, 0], [p.stderr for p in predicted]
    assert alone.read_text() == full.read_text() and len(full.read_text().splitlines()) == 6
    # The run's recorded settings apply, not the tiny teacher's training presets.
    assert "presets" not in predicted[1].stdout, predicted[1].stdout
    assert (tmp_path / "repeated.csv").read_text() == full.read_text()
    assert other.returncode == 2 and "holds another run" in other.stderr
    assert '"label_field": "sentiment"' in other.stderr and '"label_field": "stars"' in other.stderr
    assert sorted(os.listdir(model_dir)) == before and not (tmp_path / "no.csv").exists()


def test_full_integer_export_calibrates_on_the_runs_training_file(example):
    """--mode=export with the folder alone reads the recorded training file to calibrate
    litert_full_int8; with that file gone it is one line, exit 2, and no export."""
    from kd_keras import export, tokenization

    folder, model_dir, _, _ = example
    exports = os.path.join(model_dir, "export")
    run_cli("--mode=export", f"--model_dir={model_dir}", "--export_formats=litert_full_int8")
    written = os.path.join(exports, "litert_full_int8", "1")
    texts = [json.loads(line)["review"] for line in open(f"{folder}/new.jsonl")]
    tokenizer = tokenization.load_tokenizer(os.path.join(model_dir, "student"), model_dir)
    features = tokenize([Example(t, None, 0) for t in texts], tokenizer, 32).padded()
    got = export.runner("litert_full_int8", written)(features)
    assert (got.argmax(-1) == student_logits(model_dir, texts).argmax(-1)).all()
    before = sorted(os.walk(exports))
    os.rename(f"{folder}/train.csv", f"{folder}/train.moved")
    try:
        refused = run_cli("--mode=export", f"--model_dir={model_dir}",
                          "--export_formats=litert,litert_full_int8", check=False)
    finally:
        os.rename(f"{folder}/train.moved", f"{folder}/train.csv")
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error: ")]
    assert refused.returncode == 2 and len(errors) == 1, refused.stderr[-2000:]
    assert "litert_full_int8 calibrates on the run's training text" in errors[0]
    assert "train.csv" in errors[0]
    assert sorted(os.walk(exports)) == before


def test_regression_from_jsonl(tmp_path):
    score = {"positive": 1.0, "neutral": 0.5, "negative": 0.0}
    for split, count, seed in (("train", 200, 1), ("dev", 60, 2)):
        with open(tmp_path / f"{split}.jsonl", "w") as handle:
            for _, text, label in make_example_data.rows(count, seed):
                handle.write(json.dumps({"text": text, "stars": score[label]}) + "\n")
    model_dir = tmp_path / "run"
    run_cli(f"--train_file={tmp_path}/train.jsonl", f"--dev_file={tmp_path}/dev.jsonl",
            "--text_fields=text", "--label_field=stars", "--task_type=regression",
            *TINY_MODEL, "--schedule=all", f"--model_dir={model_dir}")
    with open(model_dir / "results.json") as handle:
        results = json.load(handle)
    assert set(results["student"]["dev"]) == {"pearson", "spearman"}
    assert results["majority_class"] is None and results["data"]["labels"] is None
    assert [s["stage"] for s in results["stages"]] == [1]
