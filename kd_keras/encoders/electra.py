"""ELECTRA (the discriminator): BERT's layers behind narrower embeddings projected to
the hidden size, and a GELU classification head on [CLS]."""

from kd_keras.encoders.family import BERT_EMBEDDINGS, BERT_LAYER, Family

FAMILY = Family(
    name="electra", prefix="electra.", embedding_names=BERT_EMBEDDINGS,
    layer_prefix="encoder.layer.{index}.", layer_names=BERT_LAYER,
    projection_name="embeddings_project", head_dense="classifier.dense",
    head_output="classifier.out_proj", head_activation="gelu", dropout_before_head=True,
    ignored=("position_ids", "discriminator_predictions.", "generator"))
