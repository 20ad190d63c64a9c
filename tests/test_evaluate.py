"""pipeline.evaluation: extra evaluation splits (MNLI dev_mismatched) and the majority-class
baseline, checked against direct computations."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_teacher
from kd_keras.data.examples import Example
from kd_keras.data.features import tokenize
from kd_keras import metrics, tasks
from kd_keras.pipeline import evaluation, inputs, report


def features(tokenizer, labels, seed):
    rng = np.random.RandomState(seed)
    examples = [Example(" ".join(f"w{w}" for w in rng.randint(0, 92, 5)),
                             " ".join(f"w{w}" for w in rng.randint(0, 92, 3)), int(label))
                for label in labels]
    return tokenize(examples, tokenizer, 16)


def test_evaluate_reports_mismatched_dev_and_the_majority_class(tokenizer, tmp_path):
    spec = tasks.get_task("mnli")
    train = features(tokenizer, [1, 1, 1, 0, 2, 1, 0], seed=0)  # majority: 1 (entailment)
    dev = features(tokenizer, [0, 1, 2, 2, 0, 0], seed=1)
    mismatched = features(tokenizer, [2, 1, 1, 0, 2], seed=2)
    task = inputs.TaskData(spec, tokenizer, train, dev, 0, {"dev_mismatched": mismatched})
    teacher = tiny_teacher(num_labels=3)
    student = tiny_teacher(num_layers=2, num_labels=3, seed=5)
    scores, stored = evaluation.evaluate(task, teacher, student, [(1, 2), (2, 4)], 64)
    for who, model in (("teacher", teacher), ("student", student)):
        logits = np.asarray(model({k: tf.constant(v) for k, v in mismatched.padded().items()}))
        expected = metrics.compute(spec.metrics, mismatched.labels, logits)
        assert scores[who]["dev_mismatched"] == pytest.approx(expected)
    assert scores["majority_class"]["label"] == "entailment"
    assert scores["majority_class"]["train_share"] == pytest.approx(4 / 7)
    assert scores["majority_class"]["dev"]["accuracy"] == pytest.approx(1 / 6)
    np.testing.assert_array_equal(stored["dev_mismatched_labels"], mismatched.labels)
    assert stored["dev_mismatched_student_logits"].shape == (5, 3)
    assert set(scores["student"]["attention_kl"]) == {"att_kl_s1_t2", "att_kl_s2_t4"}
    table = report.results_table(scores, spec.main_metric)
    assert "dev_mismatched accuracy" in table and "majority class 'entailment'" in table
