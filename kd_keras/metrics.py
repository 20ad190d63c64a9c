"""Metrics on numpy arrays: accuracy, F1, macro F1, Matthews correlation, Pearson, Spearman."""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np


def accuracy(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Fraction of predictions equal to the labels; both int [n]."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    return float(np.mean(labels == predictions))


def _confusion(labels: np.ndarray, predictions: np.ndarray):
    labels, predictions = np.asarray(labels) == 1, np.asarray(predictions) == 1
    tp = float(np.sum(labels & predictions))
    tn = float(np.sum(~labels & ~predictions))
    fp = float(np.sum(~labels & predictions))
    fn = float(np.sum(labels & ~predictions))
    return tp, tn, fp, fn


def f1(labels: np.ndarray, predictions: np.ndarray) -> float:
    """F1 of the positive class (label 1), as GLUE reports for MRPC and QQP; 0 if undefined."""
    tp, _, fp, fn = _confusion(labels, predictions)
    denominator = 2 * tp + fp + fn
    return 0.0 if denominator == 0 else 2 * tp / denominator


def macro_f1(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Unweighted mean over the classes present in labels or predictions of each class's F1
    (one class against the rest); both int [n]."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    scores = []
    for cls in np.union1d(labels, predictions):
        tp = float(np.sum((labels == cls) & (predictions == cls)))
        errors = float(np.sum((labels == cls) != (predictions == cls)))  # fp + fn
        scores.append(2 * tp / (2 * tp + errors))
    return float(np.mean(scores)) if scores else 0.0


def mcc(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Matthews correlation of binary labels (CoLA); 0 when a marginal is empty."""
    tp, tn, fp, fn = _confusion(labels, predictions)
    denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return 0.0 if denominator == 0 else float((tp * tn - fp * fn) / denominator)


def pearson(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Pearson correlation of two float [n] arrays; 0 when either is constant."""
    x = np.asarray(labels, np.float64) - np.mean(labels)
    y = np.asarray(predictions, np.float64) - np.mean(predictions)
    denominator = np.sqrt(np.sum(x * x) * np.sum(y * y))
    return 0.0 if denominator == 0 else float(np.sum(x * y) / denominator)


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing the mean of their ranks."""
    values = np.asarray(values)
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), np.float64)
    sorted_values = values[order]
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start: end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    return ranks


def spearman(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Spearman rank correlation (Pearson of average ranks)."""
    return pearson(_average_ranks(labels), _average_ranks(predictions))


METRICS = {"accuracy": accuracy, "f1": f1, "macro_f1": macro_f1, "mcc": mcc,
           "pearson": pearson, "spearman": spearman}


def compute(names: Sequence[str], labels: np.ndarray, logits: np.ndarray,
            regression: bool = False) -> Dict[str, float]:
    """Computes named metrics from model outputs.

    Args:
        names: metric names (keys of METRICS).
        labels: int [n] class indices, or float [n] scores for regression.
        logits: float [n, classes], or [n, 1] for regression.
        regression: treat the single logit as the prediction.

    Returns:
        metric name -> value.
    """
    logits = np.asarray(logits)
    predictions = logits.reshape(-1) if regression else np.argmax(logits, axis=-1)
    return {name: METRICS[name](labels, predictions) for name in names}
