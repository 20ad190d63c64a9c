"""The student as a LiteRT (TensorFlow Lite) flatbuffer, run by ai-edge-litert's
interpreter on phones, microcontroller-class boards and CPU servers without TensorFlow.

Three precisions:
- ``float``: float32 weights and arithmetic, logits within 1e-4 of the SavedModel;
- ``dynamic_int8``: int8 weights, activations quantized on the fly (no data needed);
- ``full_int8``: int8 weights and activations, their ranges calibrated on a sample of
  training text (integer kernels throughout; ops without one stay float).

The signature ``serving_default`` takes int32 input_ids, attention_mask and
token_type_ids [batch, seq] (any batch and length: the runner resizes) and returns
logits and probabilities, float32 [batch, num_labels].
"""

from __future__ import annotations

from typing import Dict, Iterator, Optional

import numpy as np
import tensorflow as tf

from kd_keras.export import graph

PRECISIONS = ("float", "dynamic_int8", "full_int8")

# What a full-integer model adds to padding keys' attention scores, instead of the
# encoder's -1e4: scores and mask are summed into one tensor with one int8 range, and
# -1e4 there crushed the scores (the demo student fell from 0.998 to 0.514 dev
# accuracy).  A fine-tuned MiniLM-L6 scores a padding key at most 3.8 above the best
# real key (MRPC dev, measured), so padding keeps at most e^-46 of the best key's weight.
FULL_INT8_MASK_VALUE = -50.0


def convert(student, precision: str = "float",
            calibration: Optional[Dict[str, np.ndarray]] = None) -> bytes:
    """The student's .tflite flatbuffer.

    Args:
        student: an encoders.EncoderClassifier.
        precision: one of PRECISIONS.
        calibration: full_int8 only: int32 [examples, seq] per name in graph.INPUT_NAMES,
            every row padded to one length (the calibrator takes one shape).

    Returns:
        The flatbuffer's bytes.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown LiteRT precision {precision!r}; one of {PRECISIONS}.")
    if (precision == "full_int8") != (calibration is not None):
        raise ValueError("full_int8, and only full_int8, takes a calibration sample.")
    mask_value = FULL_INT8_MASK_VALUE if precision == "full_int8" else graph.MASK_VALUE
    function = graph.frozen_ids_function(student, mask_value)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], tf.Module())
    if precision != "float":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if precision == "full_int8":
        converter.representative_dataset = lambda: _one_row_at_a_time(calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                                               tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def _one_row_at_a_time(calibration: Dict[str, np.ndarray]) -> Iterator[Dict[str, np.ndarray]]:
    """The calibration sample as the converter wants it: int32 [1, seq] per input."""
    for row in range(len(calibration[graph.INPUT_NAMES[0]])):
        yield {name: np.asarray(calibration[name][row:row + 1], np.int32)
               for name in graph.INPUT_NAMES}


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
