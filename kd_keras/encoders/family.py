"""What distinguishes one encoder family from another: checkpoint names, position ids,
and the classifier head.  Each family module (bert.py, roberta.py, ...) fills one in."""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Tuple

# The shared layer's sub-layers, in TransformerLayer's attribute names.
LAYER_PARTS = ("query", "key", "value", "attention_output", "attention_norm", "intermediate",
               "output", "output_norm")


@dataclasses.dataclass(frozen=True)
class MaskedLMNames:
    """A family's masked-language-model head in checkpoints (full names).

    Attributes:
        dense: the transform's dense layer on each position.
        norm: the LayerNorm after it.
        bias: the output bias, one per vocabulary token.
        decoder: the output matrix [vocab, hidden], stored only where it is not the
            word embeddings.
        activation: the transform's activation; None: the config's (``hidden_act``).
    """

    dense: str
    norm: str
    bias: str
    decoder: str
    activation: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Family:
    """One encoder family's conventions.

    Attributes:
        name: the config.json ``model_type``.
        prefix: the backbone's name prefix in checkpoints (``"bert."``); some checkpoints
            (sentence-transformers' MiniLM) store the backbone without it.
        embedding_names: word, position, token_type, norm -> checkpoint name (no prefix).
        projection_name: ELECTRA's embedding projection (under the prefix), else None.
        layer_prefix: e.g. ``"encoder.layer.{index}."`` (under the prefix).
        layer_names: LAYER_PARTS -> checkpoint name inside a layer.
        head_dense: the head's first dense layer (full name, prefix included if any).
        head_output: the head's output layer (full name).
        head_activation: activation after head_dense.
        dropout_before_head: dropout on the [CLS] vector before head_dense
            (RoBERTa, ELECTRA) as well as after it (all).
        positions_from_padding: RoBERTa: position ids count non-padding tokens from
            pad_token_id + 1; others: 0..seq-1.
        ignored: name fragments of checkpoint tensors the classifier does not use
            (language-model heads, unused poolers, buffers).
        masked_lm: the masked-language-model head's names, where the family has one
            (encoders.masked_lm reads it).
    """

    name: str
    prefix: str
    embedding_names: Dict[str, str]
    layer_prefix: str
    layer_names: Dict[str, str]
    head_dense: str
    head_output: str
    head_activation: str
    dropout_before_head: bool = False
    projection_name: Optional[str] = None
    positions_from_padding: bool = False
    ignored: Tuple[str, ...] = ("position_ids",)
    masked_lm: Optional["MaskedLMNames"] = None


BERT_EMBEDDINGS = {"word": "embeddings.word_embeddings", "position":
                   "embeddings.position_embeddings", "token_type":
                   "embeddings.token_type_embeddings", "norm": "embeddings.LayerNorm"}
BERT_LAYER = {"query": "attention.self.query", "key": "attention.self.key",
              "value": "attention.self.value", "attention_output": "attention.output.dense",
              "attention_norm": "attention.output.LayerNorm",
              "intermediate": "intermediate.dense", "output": "output.dense",
              "output_norm": "output.LayerNorm"}
