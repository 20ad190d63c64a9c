"""The student as ONNX (tf2onnx, opset 17), run by onnxruntime; int8 by onnxruntime's
dynamic quantizer (int8 weights of the matrix multiplications, activations quantized
per batch).  The weights use a 7-bit range (``reduce_range``): onnxruntime multiplies
uint8 activations by int8 weights, whose pair sums saturate 16 bits on x86 CPUs without
VNNI (AVX2, early AVX-512); on an AVX2-only AMD EPYC the full range put a tiny student's
logits 16% of their scale off, the 7-bit range 5%.

Inputs: int32 input_ids, attention_mask, token_type_ids [batch, seq] (both
axes dynamic); outputs logits and probabilities, float32 [batch, num_labels].
"""

from __future__ import annotations

import os
from typing import Dict, Optional

import numpy as np

from kd_keras.export import graph

OPSET = 17


def convert(student, path: str, int8: bool = False) -> None:
    """Writes the student to ``path`` (a .onnx file); int8 quantizes it dynamically."""
    import tf2onnx

    if not int8:
        tf2onnx.convert.from_function(graph.ids_function(student),
                                      input_signature=graph.INPUT_SPECS, opset=OPSET,
                                      output_path=path)
        return
    from onnxruntime.quantization import QuantType, quantize_dynamic

    float_path = path + ".float.onnx"
    try:
        convert(student, float_path)
        # The file may run on any CPU: the range that never saturates (module docstring).
        quantize_dynamic(float_path, path, weight_type=QuantType.QInt8, reduce_range=True)
    finally:
        if os.path.exists(float_path):
            os.remove(float_path)


class Runner:
    """An .onnx student run by onnxruntime on the CPU: features -> logits."""

    def __init__(self, path: str, threads: Optional[int] = None):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(path, options,
                                                    providers=["CPUExecutionProvider"])

    def __call__(self, features: Dict[str, np.ndarray]) -> np.ndarray:
        """int32 [batch, seq] per input name -> logits float32 [batch, num_labels]."""
        inputs = {name: np.asarray(features[name], np.int32) for name in graph.INPUT_NAMES}
        return self.session.run(["logits"], inputs)[0]
