"""BERT (and MiniLM, which is a BERT): the pooler (tanh dense on [CLS]) feeds the
classifier."""

from kd_keras.encoders.family import BERT_EMBEDDINGS, BERT_LAYER, Family, MaskedLMNames

FAMILY = Family(
    name="bert", prefix="bert.", embedding_names=BERT_EMBEDDINGS,
    layer_prefix="encoder.layer.{index}.", layer_names=BERT_LAYER,
    head_dense="bert.pooler.dense", head_output="classifier", head_activation="tanh",
    masked_lm=MaskedLMNames(dense="cls.predictions.transform.dense",
                            norm="cls.predictions.transform.LayerNorm",
                            bias="cls.predictions.bias",
                            decoder="cls.predictions.decoder.weight"),
    ignored=("position_ids", "cls.predictions", "cls.seq_relationship"))
