"""A checkpoint's masked-language-model head: the likeliest tokens at a masked position,
which TinyBERT's data augmentation draws replacement words from.  Pretrained BERT,
RoBERTa and DistilBERT checkpoints on the hub carry one (bert-base-uncased's
``cls.predictions``); fine-tuned classifiers, ELECTRA discriminators and
sentence-transformers checkpoints (the packaged MiniLM) do not."""

from __future__ import annotations

from typing import Dict

import keras
import numpy as np
from keras import ops

from kd_keras.encoders.config import EncoderError
from kd_keras.encoders.layers import activation
from kd_keras.encoders.model import EncoderClassifier


class MaskedLMHead(keras.layers.Layer):
    """Final hidden states [n, hidden] -> vocabulary logits [n, vocab]:
    dense, activation, LayerNorm, then the output matrix and a bias per token.

    Args:
        hidden_size: the encoder's width.
        vocab_size: rows of the output matrix.
        activation_name: the transform's activation (the config's ``hidden_act``).
        epsilon: the LayerNorm epsilon.
    """

    def __init__(self, hidden_size: int, vocab_size: int, activation_name: str,
                 epsilon: float, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(hidden_size, activation=activation(activation_name),
                                        name="dense")
        self.norm = keras.layers.LayerNormalization(epsilon=epsilon, name="norm")
        self.vocab_size = vocab_size

    def build(self, input_shape):
        hidden = input_shape[-1]
        self.dense.build(input_shape)
        self.norm.build(input_shape[:-1] + (hidden,))
        self.decoder = self.add_weight(shape=(hidden, self.vocab_size), name="decoder",
                                       trainable=False)
        self.bias = self.add_weight(shape=(self.vocab_size,), name="bias",
                                    initializer="zeros", trainable=False)

    def call(self, hidden):
        return ops.matmul(self.norm(self.dense(hidden)), self.decoder) + self.bias


class MaskedLanguageModel:
    """An encoder and its masked-LM head.

    Args:
        encoder: the checkpoint's encoder (its classifier head unused).
        head: the built, loaded MaskedLMHead.
    """

    def __init__(self, encoder: EncoderClassifier, head: MaskedLMHead):
        self.encoder, self.head = encoder, head

    def logits_at(self, inputs: Dict, positions) -> np.ndarray:
        """Vocabulary logits at one position of each sequence.

        Args:
            inputs: input_ids, attention_mask and token_type_ids, int [batch, seq].
            positions: int [batch], the position (e.g. of the mask token) in each row.

        Returns:
            float32 [batch, vocab].
        """
        outputs = self.encoder.forward(inputs, with_logits=False, output_attentions=False)
        last = outputs.hidden_states[-1]  # [batch, seq, hidden]
        rows = ops.arange(ops.shape(last)[0])
        picked = ops.take(ops.reshape(last, (-1, ops.shape(last)[-1])),
                          rows * ops.shape(last)[1] + ops.convert_to_tensor(positions, "int32"),
                          axis=0)  # [batch, hidden]
        return ops.convert_to_numpy(self.head(picked)).astype(np.float32)


def from_state(encoder: EncoderClassifier, state: Dict[str, np.ndarray],
               source: str) -> MaskedLanguageModel:
    """The masked LM of a loaded encoder, its head read from the checkpoint's tensors.

    Args:
        encoder: the checkpoint's encoder, weights assigned.
        state: the checkpoint's tensors by name (PyTorch layout).
        source: the checkpoint's name, for messages.

    Raises:
        EncoderError: the family has no masked-LM head, or the checkpoint lacks it.
    """
    names, config = encoder.family.masked_lm, encoder.config
    if names is None or config.embedding_size:
        raise EncoderError(f"{source} is a {encoder.family.name} checkpoint: kd_keras reads "
                           "masked-LM heads of BERT, RoBERTa and DistilBERT only.")
    wanted = [f"{names.dense}.weight", f"{names.dense}.bias", names.bias]
    missing = [name for name in wanted if name not in state]
    if missing:
        raise EncoderError(f"{source} has no masked-LM head (no {missing[0]}): pass a "
                           "pretrained checkpoint that has one, e.g. bert-base-uncased, or "
                           "--augment_method=embedding.")
    norm = [state.get(f"{names.norm}.{a}", state.get(f"{names.norm}.{b}"))
            for a, b in (("weight", "gamma"), ("bias", "beta"))]
    if norm[0] is None or norm[1] is None:
        raise EncoderError(f"{source}'s masked-LM head lacks {names.norm}.weight/bias.")
    embeddings = keras.ops.convert_to_numpy(encoder.embeddings.word.embeddings)
    decoder = state.get(names.decoder, embeddings)  # tied to the word embeddings
    head = MaskedLMHead(config.hidden_size, config.vocab_size,
                        names.activation or config.activation,
                        config.layer_norm_eps, name="masked_lm_head")
    head.build((None, config.hidden_size))
    values = [(head.dense.kernel, state[wanted[0]].T), (head.dense.bias, state[wanted[1]]),
              (head.norm.gamma, norm[0]), (head.norm.beta, norm[1]),
              (head.decoder, np.asarray(decoder).T), (head.bias, state[names.bias])]
    for variable, value in values:
        if tuple(value.shape) != tuple(variable.shape):
            raise EncoderError(f"{source}'s masked-LM head has a tensor of shape "
                               f"{tuple(value.shape)} where {tuple(variable.shape)} belongs.")
        variable.assign(np.asarray(value, np.float32))
    return MaskedLanguageModel(encoder, head)
