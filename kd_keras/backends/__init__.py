"""Everything that differs between Keras' backends, behind one set of functions.

The encoders, the losses, the terms and the Distiller's stage logic are ``keras.ops``
and run unchanged on TensorFlow and on JAX.  What cannot be the same lives in one module
per backend, each with the same names:

    train_step(model, ...), test_step, predict_step   the Distiller's steps around its
                                                       shared loss (Distiller.compute_terms)
    batches(features, plan, rows, teacher_logits)      planned batches as the backend reads them
    logits_function(model)                             a compiled inference forward
    strategy(name, num_gpus, tpu)                      what distributes a run
    sync_variables(model)                              the step's state into the variables
    use_compilation_cache(folder)                      where compiled steps are kept
    COUNTER_DTYPE, COMPILES_STEPS, EXPORTS_SAVED_MODEL

This package is the one place that asks which backend runs (``current``).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Optional

import keras
import numpy as np

from kd_keras.config import STRATEGIES
from kd_keras.data import batching
from kd_keras.data.features import Features

SUPPORTED = ("tensorflow", "jax")


def name() -> str:
    """The backend Keras runs on ("tensorflow", "jax", ...)."""
    return keras.backend.backend()


def current() -> ModuleType:
    """The module of the running backend: kd_keras.backends.tensorflow or .jax.

    Raises:
        ValueError: Keras runs on a backend kd_keras has no steps for.
    """
    backend = name()
    if backend not in SUPPORTED:
        raise ValueError(f"kd_keras runs on Keras' TensorFlow or JAX backend, not {backend}; "
                         "set KERAS_BACKEND=tensorflow or KERAS_BACKEND=jax.")
    return importlib.import_module(f"kd_keras.backends.{backend}")


def make_dataset(features: Features, batch_size: int, training: bool, seed: int = 0,
                 teacher_logits: Optional[np.ndarray] = None, epochs: int = 1,
                 start_epoch: int = 0, start_batch: int = 0):
    """The batches a run reads, on the backend Keras runs on.

    Training: epochs ``start_epoch .. epochs - 1`` back to back, the first entered at
    batch ``start_batch``; each epoch's batches are ``batching.epoch_batches(lengths,
    batch_size, seed, epoch)``, so a run resumed at any (epoch, batch) sees exactly the
    batches an uninterrupted run would, on either backend.  Evaluation: in file order.

    Args:
        features: tokenized examples.
        batch_size: global batch size.
        training: shuffle and bucket when True.
        seed: shuffle seed.
        teacher_logits: the frozen teacher's logits on ``features``, float32
            [num_examples, labels], to train against instead of running the teacher;
            batches then carry them beside the labels (batching.pack).
        epochs: training epochs in the whole run.
        start_epoch: first epoch to produce (0-based), when resuming.
        start_batch: batches of ``start_epoch`` already trained, when resuming.

    Returns:
        An iterable of batches in batching.pack's layout, ``(features, targets)`` or
        ``(features, targets, weights)``: TensorFlow reads a tf.data pipeline that pads
        each batch to its longest row; JAX reads numpy batches padded to a multiple of 16
        tokens and filled up to ``batch_size`` rows with zero-weight copies (one compiled
        shape per length).  Predictions over filled batches have ``len(features)`` real
        rows first.
    """
    plan = batching.plan_batches(features.lengths, batch_size, training, seed, epochs,
                                 start_epoch, start_batch)
    return current().batches(features, plan, batch_size, teacher_logits)


def strategy(name: str = "default", num_gpus: int = 0, tpu: Optional[str] = None):
    """What distributes a run: a tf.distribute strategy on TensorFlow; on JAX one process
    (distribute.SingleProcess), alone or data-parallel over its local devices.

    Args:
        name: default (no distribution), one_device, mirrored (all local GPUs, or
            ``num_gpus`` of them; logical CPUs when there is no GPU; on JAX
            keras.distribution.DataParallel over the same), multi_worker_mirrored
            (cluster from $TF_CONFIG), or tpu (both TensorFlow only).
        num_gpus: GPUs for one_device / mirrored (0: CPU for one_device, all for mirrored).
        tpu: TPU address or name for the tpu strategy ("" for a local TPU VM).

    Raises:
        ValueError: an unknown name, a strategy the backend lacks, or more GPUs asked
            for than exist.
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown distribution strategy '{name}'. Choose one of: "
                         f"{', '.join(STRATEGIES)}.")
    return current().strategy(name, num_gpus, tpu)
