"""Keras' TensorFlow backend: the Distiller's steps with a GradientTape under
tf.distribute, tf.data batches, TensorFlow's distribution strategies and a tf.function
forward."""

from __future__ import annotations

import os
from typing import Callable, Dict, List, Optional

import numpy as np
import tensorflow as tf
from keras import ops

from kd_keras import losses
from kd_keras.data import batching
from kd_keras.data.features import FEATURE_NAMES, Features, pad_batch

COUNTER_DTYPE = "int64"
# fit compiles its steps with XLA only when asked (--xla): on CPUs it is slower.
COMPILES_STEPS = False
EXPORTS_SAVED_MODEL = True


def replicas_in_sync() -> int:
    """Replicas one global batch is split over (1 outside a strategy's scope)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


# --------------------------------------------------------------------------- steps


def train_step(model, data) -> Dict:
    """One optimizer step of the model's current stage on one replica's batch.

    The teacher runs outside the tape (it is frozen).  Each replica divides its loss sum
    by the global batch (losses.batch_mean), so the replicas' summed gradients make the
    update one device makes on the whole batch.
    """
    batch = batching.unpack(data)
    active = model.terms
    teacher = model.teacher_outputs(batch.features, active, batch.teacher_logits)
    variables = model.step_variables(model.stage)
    with tf.GradientTape() as tape:
        total, values, logits = model.compute_terms(batch.features, batch.labels, active,
                                                    teacher, True, batch.label_weights)
        loss = losses.batch_mean(total, batch.weights, replicas_in_sync())
        # float16: the loss scaled up so small gradients do not vanish (a no-op for other
        # optimizers); apply() unscales.
        scaled = model.optimizer.scale_loss(loss)
    model.optimizer.apply(_dense(tape.gradient(scaled, variables)), variables)
    logs = model.update_metrics(total, values, batch, logits, model.stage_index)
    return _step_outputs(logs)


def _dense(gradients: List) -> List:
    """An embedding lookup's gradient arrives as IndexedSlices, one row per token with
    repeated ids unsummed: clipnorm would measure those rows, not the gradient.  Summed
    into dense tensors, every gradient is clipped by its own norm (as on JAX, whose
    gradients are dense); Keras' AdamW updates densely anyway."""
    return [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g
            for g in gradients]


def test_step(model, data) -> Dict:
    """The model's evaluation terms and accuracy on one batch."""
    batch = batching.unpack(data)
    active = model.evaluation_terms
    total, values, logits = model.compute_terms(
        batch.features, batch.labels, active, model.teacher_outputs(batch.features, active),
        False, batch.label_weights)
    return _step_outputs(model.update_metrics(total, values, batch, logits))


def predict_step(model, data):
    """Student logits float32 [batch, labels]."""
    return ops.cast(model.student(batching.unpack(data).features, training=False),
                    "float32")


def _step_outputs(results: Dict) -> Dict:
    """Metric results as a step returns them.  Under MultiWorkerMirroredStrategy Keras
    reduces step outputs with a mean along axis 0, which a scalar lacks: there each value
    travels as shape [1] and arrives as the scalar mean over workers."""
    extended = tf.distribute.get_strategy().extended
    if not getattr(extended, "_in_multi_worker_mode", lambda: False)():
        return results
    return {name: ops.reshape(value, (1,)) for name, value in results.items()}


def sync_variables(model) -> None:
    """Nothing to do: TensorFlow steps update the variables themselves."""


# --------------------------------------------------------------------------- data


def batches(features: Features, plan: List[np.ndarray], rows: int,
            teacher_logits: Optional[np.ndarray] = None):
    """A tf.data pipeline of the planned batches, each padded to its longest row.

    The token ids are padded by numpy (features.pad_batch) and never become one
    TensorFlow constant: cached features are memory-mapped, and text larger than memory
    stays on disk.

    Args:
        features: tokenized examples.
        plan: each batch's example indices (batching.plan_batches).
        rows: the batch size (tf.data batches keep their own size).
        teacher_logits: float32 [num_examples, labels] to carry beside the labels.

    Returns:
        A dataset of batching.pack batches.
    """
    offsets = features.offsets()  # once, not per batch
    labels = tf.constant(features.labels)
    logits = None if teacher_logits is None else tf.constant(teacher_logits)
    label_weights = (None if features.label_weights is None
                     else tf.constant(features.label_weights))
    sizes = np.asarray([len(batch) for batch in plan], np.int64)
    indices = tf.RaggedTensor.from_row_lengths(
        np.concatenate(plan) if plan else np.zeros([0], np.int64), sizes)

    def padded(examples: np.ndarray) -> List[np.ndarray]:
        x, _ = pad_batch(features, examples, offsets=offsets)
        return [x[name] for name in FEATURE_NAMES]

    def batch(examples):
        ids = tf.numpy_function(padded, [examples], [tf.int32] * len(FEATURE_NAMES),
                                stateful=False)
        x = {}
        for name, values in zip(FEATURE_NAMES, ids):
            values.set_shape([None, None])
            x[name] = values

        def rows(column):
            return None if column is None else tf.gather(column, examples)

        return batching.pack(x, rows(labels), teacher_logits=rows(logits),
                             label_weights=rows(label_weights))

    return tf.data.Dataset.from_tensor_slices(indices).map(batch).prefetch(tf.data.AUTOTUNE)


def logits_function(model) -> Callable:
    """A compiled inference forward of an EncoderClassifier: features, each int32
    [batch, seq] -> float32 logits [batch, labels]."""
    spec = {name: tf.TensorSpec([None, None], tf.int32) for name in FEATURE_NAMES}
    return tf.function(lambda x: tf.cast(model(x, training=False), tf.float32),
                       input_signature=[spec])


def use_compilation_cache(folder: str) -> None:
    """Nothing to do: tf.function traces are not kept between processes."""


# --------------------------------------------------------------------------- distribution


def strategy(name: str, num_gpus: int = 0, tpu: Optional[str] = None):
    """A tf.distribute strategy (see backends.strategy for the names).

    Raises:
        ValueError: multi-worker without $TF_CONFIG, or more GPUs than are visible.
    """
    if name == "multi_worker_mirrored":
        # First, before anything lists devices: collectives are set up at context start.
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--distribution_strategy=multi_worker_mirrored needs $TF_CONFIG "
                             "naming the cluster and this worker's task (see README).")
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if num_gpus > len(gpus):
        raise ValueError(f"--num_gpus={num_gpus} but only {len(gpus)} GPU(s) are visible.")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if num_gpus else "/cpu:0")
    if name == "mirrored":
        if gpus:
            devices = [g.name for g in gpus[: num_gpus or len(gpus)]]
        else:
            devices = [c.name for c in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
