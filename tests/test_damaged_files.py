"""Damaged files kd_keras reads back (#29, item 2): a damaged cache is rebuilt, a damaged
record (config.json, run_identity.json) is one error naming the file."""

import json
import os

import numpy as np
import pytest

from kd_keras import files, run_identity, tasks
from kd_keras.data.examples import Example
from kd_keras.data.features import tokenize
from kd_keras.data.sources import load_examples
from kd_keras.errors import UserError
from kd_keras.pipeline import logit_cache, transfer


def truncate(path, where=0.5):
    with open(path, "r+b") as handle:
        handle.truncate(int(os.path.getsize(path) * where))


def flip(path, where=0.5):
    """Inverts one byte, ``where`` of the way into the file."""
    with open(path, "r+b") as handle:
        handle.seek(int(os.path.getsize(path) * where))
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0xFF]))


def only_file(folder, prefix):
    found = [name for name in os.listdir(folder) if name.startswith(prefix)]
    assert len(found) == 1, found
    return os.path.join(folder, found[0])


@pytest.mark.parametrize("damage", [truncate, flip])
@pytest.mark.parametrize("part", ["input_ids.bin", "token_type_ids.bin", "index.npz"])
def test_a_damaged_tokenize_cache_is_rebuilt(tokenizer, tmp_path, damage, part, capsys):
    examples, _ = load_examples(tasks.get_task("synthetic"), "train", synthetic_size=64, seed=3)
    first = tokenize(examples, tokenizer, 32)  # in memory: the cached ids are mapped
    tokenize(examples, tokenizer, 32, cache_dir=str(tmp_path))
    damage(os.path.join(only_file(tmp_path, "features_"), part))
    again = tokenize(examples, tokenizer, 32, cache_dir=str(tmp_path))
    assert "is damaged" in capsys.readouterr().out
    for name in first.flat:
        np.testing.assert_array_equal(again.flat[name], first.flat[name])
    np.testing.assert_array_equal(again.labels, first.labels)
    reread = tokenize(examples, tokenizer, 32, cache_dir=str(tmp_path))  # rebuilt file reads
    assert "is damaged" not in capsys.readouterr().out
    np.testing.assert_array_equal(reread.flat["input_ids"], first.flat["input_ids"])


@pytest.mark.parametrize("damage", [truncate, flip])
def test_damaged_teacher_logits_are_computed_again(teacher, synthetic_features, tmp_path,
                                                   damage, capsys):
    first = logit_cache.teacher_logits(teacher, synthetic_features, 32, str(tmp_path))
    damage(only_file(tmp_path, "teacher_logits_"), where=0.8)  # inside the array's bytes
    again = logit_cache.teacher_logits(teacher, synthetic_features, 32, str(tmp_path))
    assert "is damaged" in capsys.readouterr().out
    np.testing.assert_allclose(again, first, atol=1e-6)


def test_damaged_augmented_copies_are_refused_by_their_checksum(tmp_path):
    path = str(tmp_path / "augmented.jsonl")
    lines = [json.dumps({"text_a": f"copy {i}", "text_b": None}) + "\n" for i in range(5)]
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(lines)
        handle.write(json.dumps({"sha256": transfer._checksum(lines)}) + "\n")
    assert transfer.read(path) == [Example(f"copy {i}", None, None) for i in range(5)]
    text = open(path, encoding="utf-8").read()
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text.replace("copy 3", "copx 3"))  # still valid JSON, wrong text
    assert files.load_cache(path, transfer.read) is None and not os.path.exists(path)


@pytest.mark.parametrize("name, damage", [("run_identity.json", truncate),
                                          ("run_identity.json", flip),
                                          ("config.json", truncate)])
def test_a_damaged_record_is_one_error_naming_the_file(tmp_path, name, damage):
    record = {"data": {"task": "synthetic"}, "teacher": "tiny", "schedule": "sid"}
    with open(tmp_path / name, "w", encoding="utf-8") as handle:
        json.dump(record if name == "run_identity.json" else {"data": {"task": "mrpc"}},
                  handle)
    damage(str(tmp_path / name), where=0.0)  # flip: "{" becomes another byte
    with pytest.raises(UserError, match=f"{name} is damaged") as raised:
        run_identity.recorded(str(tmp_path))
    assert "\n" not in str(raised.value) and str(tmp_path) in str(raised.value)
