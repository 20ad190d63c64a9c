"""Text -> the inputs of a kd_keras student exported as ONNX or LiteRT.

This file travels inside every ids-in export, beside tokenizer.json, labels.txt and
export.json, and needs only numpy and Hugging Face's ``tokenizers`` (no TensorFlow, no
kd_keras).  With onnxruntime::

    import onnxruntime, text_inputs
    session = onnxruntime.InferenceSession("model.onnx")
    logits = session.run(["logits"], text_inputs.encode(["a sentence"]))[0]
    print(text_inputs.label_names()[logits.argmax(-1)[0]])

With the LiteRT interpreter (ai-edge-litert)::

    from ai_edge_litert.interpreter import Interpreter
    runner = Interpreter("model.tflite").get_signature_runner()
    logits = runner(**text_inputs.encode(["a sentence"]))["logits"]

Pair tasks pass the second texts too: ``encode(first_texts, second_texts)``.
"""

import json
import os

import numpy as np
from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))


def settings(folder=HERE):
    """export.json: max_seq_length, pair, labels, pad_id, the model file, its precision."""
    with open(os.path.join(folder, "export.json"), encoding="utf-8") as handle:
        return json.load(handle)


def label_names(folder=HERE):
    """Class names in logit order (["score"] for a regression task)."""
    with open(os.path.join(folder, "labels.txt"), encoding="utf-8") as handle:
        return [line.rstrip("\n") for line in handle if line.strip()]


def encode(texts, second_texts=None, folder=HERE):
    """Tokenizes as the student was trained: [CLS] a [SEP] (b [SEP]), cut longest-first
    to export.json's max_seq_length, padded to the longest row with its pad_id.

    Args:
        texts: the texts, a list of strings.
        second_texts: the pair's second texts (pair tasks), a list as long as texts.
        folder: the export folder (default: the one holding this file).

    Returns:
        {"input_ids", "attention_mask", "token_type_ids"}: int32 [batch, seq] each.
    """
    tokenizer = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    tokenizer.no_padding()
    config = settings(folder)
    tokenizer.enable_truncation(config["max_seq_length"], strategy="longest_first")
    texts = list(texts)
    if second_texts is None:
        encodings = tokenizer.encode_batch(texts)
    else:
        encodings = tokenizer.encode_batch(list(zip(texts, list(second_texts))))
    width = max(len(encoding.ids) for encoding in encodings)
    inputs = {name: np.zeros((len(encodings), width), np.int32)
              for name in ("input_ids", "attention_mask", "token_type_ids")}
    inputs["input_ids"][:] = config["pad_id"]
    for row, encoding in enumerate(encodings):
        size = len(encoding.ids)
        inputs["input_ids"][row, :size] = encoding.ids
        inputs["attention_mask"][row, :size] = 1
        inputs["token_type_ids"][row, :size] = encoding.type_ids
    return inputs
