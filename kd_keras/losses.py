"""The distillation losses, as pure functions of tensors.

Every function returns one loss per example, shape [batch], when ``reduction="none"``,
and their mean over the batch otherwise.  The Distiller uses the per-example form so it
can scale for the global batch under tf.distribute (tf.nn.compute_average_loss).
"""

from __future__ import annotations

import tensorflow as tf

# Added inside log() so that probabilities of exactly 0 give finite values and gradients.
EPSILON = 1e-12


def _reduce(per_example: tf.Tensor, reduction: str) -> tf.Tensor:
    if reduction == "none":
        return per_example
    if reduction == "mean":
        return tf.reduce_mean(per_example)
    raise ValueError(f"reduction must be 'mean' or 'none', got '{reduction}'.")


def soft_label_ce(teacher_logits: tf.Tensor, student_logits: tf.Tensor,
                  temperature: float = 1.0, reduction: str = "mean") -> tf.Tensor:
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
    teacher_probs = tf.nn.softmax(teacher_logits / temperature, axis=-1)
    student_log_probs = tf.nn.log_softmax(student_logits / temperature, axis=-1)
    per_example = -tf.reduce_sum(teacher_probs * student_log_probs, axis=-1)
    if temperature != 1.0:
        per_example = per_example * (temperature ** 2)
    return _reduce(per_example, reduction)


def hard_label_ce(labels: tf.Tensor, student_logits: tf.Tensor,
                  reduction: str = "mean") -> tf.Tensor:
    """Cross-entropy with the gold labels.

    Args:
        labels: int [batch], class indices.
        student_logits: float [batch, classes].
        reduction: ``"mean"`` or ``"none"``.

    Returns:
        The loss, scalar or [batch].
    """
    per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.int32), logits=student_logits)
    return _reduce(per_example, reduction)


def regression_mse(targets: tf.Tensor, predictions: tf.Tensor,
                   reduction: str = "mean") -> tf.Tensor:
    """Squared error for regression tasks (STS-B), against gold or teacher scores.

    Args:
        targets: float [batch] or [batch, 1].
        predictions: float [batch, 1] or [batch].
        reduction: ``"mean"`` or ``"none"``.

    Returns:
        The loss, scalar or [batch].
    """
    targets = tf.reshape(tf.cast(targets, predictions.dtype), [-1])
    per_example = tf.square(targets - tf.reshape(predictions, [-1]))
    return _reduce(per_example, reduction)


def attention_kl(teacher_probs: tf.Tensor, student_probs: tf.Tensor,
                 attention_mask: tf.Tensor, reduction: str = "mean") -> tf.Tensor:
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
    teacher_probs = tf.cast(teacher_probs, tf.float32)
    student_probs = tf.cast(student_probs, tf.float32)
    row_kl = tf.reduce_sum(
        teacher_probs * (tf.math.log(teacher_probs + EPSILON)
                         - tf.math.log(student_probs + EPSILON)), axis=-1)  # [b, h, s]
    mask = tf.cast(attention_mask, tf.float32)[:, None, :]  # [b, 1, s]
    heads = tf.cast(tf.shape(teacher_probs)[1], tf.float32)
    valid_rows = tf.maximum(tf.reduce_sum(mask, axis=[1, 2]), 1.0)  # [b]
    per_example = tf.reduce_sum(row_kl * mask, axis=[1, 2]) / (heads * valid_rows)
    return _reduce(per_example, reduction)


def cls_cosine_loss(teacher_cls: tf.Tensor, student_cls: tf.Tensor,
                    reduction: str = "mean") -> tf.Tensor:
    """Squared cosine distance (1 - cos(h_t, h_s))^2 between [CLS] vectors.

    Args:
        teacher_cls: float [batch, hidden].
        student_cls: float [batch, hidden], already projected to the teacher's size.
        reduction: ``"mean"`` or ``"none"``.

    Returns:
        The loss, scalar or [batch].
    """
    teacher_unit = tf.math.l2_normalize(tf.cast(teacher_cls, tf.float32), axis=-1)
    student_unit = tf.math.l2_normalize(tf.cast(student_cls, tf.float32), axis=-1)
    cosine = tf.reduce_sum(teacher_unit * student_unit, axis=-1)
    return _reduce(tf.square(1.0 - cosine), reduction)
