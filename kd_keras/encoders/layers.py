"""The layers every encoder family shares, written in keras.ops alone (any Keras backend).

All four families (BERT, RoBERTa, ELECTRA, DistilBERT) are post-LayerNorm Transformer
encoders: they differ in names, position ids, token types, an embedding projection and
the classifier head, which their modules describe; the arithmetic is here.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import keras
from keras import ops

from kd_keras.encoders.config import EncoderConfig, EncoderError

# Added to the attention scores of padding keys: exp() of it is 0 in float32 and it
# still fits float16.
MASK_VALUE = -1e4


def _gelu_exact(x):
    # With erf, as BERT writes it (TensorFlow's own gelu uses erfc, which ONNX lacks).
    return 0.5 * x * (1.0 + ops.erf(x * (1.0 / math.sqrt(2.0))))


def _gelu_tanh(x):
    return ops.gelu(x, approximate=True)


ACTIVATIONS = {"gelu": _gelu_exact, "gelu_new": _gelu_tanh, "gelu_pytorch_tanh": _gelu_tanh,
               "gelu_fast": _gelu_tanh, "relu": ops.relu, "silu": ops.silu, "swish": ops.silu,
               "tanh": ops.tanh}


def activation(name: str):
    """The activation function a config names (BERT's ``gelu`` is the exact, erf one)."""
    if name not in ACTIVATIONS:
        raise EncoderError(f"activation '{name}' is not supported; one of "
                           f"{', '.join(sorted(ACTIVATIONS))}.")
    return ACTIVATIONS[name]


def initializer(config: EncoderConfig) -> keras.initializers.Initializer:
    """How new kernels and embeddings start: BERT's truncated normal (std 0.02).  Keras'
    defaults (Glorot, uniform 0.05) are far larger and change how a model trained from
    scratch behaves; biases start at 0 and LayerNorm at (1, 0) either way."""
    return keras.initializers.TruncatedNormal(stddev=config.initializer_range)


def _dense(units: int, name: str, config: EncoderConfig,
           activation_fn=None) -> keras.layers.Dense:
    return keras.layers.Dense(units, activation=activation_fn, name=name,
                              kernel_initializer=initializer(config))


class Embeddings(keras.layers.Layer):
    """Word + position (+ token type) embeddings, LayerNorm, dropout, and ELECTRA's
    projection to the hidden size.

    Args:
        config: the encoder's settings.
        positions_padding_id: RoBERTa's padding id: its position ids count the
            non-padding tokens from this id + 1 (padding gets the id itself); None for the
            others (positions 0..seq-1).
    """

    def __init__(self, config: EncoderConfig, positions_padding_id: Optional[int] = None,
                 **kwargs):
        super().__init__(**kwargs)
        width = config.embedding_width
        self.positions_padding_id = positions_padding_id
        self.word = keras.layers.Embedding(config.vocab_size, width, name="word",
                                           embeddings_initializer=initializer(config))
        self.position = keras.layers.Embedding(config.max_positions, width, name="position",
                                               embeddings_initializer=initializer(config))
        self.token_type = (keras.layers.Embedding(config.type_vocab_size, width,
                                                  name="token_type",
                                                  embeddings_initializer=initializer(config))
                           if config.type_vocab_size else None)
        self.norm = keras.layers.LayerNormalization(epsilon=config.layer_norm_eps, name="norm")
        self.dropout = keras.layers.Dropout(config.hidden_dropout)
        self.projection = (_dense(config.hidden_size, "projection", config)
                           if config.embedding_size else None)

    def call(self, input_ids, token_type_ids, training=False):
        """input_ids, token_type_ids int [batch, seq] -> float [batch, seq, hidden]."""
        if self.positions_padding_id is None:
            positions = ops.arange(ops.shape(input_ids)[1])[None, :]
        else:
            not_pad = ops.cast(ops.not_equal(input_ids, self.positions_padding_id), "int32")
            positions = ops.cumsum(not_pad, axis=1) * not_pad + self.positions_padding_id
        hidden = self.word(input_ids) + self.position(positions)
        if self.token_type is not None:
            hidden = hidden + self.token_type(token_type_ids)
        hidden = self.dropout(self.norm(hidden), training=training)
        return self.projection(hidden) if self.projection is not None else hidden


class SelfAttention(keras.layers.Layer):
    """Multi-head self-attention that also returns its probabilities before dropout."""

    def __init__(self, config: EncoderConfig, **kwargs):
        super().__init__(**kwargs)
        self.num_heads, self.head_size = config.num_heads, config.head_size
        self.query = _dense(config.hidden_size, "query", config)
        self.key = _dense(config.hidden_size, "key", config)
        self.value = _dense(config.hidden_size, "value", config)
        self.dropout = keras.layers.Dropout(config.attention_dropout)

    def _heads(self, x, batch, seq):
        """[batch, seq, hidden] -> [batch, heads, seq, head_size]."""
        x = ops.reshape(x, (batch, seq, self.num_heads, self.head_size))
        return ops.transpose(x, (0, 2, 1, 3))

    def call(self, hidden, additive_mask, training=False):
        """Attends every position to every non-padding position.

        Args:
            hidden: float [batch, seq, hidden].
            additive_mask: float [batch, 1, 1, seq], 0 for tokens and a large negative
                value for padding (additive_mask()).

        Returns:
            (context [batch, seq, hidden], probabilities [batch, heads, seq, seq]).
        """
        # The sizes of the layer's input, not of each projection's output: tf2onnx's
        # optimizer can read the latter off the 2-D matmul inside Dense.
        batch, seq = ops.shape(hidden)[0], ops.shape(hidden)[1]
        query, key, value = (self._heads(f(hidden), batch, seq)
                             for f in (self.query, self.key, self.value))
        scores = ops.matmul(query, ops.transpose(key, (0, 1, 3, 2)))
        scores = scores / math.sqrt(self.head_size) + ops.cast(additive_mask, scores.dtype)
        probabilities = ops.softmax(scores, axis=-1)
        context = ops.matmul(self.dropout(probabilities, training=training), value)
        context = ops.reshape(ops.transpose(context, (0, 2, 1, 3)),
                              (batch, seq, self.num_heads * self.head_size))
        return context, probabilities


class TransformerLayer(keras.layers.Layer):
    """One post-LayerNorm encoder layer: attention, then the feed-forward block."""

    def __init__(self, config: EncoderConfig, **kwargs):
        super().__init__(**kwargs)
        self.attention = SelfAttention(config, name="attention")
        self.attention_output = _dense(config.hidden_size, "attention_output", config)
        self.attention_norm = keras.layers.LayerNormalization(epsilon=config.layer_norm_eps,
                                                              name="attention_norm")
        self.intermediate = _dense(config.intermediate_size, "intermediate", config,
                                   activation(config.activation))
        self.output_dense = _dense(config.hidden_size, "output", config)
        self.output_norm = keras.layers.LayerNormalization(epsilon=config.layer_norm_eps,
                                                           name="output_norm")
        self.dropout = keras.layers.Dropout(config.hidden_dropout)

    def call(self, hidden, additive_mask, training=False, cls_only=False) -> Tuple:
        """Args:
            hidden: float [batch, seq, hidden].
            additive_mask: float [batch, 1, 1, seq].
            cls_only: compute the output at the first ([CLS]) position only; the
                attention probabilities stay complete.  Saves the output projection and
                feed-forward work on every other position (about 70% of a layer at
                length 128) for callers that read nothing else of this layer.

        Returns:
            (output [batch, seq, hidden], or [batch, 1, hidden] with cls_only;
            attention probabilities [batch, heads, seq, seq]).
        """
        context, probabilities = self.attention(hidden, additive_mask, training=training)
        if cls_only:
            context, hidden = context[:, :1], hidden[:, :1]
        attended = self.attention_norm(
            hidden + self.dropout(self.attention_output(context), training=training))
        output = self.output_dense(self.intermediate(attended))
        output = self.output_norm(attended + self.dropout(output, training=training))
        return output, probabilities


def additive_mask(attention_mask, mask_value: float = MASK_VALUE):
    """attention_mask int [batch, seq] (1 token, 0 padding) -> float [batch, 1, 1, seq],
    0 for tokens and ``mask_value`` for padding."""
    # expand_dims, not [:, None, None, :]: LiteRT's builtin ops have no strided slice
    # that adds axes.
    mask = ops.expand_dims(ops.expand_dims(ops.cast(attention_mask, "float32"), 1), 1)
    return (1.0 - mask) * mask_value
