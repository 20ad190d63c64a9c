"""Checks an exported student the way TF Serving would call it, without a server.

Usage:
    python scripts/check_export.py /tmp/kd_keras_demo/export/1 \
        --text_a "w2 w4 w6" --text_b "w1 w3"

Loads the SavedModel, lists its signatures, sends a REST-style "inputs" body to
serving_default (ids from the Python tokenizer on the exported vocab) and the raw strings
to serving_text, and checks that both give the same logits.  Exits 1 on a mismatch.
"""

import argparse
import json
import os
import sys

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the ops of the raw-text signature)
from transformers import BertTokenizerFast


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export", help="a version folder: <export_dir>/<version>")
    parser.add_argument("--text_a", default="w2 w4 w6")
    parser.add_argument("--text_b", default="w1 w3 w5")
    args = parser.parse_args()

    loaded = tf.saved_model.load(args.export)
    for name, function in loaded.signatures.items():
        inputs = {k: (v.dtype.name, v.shape.as_list())
                  for k, v in function.structured_input_signature[1].items()}
        print(f"signature {name}: inputs {inputs}, outputs {sorted(function.structured_outputs)}")

    texts = {"text_a": [args.text_a]}
    text_signature = loaded.signatures["serving_text"]
    if "text_b" in text_signature.structured_input_signature[1]:
        texts["text_b"] = [args.text_b]
    from_text = text_signature(**{k: tf.constant(v) for k, v in texts.items()})

    # The body a client would POST to /v1/models/<name>:predict, tokenized in Python with
    # the exported vocab: an independent check of the in-graph tokenizer.
    tokenizer = BertTokenizerFast(vocab_file=os.path.join(args.export, "assets", "vocab.txt"),
                                  do_lower_case=True)
    encoded = tokenizer(*texts.values())
    body = {"signature_name": "serving_default",
            "inputs": {name: encoded[name] for name in
                       ("input_ids", "attention_mask", "token_type_ids")}}
    print("REST request body:", json.dumps(body))
    from_ids = loaded.signatures["serving_default"](
        **{k: tf.constant(v, tf.int32) for k, v in body["inputs"].items()})
    print("logits:", from_ids["logits"].numpy().tolist())
    if "label" in from_text:
        print("label:", from_text["label"].numpy()[0].decode())
    diff = float(np.abs(from_ids["logits"].numpy() - from_text["logits"].numpy()).max())
    print(f"max |logits(ids) - logits(text)| = {diff:.2e}")
    return 0 if diff <= 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
