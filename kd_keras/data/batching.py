"""Which examples form each batch: length buckets, a per-epoch order that is a function
of (seed, epoch), and the layout of a batch."""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Tuple

import keras
import numpy as np

# Numpy batches (Keras' JAX backend) pad sequence lengths up to a multiple of this, so a
# jitted step compiles a few shapes.
PAD_MULTIPLE = 16


def bucket_boundaries(max_seq_length: int, width: int = 16) -> List[int]:
    """Bucket upper bounds (exclusive) every ``width`` tokens below max_seq_length."""
    return list(range(width + 1, max_seq_length + 1, width))


def batches_per_epoch(lengths: np.ndarray, batch_size: int) -> int:
    """How many batches one training epoch has (length buckets each end with a short one).

    Args:
        lengths: tokens per example, int [num_examples].
        batch_size: global batch size.
    """
    boundaries = _training_boundaries(lengths)
    bucket = np.searchsorted(np.asarray(boundaries), lengths, side="right")
    counts = np.bincount(bucket, minlength=len(boundaries) + 1)
    return int(sum(-(-int(c) // batch_size) for c in counts))


def _training_boundaries(lengths: np.ndarray) -> List[int]:
    longest = int(lengths.max())
    return [b for b in bucket_boundaries(max(longest, 2)) if b <= longest]


def epoch_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int
                  ) -> List[np.ndarray]:
    """The example indices of each batch of one training epoch, a pure function of
    (seed, epoch): examples in a shuffled order go to length buckets (16 tokens wide), a
    bucket that fills becomes the next batch, and what is left in each bucket at the end
    of the epoch becomes one last, shorter batch per bucket.

    Args:
        lengths: tokens per example, int [num_examples].
        batch_size: global batch size.
        seed: shuffle seed.
        epoch: 0-based epoch.

    Returns:
        batches_per_epoch(lengths, batch_size) arrays of example indices, int64 [<= batch].
    """
    order = np.random.default_rng([int(seed), int(epoch)]).permutation(len(lengths))
    boundaries = _training_boundaries(lengths)
    bucket_of = np.searchsorted(np.asarray(boundaries), lengths, side="right")
    open_buckets: Dict[int, List[int]] = {}
    batches = []
    for index in order:
        bucket = open_buckets.setdefault(int(bucket_of[index]), [])
        bucket.append(int(index))
        if len(bucket) == batch_size:
            batches.append(np.asarray(bucket, np.int64))
            bucket.clear()
    batches += [np.asarray(open_buckets[b], np.int64) for b in sorted(open_buckets)
                if open_buckets[b]]
    return batches


def plan_batches(lengths: np.ndarray, batch_size: int, training: bool, seed: int = 0,
                 epochs: int = 1, start_epoch: int = 0, start_batch: int = 0
                 ) -> List[np.ndarray]:
    """Every batch's example indices, in the order a run (or a resumed one) reads them.

    Args:
        lengths: tokens per example, int [num_examples].
        batch_size: global batch size.
        training: epochs ``start_epoch .. epochs - 1`` of epoch_batches, the first
            entered at batch ``start_batch``; when False, the examples in file order.
        seed, epochs, start_epoch, start_batch: see epoch_batches; training only.

    Returns:
        Arrays of example indices, int64 [<= batch_size].
    """
    if not training:
        return [np.arange(start, min(start + batch_size, len(lengths)))
                for start in range(0, len(lengths), batch_size)]
    plan = []
    for epoch in range(start_epoch, epochs):
        batches = epoch_batches(lengths, batch_size, seed, epoch)
        plan += batches[start_batch:] if epoch == start_epoch else batches
    return plan


@dataclasses.dataclass
class Batch:
    """One batch as a step reads it (unpack).

    Attributes:
        features: the model inputs, input_ids, attention_mask, token_type_ids int
            [batch, seq]; nothing else.
        labels: int32 class indices or float32 scores [batch].
        weights: float32 [batch], 0 for filler rows (numpy batches), or None (all 1).
        teacher_logits: the teacher's logits computed before training, float32
            [batch, labels], or None.
        label_weights: float32 [batch], 0 where an example has no label (transfer text,
            augmented copies), or None (every example has one).
    """

    features: Dict
    labels: object
    weights: Optional[object] = None
    teacher_logits: Optional[object] = None
    label_weights: Optional[object] = None


def pack(features, labels, weights=None, teacher_logits=None, label_weights=None) -> Tuple:
    """One batch in the layout every kd_keras step reads (and Keras' fit passes on): see
    Batch for the arguments.

    The teacher's logits and the label weights travel beside the labels, as targets of
    the student, never among the model inputs.

    Returns:
        ``(features, targets)`` or ``(features, targets, weights)``: targets are the
        labels alone, or a dict of ``labels`` with ``teacher_logits`` and / or
        ``label_weights``.
    """
    extras = {name: value for name, value in (("teacher_logits", teacher_logits),
                                              ("label_weights", label_weights))
              if value is not None}
    targets = dict(labels=labels, **extras) if extras else labels
    return (features, targets) if weights is None else (features, targets, weights)


def unpack(data) -> Batch:
    """A batch in pack's layout (or as Keras' fit makes it from arrays: (features,
    labels)) as a Batch."""
    features, targets, weights = keras.utils.unpack_x_y_sample_weight(data)
    if isinstance(targets, dict):
        return Batch(features, targets["labels"], weights, targets.get("teacher_logits"),
                     targets.get("label_weights"))
    return Batch(features, targets, weights)
