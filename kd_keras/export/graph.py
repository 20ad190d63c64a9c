"""The student as a TensorFlow function of token ids, the one graph every export format
starts from."""

from __future__ import annotations

import tensorflow as tf

from kd_keras.encoders.layers import MASK_VALUE

# int32 [batch, seq] each, in this order: the inputs of every ids-in export.
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
INPUT_SPECS = tuple(tf.TensorSpec([None, None], tf.int32, name=name) for name in INPUT_NAMES)


def outputs(student, input_ids, attention_mask, token_type_ids, mask_value=MASK_VALUE):
    """{"logits", "probabilities"}: float32 [batch, num_labels] (probabilities are the
    logits themselves for regression); mask_value: what padding keys' attention scores
    get added."""
    logits = student({"input_ids": input_ids, "attention_mask": attention_mask,
                      "token_type_ids": token_type_ids}, training=False,
                     mask_value=mask_value)
    logits = tf.cast(logits, tf.float32)  # float16 / bfloat16 under mixed precision
    regression = student.num_labels == 1
    return {"logits": logits,
            "probabilities": logits if regression else tf.nn.softmax(logits, axis=-1)}


def ids_function(student, mask_value=MASK_VALUE
                 ) -> tf.types.experimental.PolymorphicFunction:
    """tf.function of the student: INPUT_SPECS -> outputs(), reading its variables."""

    @tf.function(input_signature=INPUT_SPECS)
    def serve(input_ids, attention_mask, token_type_ids):
        return outputs(student, input_ids, attention_mask, token_type_ids, mask_value)

    return serve


def frozen_ids_function(student, mask_value=MASK_VALUE
                        ) -> tf.types.experimental.ConcreteFunction:
    """ids_function with the weights folded in as constants, outputs still named.

    LiteRT's converter keeps Keras 3 variables as resource variables it never
    initialises (the model then answers NaN); constants convert cleanly.
    """
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2)

    concrete = ids_function(student, mask_value).get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete)

    @tf.function(input_signature=INPUT_SPECS)
    def serve(input_ids, attention_mask, token_type_ids):
        flat = frozen(input_ids=input_ids, attention_mask=attention_mask,
                      token_type_ids=token_type_ids)
        return tf.nest.pack_sequence_as(concrete.structured_outputs, flat)

    return serve.get_concrete_function()
