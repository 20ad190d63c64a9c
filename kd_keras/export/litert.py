"""The student as a LiteRT (TensorFlow Lite) flatbuffer, run by ai-edge-litert's
interpreter on phones, microcontroller-class boards and CPU servers without TensorFlow.

Two precisions:
- ``float``: float32 weights and arithmetic, logits within 1e-4 of the SavedModel;
- ``dynamic_int8``: int8 weights, activations quantized on the fly (no data needed).

The signature ``serving_default`` takes int32 input_ids, attention_mask and
token_type_ids [batch, seq] (any batch and length: the runner resizes) and returns
logits and probabilities, float32 [batch, num_labels].
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import tensorflow as tf

from kd_keras.export import graph

PRECISIONS = ("float", "dynamic_int8")


def convert(student, precision: str = "float") -> bytes:
    """The student's .tflite flatbuffer.

    Args:
        student: an encoders.EncoderClassifier.
        precision: one of PRECISIONS.

    Returns:
        The flatbuffer's bytes.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown LiteRT precision {precision!r}; one of {PRECISIONS}.")
    function = graph.frozen_ids_function(student)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], tf.Module())
    if precision == "dynamic_int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


class Runner:
    """A .tflite student run by the LiteRT interpreter: features -> logits."""

    def __init__(self, path: str, threads: Optional[int] = None):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=path, num_threads=threads)
        self.signature = self.interpreter.get_signature_runner("serving_default")

    def __call__(self, features: Dict[str, np.ndarray]) -> np.ndarray:
        """int32 [batch, seq] per input name -> logits float32 [batch, num_labels]."""
        inputs = {name: np.asarray(features[name], np.int32) for name in graph.INPUT_NAMES}
        return np.asarray(self.signature(**inputs)["logits"])
