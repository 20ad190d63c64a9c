"""A model's logits on a set of examples, and two models' logits and speeds timed side
by side (the speed-up results.json reports)."""

from __future__ import annotations

import time
from typing import Dict, Tuple

import numpy as np

from kd_keras import backends
from kd_keras.data.features import Features
from kd_keras.encoders import EncoderClassifier


def predict_logits(model: EncoderClassifier, features: Features,
                   batch_size: int) -> np.ndarray:
    """Logits float32 [n, labels] in example order."""
    dataset = backends.make_dataset(features, batch_size, training=False)
    forward = backends.current().logits_function(model)
    # [: n]: numpy batches fill the last one up with copies (backends.make_dataset).
    return np.concatenate([np.asarray(forward(x)) for x, *_ in dataset])[: len(features)]


def logits_and_speeds(classifiers: Dict[str, EncoderClassifier], features: Features,
                      batch_size: int, min_rounds: int = 3, min_seconds: float = 1.0
                      ) -> Tuple[Dict[str, np.ndarray], Dict[str, float]]:
    """Each model's logits on ``features`` and its examples per second, timed side by side.

    The logits (float32 [n, labels] in example order) come from a first, untimed pass
    (tracing, warm-up). Then every round times one pass of each model, in reverse order
    every other round, until ``min_rounds`` rounds are done and each model has been timed
    for ``min_seconds`` (small dev sets pass in a fraction of a second, where timer noise
    dominates). A model's speed comes from its median pass, so a burst of load from
    another process spoils a round, not the comparison.
    """
    # Batches are padded once, before any timing: at short lengths the input pipeline
    # costs as much as a small model's forward and would shrink the measured speed-up.
    batches = [x for x, *_ in backends.make_dataset(features, batch_size, training=False)]
    forwards = {name: backends.current().logits_function(classifier)
                for name, classifier in classifiers.items()}
    logits = {name: np.concatenate([np.asarray(forward(x)) for x in batches])[: len(features)]
              for name, forward in forwards.items()}
    passes = {name: [] for name in forwards}
    order = list(forwards)
    while (len(passes[order[0]]) < min_rounds
           or min(sum(times) for times in passes.values()) < min_seconds):
        for name in order:
            start = time.perf_counter()
            for x in batches:
                np.asarray(forwards[name](x))
            passes[name].append(time.perf_counter() - start)
        order.reverse()
    speeds = {name: len(features) / max(float(np.median(times)), 1e-9)
              for name, times in passes.items()}
    return logits, speeds
