"""The Distiller's train and test steps on Keras' JAX backend.

Keras' JAX trainer hands a step the values of every variable (``state``) and expects the
new values back: nothing may be read from or written to a ``keras.Variable`` directly,
since the trainer donates their buffers to the jitted step.  Each step therefore runs the
shared code (``Distiller.teacher_outputs``, ``compute_terms``, the optimizer, the
metrics) inside ``keras.StatelessScope``s that map every variable to its value in
``state``, and collects what was assigned (dropout seed states, weights, optimizer slots,
metric totals) from the scope.

The loss terms, the per-stage variable choice and the metric bookkeeping are the ones the
TensorFlow step uses; only the gradient (``jax.value_and_grad``) and the state plumbing
live here.
"""

from __future__ import annotations

from typing import Callable, List, Sequence, Tuple

import jax
import keras
from keras import ops

from kd_keras.distiller import TEACHER_LOGITS, weighted_mean


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


def jitted_logits(model) -> Callable:
    """A jitted inference forward of ``model`` (an EncoderClassifier) with its weights as
    they are now: features, each int [batch, seq] -> float32 logits [batch, labels]."""
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    @jax.jit
    def forward(trainable, non_trainable, x):
        with keras.StatelessScope(state_mapping=model_mapping(model, trainable,
                                                              non_trainable)):
            return ops.cast(model(x, training=False), "float32")

    return lambda x: forward(trainable, non_trainable, x)


def _metrics(model, metric_values: Sequence, total, values, y, logits, weights) -> Tuple:
    """Updates the model's trackers from their values in state: (logs, new values)."""
    variables = model.metrics_variables
    with keras.StatelessScope(state_mapping=list(zip(variables, metric_values))) as scope:
        logs = model._update_metrics(total, values, y, logits, weights)
    return logs, _current(scope, variables, metric_values)


def train_step(model, state: Tuple, data) -> Tuple:
    """One optimizer step of the current stage.

    Args:
        model: the Distiller.
        state: (trainable, non-trainable, optimizer, metrics) variable values, in the
            order of model.trainable_variables, model.non_trainable_variables,
            model.optimizer.variables and model.metrics_variables.
        data: (features, labels) or (features, labels, weights float [batch]) of one
            batch; filler rows weigh 0 (data.NumpyBatches).

    Returns:
        (logs, new state).
    """
    trainable, non_trainable, optimizer_values, metric_values = state
    x, y, weights = keras.utils.unpack_x_y_sample_weight(data)
    active = model.terms
    trainable_variables = model.trainable_variables
    non_trainable_variables = model.non_trainable_variables

    def loss_and_updates(trainable_values):
        with keras.StatelessScope(state_mapping=model_mapping(
                model, trainable_values, non_trainable)) as scope:
            teacher = model.teacher_outputs(x, active)
            total, values, logits = model.compute_terms(x, y, active, teacher, training=True)
        # The batch is global (under keras.distribution jit shards it over the devices).
        loss = weighted_mean(total, weights)
        with keras.StatelessScope(state_mapping=list(zip(model.optimizer.variables,
                                                         optimizer_values))):
            scaled = model.optimizer.scale_loss(loss)
        updated = _current(scope, non_trainable_variables, non_trainable)
        return scaled, (total, values, logits, updated)

    (_, (total, values, logits, non_trainable)), gradients = jax.value_and_grad(
        loss_and_updates, has_aux=True)(trainable)
    # Only what the stage trains and the step read: the TensorFlow step gets no gradient
    # for the rest and leaves it alone (no weight decay, no moment update) -- so must we.
    chosen = {id(v) for v in model.step_variables(x, active)}
    pairs = [(g, v) for g, v in zip(gradients, trainable_variables) if id(v) in chosen]
    # The non-trainable values too: StageWarmup reads the Distiller's stage_start.
    mapping = (model_mapping(model, trainable, non_trainable)
               + list(zip(model.optimizer.variables, optimizer_values)))
    with keras.StatelessScope(state_mapping=mapping) as scope:
        model.optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])
    trainable = _current(scope, trainable_variables, trainable)
    optimizer_values = _current(scope, model.optimizer.variables, optimizer_values)

    logs, metric_values = _metrics(model, metric_values, total, values, y, logits, weights)
    stage = dict(zip(map(id, non_trainable_variables), non_trainable))[id(model.stage_index)]
    logs["stage"] = ops.cast(stage, "float32") + 1.0
    return logs, (trainable, non_trainable, optimizer_values, metric_values)


def test_step(model, state: Tuple, data) -> Tuple:
    """The evaluation terms on one batch: (logs, new state), state as in train_step
    without the optimizer's values."""
    trainable, non_trainable, metric_values = state
    x, y, weights = keras.utils.unpack_x_y_sample_weight(data)
    x = {k: v for k, v in x.items() if k != TEACHER_LOGITS}
    active = model.evaluation_terms
    with keras.StatelessScope(state_mapping=model_mapping(model, trainable, non_trainable)):
        total, values, logits = model.compute_terms(
            x, y, active, model.teacher_outputs(x, active), training=False)
    logs, metric_values = _metrics(model, metric_values, total, values, y, logits, weights)
    return logs, (trainable, non_trainable, metric_values)


def predict_step(model, state: Tuple, data) -> Tuple:
    """Student logits float32 [batch, labels]: (logits, non-trainable values)."""
    trainable, non_trainable = state
    x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
    with keras.StatelessScope(state_mapping=model_mapping(model, trainable, non_trainable)):
        logits = ops.cast(model.student(x, training=False), "float32")
    return logits, non_trainable
