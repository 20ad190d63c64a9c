"""scripts/attention_shift.py on tiny models: a model against itself has moved nowhere, and
a change to one layer's attention shows in that layer and never below it."""

import json
import os
import sys

import numpy as np
import pytest

from conftest import tiny_teacher
from kd_keras import models

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "scripts"))
import attention_shift  # noqa: E402


def test_a_changed_layer_moves_its_attention_and_not_the_layers_below(tmp_path, tokenizer):
    base = tiny_teacher(num_layers=3, dropout=0.0)
    tuned = tiny_teacher(num_layers=3, dropout=0.0)
    tuned.set_weights(base.get_weights())
    query = next(v for v in tuned.weights if v.path == "layer_1/attention/query/kernel")
    query.assign(np.asarray(query) * 20.0)  # sharper attention in layer 2 (1-based)
    models.save_model(base, tokenizer, str(tmp_path / "base"))
    models.save_model(tuned, tokenizer, str(tmp_path / "tuned"))
    common = ["--task=synthetic", "--max_seq_length=32", f"--cache_dir={tmp_path / 'cache'}"]

    same = attention_shift.main([f"--tuned={tmp_path / 'base'}", f"--base={tmp_path / 'base'}",
                                 *common])
    assert same["dev_examples"] > 0
    # Only the dev split is read and tokenized: the cache holds one split's features.
    assert len(list((tmp_path / "cache").glob("features_*"))) == 1
    assert all(value == pytest.approx(0.0, abs=1e-6)
               for value in same["attention_kl_by_layer"].values())

    output = tmp_path / "shift.json"
    moved = attention_shift.main([f"--tuned={tmp_path / 'tuned'}",
                                  f"--base={tmp_path / 'base'}", *common, f"--output={output}"])
    by_layer = moved["attention_kl_by_layer"]
    assert by_layer["1"] == pytest.approx(0.0, abs=1e-6)
    assert by_layer["2"] > 1e-2
    assert json.loads(output.read_text())["attention_kl_by_layer"] == by_layer


def test_models_of_other_shapes_are_refused():
    with pytest.raises(ValueError, match="3 layers .* against 2"):
        attention_shift.attention_shift(tiny_teacher(num_layers=3), tiny_teacher(num_layers=2),
                                        None, False, 8)
