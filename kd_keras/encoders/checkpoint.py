"""Weights to and from the Hugging Face layout (config.json + PyTorch-named
model.safetensors), so checkpoints load without torch and a distilled student loads in
transformers too."""

from __future__ import annotations

import json
import os
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from kd_keras import files
from kd_keras.encoders import tf_h5
from kd_keras.encoders.config import EncoderError, to_hf_dict
from kd_keras.encoders.family import LAYER_PARTS
from kd_keras.encoders.model import EncoderClassifier

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
# What read_folder may read from a folder: its config, then the first weights file found.
FOLDER_FILES = (CONFIG_FILE, WEIGHTS_FILE, tf_h5.TF_WEIGHTS_FILE)


def _dense(name: str, layer) -> Iterator[Tuple[str, object, bool]]:
    yield f"{name}.weight", layer.kernel, True  # PyTorch keeps [out, in]
    yield f"{name}.bias", layer.bias, False


def _norm(name: str, layer) -> Iterator[Tuple[str, object, bool]]:
    yield f"{name}.weight", layer.gamma, False
    yield f"{name}.bias", layer.beta, False


def named_variables(model: EncoderClassifier, head: bool = True
                    ) -> Iterator[Tuple[str, object, bool]]:
    """(checkpoint name, Keras variable, transposed?) for every weight of the model.

    The one table both loading and saving read, so the two cannot disagree.
    """
    family, prefix = model.family, model.family.prefix
    embeddings = model.embeddings
    for part in ("word", "position", "token_type"):
        layer = getattr(embeddings, part)
        if layer is not None:
            yield f"{prefix}{family.embedding_names[part]}.weight", layer.embeddings, False
    yield from _norm(prefix + family.embedding_names["norm"], embeddings.norm)
    if embeddings.projection is not None:
        yield from _dense(prefix + family.projection_name, embeddings.projection)
    for index, layer in enumerate(model.encoder_layers):
        base = prefix + family.layer_prefix.format(index=index)
        parts = {"query": layer.attention.query, "key": layer.attention.key,
                 "value": layer.attention.value, "attention_output": layer.attention_output,
                 "attention_norm": layer.attention_norm, "intermediate": layer.intermediate,
                 "output": layer.output_dense, "output_norm": layer.output_norm}
        for part in LAYER_PARTS:
            write = _norm if part.endswith("norm") else _dense
            yield from write(base + family.layer_names[part], parts[part])
    if head:
        yield from _dense(family.head_dense, model.head.dense)
        yield from _dense(family.head_output, model.head.out)


def _lookup(state: Dict[str, np.ndarray], name: str, prefix: str) -> Optional[str]:
    """The key under which a checkpoint stores ``name``: as is, without the backbone
    prefix (sentence-transformers checkpoints), or with TF-era LayerNorm names."""
    candidates = [name]
    if name.startswith(prefix):
        candidates.append(name[len(prefix):])
    for candidate in list(candidates):
        if "LayerNorm" in candidate or "layer_norm" in candidate:
            candidates.append(candidate.replace(".weight", ".gamma").replace(".bias", ".beta"))
    return next((c for c in candidates if c in state), None)


def assign(model: EncoderClassifier, state: Dict[str, np.ndarray]) -> Dict[str, List[str]]:
    """Copies checkpoint tensors into a built model.

    The backbone must be complete; a missing or differently sized classifier head is
    initialised (a base checkpoint, or another task's head).

    Returns:
        {"ignored": checkpoint tensors the model does not use, "initialised": model
        weights the checkpoint did not provide (the head)}.

    Raises:
        EncoderError: a backbone tensor is missing or has another shape.
    """
    family, used = model.family, set()
    head_names = {name for name, _, _ in _dense(family.head_dense, model.head.dense)}
    head_names |= {name for name, _, _ in _dense(family.head_output, model.head.out)}
    head_values, missing = [], []
    for name, variable, transpose in named_variables(model):
        key = _lookup(state, name, family.prefix)
        value = None if key is None else state[key]
        if value is not None and transpose:
            value = value.T
        if value is not None and tuple(value.shape) != tuple(variable.shape):
            if name in head_names:
                value = None
            else:
                raise EncoderError(f"checkpoint tensor {key} has shape {tuple(value.shape)}, "
                                   f"the model needs {tuple(variable.shape)}.")
        if value is None:
            (head_values if name in head_names else missing).append(name)
            continue
        used.add(key)
        variable.assign(value.astype(np.float32))
    if missing:
        raise EncoderError(f"the checkpoint lacks {len(missing)} encoder tensor(s), e.g. "
                           f"{missing[0]}; is it a {family.name} checkpoint?")
    ignored = sorted(key for key in state if key not in used)
    return {"ignored": ignored, "initialised": sorted(head_values)}


def read_folder(folder: str) -> Tuple[Dict, Dict[str, np.ndarray]]:
    """A Hugging Face folder's config.json (as a dict) and weights (name -> array): from
    model.safetensors, or from the tf_model.h5 that Hugging Face's TensorFlow models write.

    Raises:
        EncoderError: no config.json, or no weights.
    """
    from safetensors.numpy import load_file

    config_path = os.path.join(folder, CONFIG_FILE)
    safetensors_path = os.path.join(folder, WEIGHTS_FILE)
    h5_path = os.path.join(folder, tf_h5.TF_WEIGHTS_FILE)
    if not os.path.exists(config_path):
        raise EncoderError(f"{folder} has no config.json; pass a Hugging Face model folder "
                           "with config.json and model.safetensors.")
    if os.path.exists(safetensors_path):
        state = load_file(safetensors_path)
    elif os.path.exists(h5_path):
        state = tf_h5.read_state(h5_path)
    else:
        raise EncoderError(f"{folder} has no model.safetensors (or tf_model.h5); pass a "
                           "Hugging Face model folder with config.json and model.safetensors.")
    with open(config_path, encoding="utf-8") as handle:
        return json.load(handle), state


def save(model: EncoderClassifier, folder: str, tokenizer=None,
         id2label: Optional[Dict[int, str]] = None) -> None:
    """Writes config.json, model.safetensors (PyTorch names and layout) and the
    tokenizer's files into folder, atomically (a temporary sibling renamed at the end).

    Args:
        model: the model.
        folder: the target; replaced if it exists.
        tokenizer: a tokenization.TextTokenizer (anything with save_pretrained), saved
            beside the weights, or None.
        id2label: class names by index for config.json.
    """
    from safetensors.numpy import save_file

    with files.atomic_folder(folder) as staging:
        state = {}
        for name, variable, transpose in named_variables(model):
            value = np.asarray(variable.numpy(), np.float32)
            state[name] = np.ascontiguousarray(value.T if transpose else value)
        save_file(state, os.path.join(staging, WEIGHTS_FILE), metadata={"format": "pt"})
        files.write_json(os.path.join(staging, "config.json"),
                         to_hf_dict(model.config, id2label))
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
