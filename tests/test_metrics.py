"""GLUE metrics against values computed independently (by hand and with scipy)."""

import numpy as np
import pytest
from scipy import stats

from kd_keras import metrics


def test_accuracy_f1_mcc_by_hand():
    labels = np.array([1, 1, 1, 0, 0, 0, 1, 0])
    preds = np.array([1, 0, 1, 0, 1, 0, 1, 0])
    # tp=3, fn=1, fp=1, tn=3
    assert metrics.accuracy(labels, preds) == pytest.approx(6 / 8)
    assert metrics.f1(labels, preds) == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))
    assert metrics.mcc(labels, preds) == pytest.approx((9 - 1) / np.sqrt(4 * 4 * 4 * 4))


def test_degenerate_cases_are_zero_not_nan():
    assert metrics.f1(np.zeros(4), np.zeros(4)) == 0.0
    assert metrics.mcc(np.array([0, 1, 0, 1]), np.ones(4)) == 0.0
    assert metrics.pearson(np.ones(3), np.array([1.0, 2.0, 3.0])) == 0.0


def test_correlations_match_scipy_with_ties():
    rng = np.random.RandomState(0)
    x = rng.randint(0, 5, size=50).astype(float)  # many ties
    y = x + rng.randn(50)
    assert metrics.pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0], rel=1e-9)
    assert metrics.spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], rel=1e-9)


def test_compute_from_logits():
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [0.5, 0.2]])
    assert metrics.compute(["accuracy"], np.array([0, 1, 1]), logits) == {
        "accuracy": pytest.approx(2 / 3)}
    got = metrics.compute(["pearson"], np.array([1.0, 2.0, 3.0]),
                          np.array([[1.0], [2.0], [3.5]]), regression=True)
    assert got["pearson"] == pytest.approx(stats.pearsonr([1, 2, 3], [1, 2, 3.5])[0])
