"""RoBERTa: BERT's layers, position ids counted from the padding id, one token type, and
a classification head of its own on <s> (the backbone's pooler is not used)."""

from kd_keras.encoders.family import BERT_EMBEDDINGS, BERT_LAYER, Family, MaskedLMNames

FAMILY = Family(
    name="roberta", prefix="roberta.", embedding_names=BERT_EMBEDDINGS,
    layer_prefix="encoder.layer.{index}.", layer_names=BERT_LAYER,
    head_dense="classifier.dense", head_output="classifier.out_proj", head_activation="tanh",
    dropout_before_head=True, positions_from_padding=True,
    # The LM head's activation is the exact GELU whatever hidden_act says.
    masked_lm=MaskedLMNames(dense="lm_head.dense", norm="lm_head.layer_norm",
                            bias="lm_head.bias", decoder="lm_head.decoder.weight",
                            activation="gelu"),
    ignored=("position_ids", "pooler.", "lm_head."))
