"""Reads the tf_model.h5 that Hugging Face's TensorFlow models write (save_pretrained),
so folders saved by TensorFlow-era tools, kd_keras' own before Keras 3 included, still
load.  Weight names follow transformers' TF -> PyTorch naming: the model's name dropped,
``layer_._3`` as ``layer.3``, kernels transposed and named ``weight``, LayerNorm's gamma
and beta as ``weight`` and ``bias``."""

from __future__ import annotations

import re
from typing import Dict, Tuple

import numpy as np

TF_WEIGHTS_FILE = "tf_model.h5"


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def pytorch_name(tf_name: str) -> Tuple[str, bool]:
    """A TF weight name -> (its PyTorch state-dict name, whether to transpose).

    ``tf_bert_for_sequence_classification/bert/encoder/layer_._0/attention/self/query/
    kernel:0`` -> (``bert.encoder.layer.0.attention.self.query.weight``, True).
    """
    name = _text(tf_name).replace(":0", "")
    name = re.sub(r"/[^/]*___([^/]*)/", r"/\1/", name)  # shared-weight scopes
    name = name.replace("_._", "/")
    parts = [part for part in name.split("/") if part][1:]  # the model's own name first
    transpose = parts[-1] == "kernel"
    if parts[-1] in ("kernel", "gamma", "embeddings"):
        parts[-1] = "weight"
    elif parts[-1] == "beta":
        parts[-1] = "bias"
    return ".".join(parts), transpose


def read_state(path: str) -> Dict[str, np.ndarray]:
    """Every weight of a Keras 2 / HF TF h5 file, under PyTorch names and layout."""
    import h5py

    state = {}
    with h5py.File(path, "r") as handle:
        for layer in handle.attrs["layer_names"]:
            group = handle[_text(layer)]
            for weight in group.attrs.get("weight_names", []):
                name, transpose = pytorch_name(weight)
                value = np.asarray(group[_text(weight)])
                state[name] = np.ascontiguousarray(value.T if transpose else value)
    return state
