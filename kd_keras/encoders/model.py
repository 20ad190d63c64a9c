"""An encoder with a classification head, exposing what distillation reads: every
layer's hidden states and attention probabilities, the first n layers alone, and the
deepest layer at [CLS] only."""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional

import keras
from keras import ops

from kd_keras.encoders.config import EncoderConfig
from kd_keras.encoders.family import Family
from kd_keras.encoders.layers import (MASK_VALUE, Embeddings, TransformerLayer, activation,
                                      additive_mask, initializer)


@dataclasses.dataclass
class EncoderOutputs:
    """What one forward pass returns.

    Attributes:
        logits: float [batch, num_labels], or None when the head was skipped.
        attentions: per computed layer, probabilities before dropout
            [batch, heads, seq, seq]; attentions[k - 1] belongs to layer k.  Empty when
            not asked for.
        hidden_states: the embedding output, then each computed layer's output, each
            [batch, seq, hidden]; hidden_states[k] is the output of layer k.
    """

    logits: Optional[object]
    attentions: List
    hidden_states: List


class ClassifierHead(keras.layers.Layer):
    """[CLS] vector [batch, hidden] -> logits [batch, num_labels], in the family's form:
    (dropout), dense, activation, dropout, output."""

    def __init__(self, config: EncoderConfig, family: Family, **kwargs):
        super().__init__(**kwargs)
        self.dropout_before = family.dropout_before_head
        self.dense = keras.layers.Dense(config.hidden_size,
                                        activation=activation(family.head_activation),
                                        name="dense", kernel_initializer=initializer(config))
        self.dropout = keras.layers.Dropout(config.classifier_dropout)
        self.out = keras.layers.Dense(config.num_labels, name="out",
                                      kernel_initializer=initializer(config))

    def call(self, cls, training=False):
        if self.dropout_before:
            cls = self.dropout(cls, training=training)
        return self.out(self.dropout(self.dense(cls), training=training))


class EncoderClassifier(keras.Model):
    """A Transformer encoder and its classifier head.

    Called as a Keras model it returns logits [batch, num_labels]; ``forward`` returns
    everything distillation needs.

    Args:
        config: sizes and settings (encoders.config.from_hf_dict).
        family: the family's conventions (encoders.FAMILIES[config.family]).
    """

    def __init__(self, config: EncoderConfig, family: Family, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.family = family
        self.embeddings = Embeddings(
            config, config.pad_token_id if family.positions_from_padding else None,
            name="embeddings")
        self.encoder_layers = [TransformerLayer(config, name=f"layer_{i}")
                               for i in range(config.num_layers)]
        self.head = ClassifierHead(config, family, name="head")

    @property
    def num_layers(self) -> int:
        return self.config.num_layers

    @property
    def num_heads(self) -> int:
        return self.config.num_heads

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    @property
    def num_labels(self) -> int:
        return self.config.num_labels

    def build_weights(self) -> "EncoderClassifier":
        """Creates every weight by running a dummy batch; returns self."""
        ones = ops.ones((1, 2), "int32")
        self.forward({"input_ids": ones, "attention_mask": ones,
                      "token_type_ids": ops.zeros((1, 2), "int32")})
        return self

    def call(self, inputs: Dict, training=False, mask_value: float = MASK_VALUE):
        """Logits [batch, num_labels] of inputs (int [batch, seq] each); mask_value as in
        forward()."""
        return self.forward(inputs, training=training, cls_only_last=True,
                            mask_value=mask_value).logits

    def forward(self, inputs: Dict, training=False, num_layers: Optional[int] = None,
                with_logits: bool = True, output_attentions: bool = True,
                cls_only_last: bool = False, mask_value: float = MASK_VALUE
                ) -> EncoderOutputs:
        """Embeddings and the first ``num_layers`` layers, then optionally the head.

        Args:
            inputs: input_ids, attention_mask and token_type_ids, int [batch, seq].
            training: dropout on.
            num_layers: layers to run (all when None); logits need all.
            with_logits: run the classifier head on the last layer's [CLS].
            output_attentions: collect every layer's attention probabilities.
            cls_only_last: the last computed layer works out its output at [CLS] only
                (its attention probabilities stay complete); its hidden state is then
                [batch, 1, hidden].  For callers that read nothing else of it.
            mask_value: what padding keys' attention scores get added (full-integer
                exports take a smaller one: export/graph.py).

        Returns:
            The outputs; see EncoderOutputs.
        """
        num_layers = self.num_layers if num_layers is None else num_layers
        if with_logits and num_layers != self.num_layers:
            raise ValueError("logits need all layers; pass with_logits=False.")
        hidden = self.embeddings(inputs["input_ids"], inputs.get("token_type_ids"),
                                 training=training)
        mask = additive_mask(inputs["attention_mask"], mask_value)
        hidden_states, attentions = [hidden], []
        for index, layer in enumerate(self.encoder_layers[:num_layers]):
            hidden, probabilities = layer(hidden, mask, training=training,
                                          cls_only=cls_only_last and index == num_layers - 1)
            hidden_states.append(hidden)
            if output_attentions:
                attentions.append(probabilities)
        logits = self.head(hidden[:, 0], training=training) if with_logits else None
        return EncoderOutputs(logits, attentions, hidden_states)
