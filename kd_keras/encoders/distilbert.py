"""DistilBERT: no token types, its own names for the same post-LayerNorm layers, and a
ReLU pre-classifier on [CLS]."""

from kd_keras.encoders.family import Family, MaskedLMNames

FAMILY = Family(
    name="distilbert", prefix="distilbert.",
    embedding_names={"word": "embeddings.word_embeddings",
                     "position": "embeddings.position_embeddings",
                     "norm": "embeddings.LayerNorm"},
    layer_prefix="transformer.layer.{index}.",
    layer_names={"query": "attention.q_lin", "key": "attention.k_lin",
                 "value": "attention.v_lin", "attention_output": "attention.out_lin",
                 "attention_norm": "sa_layer_norm", "intermediate": "ffn.lin1",
                 "output": "ffn.lin2", "output_norm": "output_layer_norm"},
    head_dense="pre_classifier", head_output="classifier", head_activation="relu",
    masked_lm=MaskedLMNames(dense="vocab_transform", norm="vocab_layer_norm",
                            bias="vocab_projector.bias", decoder="vocab_projector.weight"),
    ignored=("position_ids", "vocab_transform.", "vocab_layer_norm.", "vocab_projector."))
