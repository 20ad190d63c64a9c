"""The sizes and settings of an encoder, read from a Hugging Face config.json."""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional


class EncoderError(ValueError):
    """A checkpoint or configuration the encoders cannot use; the message says why."""


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """What the shared encoder layers need, whatever the family called it.

    Attributes:
        family: ``bert``, ``roberta``, ``electra`` or ``distilbert``.
        vocab_size: rows of the word embedding table.
        hidden_size: width of every layer's output.
        num_layers: Transformer layers.
        num_heads: attention heads per layer.
        intermediate_size: width of the feed-forward block.
        activation: feed-forward activation name (``gelu`` is exact, as BERT's).
        layer_norm_eps: LayerNorm epsilon.
        max_positions: rows of the position embedding table.
        type_vocab_size: token type (segment) rows; 0 when the family has none.
        embedding_size: width of the embedding tables (ELECTRA projects it to
            hidden_size); hidden_size for the other families.
        hidden_dropout: dropout on embeddings and layer outputs.
        attention_dropout: dropout on attention probabilities.
        classifier_dropout: dropout before the classifier.
        pad_token_id: the padding token (RoBERTa's position ids count from it).
        num_labels: classifier width.
        initializer_range: standard deviation of the truncated normal that new weights
            (kernels, embeddings) start from, as in the families' own code.
        raw: the config.json dict, kept so a saved model writes it back.
    """

    family: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    activation: str = "gelu"
    layer_norm_eps: float = 1e-12
    max_positions: int = 512
    type_vocab_size: int = 2
    embedding_size: Optional[int] = None
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    classifier_dropout: float = 0.1
    pad_token_id: int = 0
    num_labels: int = 2
    initializer_range: float = 0.02
    raw: Dict = dataclasses.field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        if self.hidden_size % self.num_heads:
            raise EncoderError(f"hidden size {self.hidden_size} is not divisible by "
                               f"{self.num_heads} heads.")

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def embedding_width(self) -> int:
        return self.embedding_size or self.hidden_size

    def replace(self, **changes) -> "EncoderConfig":
        """A copy with fields changed (a student's depth, dropout, labels)."""
        return dataclasses.replace(self, **changes)


def _dropout(value, default: float) -> float:
    return default if value is None else float(value)


def from_hf_dict(raw: Dict, num_labels: Optional[int] = None) -> EncoderConfig:
    """An EncoderConfig from a Hugging Face config.json dict.

    Args:
        raw: the parsed config.json.
        num_labels: classifier width; the checkpoint's (id2label or num_labels) when None.

    Raises:
        EncoderError: a model type the encoders do not implement.
    """
    family = raw.get("model_type", "bert")
    labels = num_labels or len(raw.get("id2label") or {}) or raw.get("num_labels") or 2
    if family == "distilbert":
        return EncoderConfig(
            family=family, vocab_size=raw["vocab_size"], hidden_size=raw["dim"],
            num_layers=raw["n_layers"], num_heads=raw["n_heads"],
            intermediate_size=raw["hidden_dim"], activation=raw.get("activation", "gelu"),
            layer_norm_eps=1e-12, max_positions=raw.get("max_position_embeddings", 512),
            type_vocab_size=0, hidden_dropout=_dropout(raw.get("dropout"), 0.1),
            attention_dropout=_dropout(raw.get("attention_dropout"), 0.1),
            classifier_dropout=_dropout(raw.get("seq_classif_dropout"), 0.2),
            pad_token_id=raw.get("pad_token_id", 0), num_labels=labels,
            initializer_range=raw.get("initializer_range", 0.02), raw=dict(raw))
    if family not in ("bert", "roberta", "electra"):
        raise EncoderError(f"model type '{family}' is not supported; kd_keras encodes bert "
                           "(MiniLM included), roberta, electra and distilbert checkpoints.")
    hidden_dropout = _dropout(raw.get("hidden_dropout_prob"), 0.1)
    embedding_size = raw.get("embedding_size") if family == "electra" else None
    return EncoderConfig(
        family=family, vocab_size=raw["vocab_size"], hidden_size=raw["hidden_size"],
        num_layers=raw["num_hidden_layers"], num_heads=raw["num_attention_heads"],
        intermediate_size=raw["intermediate_size"], activation=raw.get("hidden_act", "gelu"),
        layer_norm_eps=raw.get("layer_norm_eps", 1e-12),
        max_positions=raw.get("max_position_embeddings", 512),
        type_vocab_size=raw.get("type_vocab_size", 2),
        embedding_size=embedding_size if embedding_size != raw["hidden_size"] else None,
        hidden_dropout=hidden_dropout,
        attention_dropout=_dropout(raw.get("attention_probs_dropout_prob"), 0.1),
        classifier_dropout=_dropout(raw.get("classifier_dropout"), hidden_dropout),
        pad_token_id=raw.get("pad_token_id", 1 if family == "roberta" else 0),
        num_labels=labels, initializer_range=raw.get("initializer_range", 0.02),
        raw=dict(raw))


def to_hf_dict(config: EncoderConfig, id2label: Optional[Dict[int, str]] = None) -> Dict:
    """The config.json of a model with these settings, in its family's field names."""
    raw = dict(config.raw)
    if config.family == "distilbert":
        raw.update(dim=config.hidden_size, n_layers=config.num_layers, n_heads=config.num_heads,
                   hidden_dim=config.intermediate_size, activation=config.activation,
                   dropout=config.hidden_dropout, attention_dropout=config.attention_dropout,
                   seq_classif_dropout=config.classifier_dropout)
    else:
        raw.update(hidden_size=config.hidden_size, num_hidden_layers=config.num_layers,
                   num_attention_heads=config.num_heads,
                   intermediate_size=config.intermediate_size, hidden_act=config.activation,
                   layer_norm_eps=config.layer_norm_eps,
                   hidden_dropout_prob=config.hidden_dropout,
                   attention_probs_dropout_prob=config.attention_dropout,
                   type_vocab_size=config.type_vocab_size)
        # None means "the hidden dropout" to transformers; keep it None where it was
        # (transformers 4.57's TF ELECTRA head fails on any other value).
        same = config.classifier_dropout == config.hidden_dropout
        raw["classifier_dropout"] = (None if same and raw.get("classifier_dropout") is None
                                     else config.classifier_dropout)
        if config.family == "electra":
            raw["embedding_size"] = config.embedding_width
    labels = id2label or {i: f"LABEL_{i}" for i in range(config.num_labels)}
    raw.update(model_type=config.family, vocab_size=config.vocab_size,
               initializer_range=config.initializer_range,
               max_position_embeddings=config.max_positions, pad_token_id=config.pad_token_id,
               id2label={str(i): name for i, name in labels.items()},
               label2id={name: int(i) for i, name in labels.items()})
    raw.pop("num_labels", None)  # id2label says it
    return raw
