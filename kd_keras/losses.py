"""The distillation losses, as pure functions of tensors, in keras.ops (any backend).

Every function returns one loss per example, shape [batch], when ``reduction="none"``,
and their mean over the batch otherwise.  The steps take the per-example form and reduce
it with ``batch_mean``, which weighs filler rows 0 and scales for the global batch under
tf.distribute.  Every loss is computed in float32, whatever the models' compute dtype.
"""

from __future__ import annotations

from keras import ops

# Added inside log() so that probabilities of exactly 0 give finite values and gradients.
EPSILON = 1e-12


def _reduce(per_example, reduction: str):
    if reduction == "none":
        return per_example
    if reduction == "mean":
        return ops.mean(per_example)
    raise ValueError(f"reduction must be 'mean' or 'none', got '{reduction}'.")


def batch_mean(per_example, weights=None, replicas: int = 1):
    """The mean of per-example losses over the global batch.

    Under tf.distribute each replica holds a slice of the global batch and its gradients
    are summed over replicas: each divides its sum by its own count times ``replicas``
    (the global count when the slices are equal), so N replicas make the update one
    device makes.  Keras' built-in losses do this scaling; raw ``keras.ops`` do not.

    Args:
        per_example: float32 [batch].
        weights: float [batch], 1 for real examples and 0 for filler rows, or None (all 1).
        replicas: replicas the global batch is split over (1 on JAX, where the batch a
            step sees is global).

    Returns:
        float32 scalar.
    """
    if weights is None:
        count = ops.cast(ops.shape(per_example)[0], "float32")
        return ops.sum(per_example) / (count * replicas)
    weights = ops.cast(weights, per_example.dtype)
    return ops.sum(per_example * weights) / (ops.maximum(ops.sum(weights), 1e-12) * replicas)


def soft_label_ce(teacher_logits, student_logits, temperature: float,
                  reduction: str = "mean"):
    """Cross-entropy of the student's predictions against the teacher's probabilities.

    With a temperature T != 1 both logits are divided by T and the loss is multiplied by
    T^2 so its gradients keep their scale (Hinton et al., 2015).

    Args:
        teacher_logits: float [batch, classes].
        student_logits: float [batch, classes].
        temperature: softening temperature T > 0.
        reduction: ``"mean"`` (scalar) or ``"none"`` ([batch]).

    Returns:
        The loss, scalar or [batch].
    """
    teacher_probs = ops.softmax(_float32(teacher_logits) / temperature, axis=-1)
    student_log_probs = ops.log_softmax(_float32(student_logits) / temperature, axis=-1)
    per_example = -ops.sum(teacher_probs * student_log_probs, axis=-1)
    if temperature != 1.0:
        per_example = per_example * (temperature ** 2)
    return _reduce(per_example, reduction)


def hard_label_ce(labels, student_logits,
                  reduction: str = "mean"):
    """Cross-entropy with the gold labels.

    Args:
        labels: int [batch], class indices.
        student_logits: float [batch, classes].
        reduction: ``"mean"`` or ``"none"``.

    Returns:
        The loss, scalar or [batch].
    """
    log_probs = ops.log_softmax(_float32(student_logits), axis=-1)
    labels = ops.cast(ops.reshape(labels, (-1, 1)), "int32")
    per_example = -ops.take_along_axis(log_probs, labels, axis=-1)[:, 0]
    return _reduce(per_example, reduction)


def regression_mse(targets, predictions,
                   reduction: str = "mean"):
    """Squared error for regression tasks (STS-B), against gold or teacher scores.

    Args:
        targets: float [batch] or [batch, 1].
        predictions: float [batch, 1] or [batch].
        reduction: ``"mean"`` or ``"none"``.

    Returns:
        The loss, scalar or [batch].
    """
    targets = ops.reshape(_float32(targets), (-1,))
    per_example = ops.square(targets - ops.reshape(_float32(predictions), (-1,)))
    return _reduce(per_example, reduction)


def attention_kl(teacher_probs, student_probs,
                 attention_mask, reduction: str = "mean"):
    """KL(teacher || student) between self-attention distributions of one layer pair.

    For every head and every non-padding query row i, the KL divergence between the
    teacher's and the student's attention over the key axis, averaged over heads and
    valid rows.  Inputs are post-softmax probabilities, so no softmax is applied here.

    Args:
        teacher_probs: float [batch, heads, seq, seq], rows sum to 1.
        student_probs: float [batch, heads, seq, seq], same head count.
        attention_mask: int or float [batch, seq], 1 for real tokens and 0 for padding.
        reduction: ``"mean"`` or ``"none"``.

    Returns:
        The loss, scalar or [batch].
    """
    teacher_probs, student_probs = _float32(teacher_probs), _float32(student_probs)
    row_kl = ops.sum(teacher_probs * (ops.log(teacher_probs + EPSILON)
                                      - ops.log(student_probs + EPSILON)), axis=-1)  # [b, h, s]
    mask = _float32(attention_mask)[:, None, :]  # [b, 1, s]
    heads = ops.cast(ops.shape(teacher_probs)[1], "float32")
    valid_rows = ops.maximum(ops.sum(mask, axis=(1, 2)), 1.0)  # [b]
    per_example = ops.sum(row_kl * mask, axis=(1, 2)) / (heads * valid_rows)
    return _reduce(per_example, reduction)


def cls_cosine_loss(teacher_cls, student_cls,
                    reduction: str = "mean"):
    """Squared cosine distance (1 - cos(h_t, h_s))^2 between [CLS] vectors.

    Args:
        teacher_cls: float [batch, hidden].
        student_cls: float [batch, hidden], already projected to the teacher's size.
        reduction: ``"mean"`` or ``"none"``.

    Returns:
        The loss, scalar or [batch].
    """
    cosine = ops.sum(_unit(teacher_cls) * _unit(student_cls), axis=-1)
    return _reduce(ops.square(1.0 - cosine), reduction)


def _float32(tensor):
    return ops.cast(tensor, "float32")


def _unit(vectors):
    """float [batch, hidden] scaled to length 1 (zero vectors stay zero)."""
    vectors = _float32(vectors)
    return vectors * ops.rsqrt(ops.maximum(ops.sum(ops.square(vectors), axis=-1,
                                                   keepdims=True), EPSILON))


def attention_mse(teacher_probs, student_probs, attention_mask, reduction: str = "mean"):
    """Mean squared difference of two layers' attention probabilities (TextBrewer's
    attention MSE), over heads, valid query rows and valid keys.

    Args:
        teacher_probs: float [batch, heads, seq, seq].
        student_probs: float [batch, heads, seq, seq], same head count.
        attention_mask: int or float [batch, seq], 1 for real tokens and 0 for padding.
        reduction: ``"mean"`` or ``"none"``.

    Returns:
        The loss, scalar or [batch].
    """
    squared = ops.square(_float32(teacher_probs) - _float32(student_probs))
    mask = _float32(attention_mask)
    pairs = mask[:, None, :, None] * mask[:, None, None, :]  # [b, 1, s, s]
    heads = ops.cast(ops.shape(teacher_probs)[1], "float32")
    count = ops.maximum(ops.sum(pairs, axis=(1, 2, 3)), 1.0) * heads
    return _reduce(ops.sum(squared * pairs, axis=(1, 2, 3)) / count, reduction)


def hidden_mse(teacher_hidden, student_hidden, attention_mask, reduction: str = "mean"):
    """Mean squared difference of two layers' hidden states over every valid token and
    unit (TinyBERT's hidden-state loss; the embedding-layer loss when given layer 0).

    Args:
        teacher_hidden: float [batch, seq, hidden].
        student_hidden: float [batch, seq, hidden], already projected to the teacher's
            width.
        attention_mask: int or float [batch, seq].
        reduction: ``"mean"`` or ``"none"``.

    Returns:
        The loss, scalar or [batch].
    """
    squared = ops.square(_float32(teacher_hidden) - _float32(student_hidden))
    mask = _float32(attention_mask)
    width = ops.cast(ops.shape(teacher_hidden)[-1], "float32")
    count = ops.maximum(ops.sum(mask, axis=1), 1.0) * width
    return _reduce(ops.sum(ops.sum(squared, axis=-1) * mask, axis=1) / count, reduction)
