"""Keras' JAX backend: the Distiller's steps in Keras' stateless pattern, numpy batches
of fixed shapes, one process (alone or data-parallel over its devices), a jitted forward
and JAX's persistent compilation cache.

Keras' JAX trainer hands a step the values of every variable (``state``) and expects the
new values back: nothing may be read from or written to a ``keras.Variable`` directly,
since the trainer donates their buffers to the jitted step.  Each step therefore runs the
Distiller's shared code (``teacher_outputs``, ``compute_terms``, the optimizer,
``update_metrics``) inside ``keras.StatelessScope``s that map every variable to its
value in ``state``, and collects what was assigned (dropout seed states, weights,
optimizer slots, metric totals) from the scope.  Only the gradient
(``jax.value_and_grad``) and this plumbing are JAX's own.
"""

from __future__ import annotations

import os
from typing import Callable, List, Optional, Sequence, Tuple

import jax
import keras
import numpy as np
from keras import ops

from kd_keras import distribute, losses
from kd_keras.data import batching
from kd_keras.data.features import Features, pad_batch

# JAX computes in int32 unless told otherwise.
COUNTER_DTYPE = "int32"
# Un-jitted, a step runs op by op (~100x slower): fit always compiles on JAX.
COMPILES_STEPS = True
EXPORTS_SAVED_MODEL = False


# --------------------------------------------------------------------------- state


def _current(scope: keras.StatelessScope, variables: Sequence, values: Sequence) -> List:
    """The values of ``variables`` after a scope: what it assigned, else what came in."""
    found = []
    for variable, value in zip(variables, values):
        new = scope.get_current_value(variable)
        found.append(value if new is None else new)
    return found


def model_mapping(model, trainable: Sequence, non_trainable: Sequence) -> List:
    """(variable, value) pairs of a model's trainable and non-trainable variables, for a
    StatelessScope."""
    return (list(zip(model.trainable_variables, trainable))
            + list(zip(model.non_trainable_variables, non_trainable)))


def sync_variables(model) -> None:
    """Writes the values the jitted steps hold into the model's variables (before a
    backup reads them)."""
    model.jax_state_sync()


# --------------------------------------------------------------------------- steps


def _metrics(model, metric_values: Sequence, total, values, batch, logits,
             stage=None) -> Tuple:
    """Updates the model's trackers from their values in state: (logs, new values)."""
    variables = model.metrics_variables
    with keras.StatelessScope(state_mapping=list(zip(variables, metric_values))) as scope:
        logs = model.update_metrics(total, values, batch, logits, stage)
    return logs, _current(scope, variables, metric_values)


def train_step(model, state: Tuple, data) -> Tuple:
    """One optimizer step of the model's current stage.

    Args:
        model: the Distiller.
        state: (trainable, non-trainable, optimizer, metrics) variable values, in the
            order of model.trainable_variables, model.non_trainable_variables,
            model.optimizer.variables and model.metrics_variables.
        data: one batch in batching.pack's layout; filler rows weigh 0.

    Returns:
        (logs, new state).
    """
    trainable, non_trainable, optimizer_values, metric_values = state
    batch = batching.unpack(data)
    active = model.terms
    trainable_variables = model.trainable_variables
    non_trainable_variables = model.non_trainable_variables

    def loss_and_updates(trainable_values):
        with keras.StatelessScope(state_mapping=model_mapping(
                model, trainable_values, non_trainable)) as scope:
            teacher = model.teacher_outputs(batch.features, active, batch.teacher_logits)
            total, values, logits = model.compute_terms(batch.features, batch.labels,
                                                        active, teacher, True,
                                                        batch.label_weights)
        # The batch is global (under keras.distribution jit shards it over the devices).
        loss = losses.batch_mean(total, batch.weights)
        with keras.StatelessScope(state_mapping=list(zip(model.optimizer.variables,
                                                         optimizer_values))):
            scaled = model.optimizer.scale_loss(loss)
        updated = _current(scope, non_trainable_variables, non_trainable)
        return scaled, (total, values, logits, updated)

    (_, (total, values, logits, non_trainable)), gradients = jax.value_and_grad(
        loss_and_updates, has_aux=True)(trainable)
    # JAX gives every variable a gradient, zeros where the step does not read it; AdamW
    # would still decay those, so only what the step updates is applied.
    chosen = {id(v) for v in model.step_variables(model.stage)}
    pairs = [(g, v) for g, v in zip(gradients, trainable_variables) if id(v) in chosen]
    # The non-trainable values too: StageWarmup reads the Distiller's stage_start.
    mapping = (model_mapping(model, trainable, non_trainable)
               + list(zip(model.optimizer.variables, optimizer_values)))
    with keras.StatelessScope(state_mapping=mapping) as scope:
        model.optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])
    trainable = _current(scope, trainable_variables, trainable)
    optimizer_values = _current(scope, model.optimizer.variables, optimizer_values)

    stage = dict(zip(map(id, non_trainable_variables), non_trainable))[id(model.stage_index)]
    logs, metric_values = _metrics(model, metric_values, total, values, batch, logits,
                                   stage)
    return logs, (trainable, non_trainable, optimizer_values, metric_values)


def test_step(model, state: Tuple, data) -> Tuple:
    """The evaluation terms on one batch: (logs, new state), state as in train_step
    without the optimizer's values."""
    trainable, non_trainable, metric_values = state
    batch = batching.unpack(data)
    active = model.evaluation_terms
    with keras.StatelessScope(state_mapping=model_mapping(model, trainable, non_trainable)):
        total, values, logits = model.compute_terms(
            batch.features, batch.labels, active,
            model.teacher_outputs(batch.features, active), False, batch.label_weights)
    logs, metric_values = _metrics(model, metric_values, total, values, batch, logits)
    return logs, (trainable, non_trainable, metric_values)


def predict_step(model, state: Tuple, data) -> Tuple:
    """Student logits float32 [batch, labels]: (logits, non-trainable values)."""
    trainable, non_trainable = state
    x = batching.unpack(data).features
    with keras.StatelessScope(state_mapping=model_mapping(model, trainable, non_trainable)):
        logits = ops.cast(model.student(x, training=False), "float32")
    return logits, non_trainable


def logits_function(model) -> Callable:
    """A jitted inference forward of an EncoderClassifier with its weights as they are
    now: features, each int32 [batch, seq] -> float32 logits [batch, labels]."""
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    @jax.jit
    def forward(trainable, non_trainable, x):
        with keras.StatelessScope(state_mapping=model_mapping(model, trainable,
                                                              non_trainable)):
            return ops.cast(model(x, training=False), "float32")

    return lambda x: forward(trainable, non_trainable, x)


def use_compilation_cache(folder: str) -> None:
    """Keeps compiled steps in ``folder`` (JAX's persistent compilation cache), so a
    resumed run, or one sharing the cache folder, does not compile the same shapes again
    (seconds each on a CPU).  JAX keys entries by the program, its version and the
    devices; $JAX_COMPILATION_CACHE_DIR, when set, wins."""
    if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        jax.config.update("jax_compilation_cache_dir", folder)


# --------------------------------------------------------------------------- data


class NumpyBatches(keras.utils.PyDataset):
    """A planned sequence of batches as numpy arrays (what Keras' JAX backend reads):
    ``len()``, indexing and iteration; fit, evaluate and predict take it as it is.

    Args:
        features: tokenized examples.
        plan: each batch's example indices, int [<= rows].
        teacher_logits: float32 [num_examples, labels] to carry beside the labels.
        multiple: pad lengths up to a multiple of this.
        rows: fill every batch up to this many rows, repeating its own examples with
            weight 0 (None: batches keep their size, every weight 1).
    """

    def __init__(self, features: Features, plan: List[np.ndarray],
                 teacher_logits: Optional[np.ndarray] = None, multiple: int = 1,
                 rows: Optional[int] = None):
        super().__init__()
        self.features, self.plan, self.multiple = features, plan, multiple
        self.teacher_logits, self.rows = teacher_logits, rows
        self.offsets = features.offsets()  # once, not per batch

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, index: int) -> Tuple:
        """Batch ``index`` in batching.pack's layout, with weights float32 [rows]."""
        real = self.plan[index]
        size = max(self.rows or 0, len(real))
        # Filler rows copy the batch's own examples: same length bucket, finite losses.
        rows = np.resize(real, size)
        x, labels = pad_batch(self.features, rows, self.multiple, self.offsets)
        weights = (np.arange(size) < len(real)).astype(np.float32)
        logits = None if self.teacher_logits is None else self.teacher_logits[rows]
        label_weights = (None if self.features.label_weights is None
                         else self.features.label_weights[rows])
        return batching.pack(x, labels, weights, logits, label_weights)

    def __iter__(self):
        return (self[k] for k in range(len(self)))


def batches(features: Features, plan: List[np.ndarray], rows: int,
            teacher_logits: Optional[np.ndarray] = None) -> NumpyBatches:
    """The planned batches padded to a multiple of batching.PAD_MULTIPLE tokens, every
    short batch filled up to ``rows`` with zero-weight copies of its own rows: a jitted
    step compiles once per length, and a batch splits over any device count that
    divides ``rows``."""
    return NumpyBatches(features, plan, teacher_logits, batching.PAD_MULTIPLE, rows=rows)


# --------------------------------------------------------------------------- distribution


class DataParallelProcess(distribute.SingleProcess):
    """One process training on several local devices: Keras' DataParallel distribution,
    set globally, replicates the variables and splits every batch over the devices; the
    jitted step's batch mean is over the whole batch, so N devices make the update one
    device makes.

    Args:
        devices: JAX device names ("cpu:0", "gpu:1", ...).
    """

    def __init__(self, devices):
        self.devices = list(devices)
        self.num_replicas_in_sync = len(self.devices)
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=self.devices))


def strategy(name: str, num_gpus: int = 0, tpu: Optional[str] = None
             ) -> distribute.SingleProcess:
    """default / one_device: one device; mirrored: every local device of the default
    kind (GPUs when there are any, else the CPU devices XLA was given), or num_gpus.

    Raises:
        ValueError: a TensorFlow-only strategy, or more GPUs than are visible.
    """
    if name in ("multi_worker_mirrored", "tpu"):
        raise ValueError(f"--distribution_strategy={name} needs Keras' TensorFlow backend "
                         "(this run is on jax); use mirrored for the devices of this "
                         "machine, or set KERAS_BACKEND=tensorflow.")
    devices = keras.distribution.list_devices()
    gpus = [d for d in devices if d.startswith(("gpu", "cuda"))]
    if num_gpus > len(gpus):
        raise ValueError(f"--num_gpus={num_gpus} but only {len(gpus)} GPU(s) are visible.")
    if name != "mirrored":
        return distribute.SingleProcess()
    return DataParallelProcess(devices[: num_gpus] if num_gpus else devices)
