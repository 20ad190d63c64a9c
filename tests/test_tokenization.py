"""Tokenizers by family: byte-level BPE for RoBERTa, WordPiece for the others, and an
export that keeps to the ids signature where the in-graph tokenizer cannot follow."""

import os

import numpy as np
import pytest

from conftest import TEXTS, write_bpe_tokenizer
from kd_keras import encoders, export, tokenization
from kd_keras.data.examples import Example
from kd_keras.data.features import tokenize
from kd_keras.errors import ExportError

@pytest.fixture(scope="module")
def roberta_folder(tmp_path_factory):
    return write_bpe_tokenizer(str(tmp_path_factory.mktemp("roberta")))


def test_roberta_folders_get_byte_level_bpe_with_roberta_pairs(roberta_folder):
    tokenizer = tokenization.load_tokenizer(roberta_folder, roberta_folder)
    assert not tokenization.is_wordpiece(tokenizer)
    encoded = tokenizer(["the cat"], ["a dog"], truncation=True, max_length=16,
                        return_token_type_ids=True)
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"][0])
    assert tokens == ["<s>", "the", "Ġcat", "</s>", "</s>", "a", "Ġdog", "</s>"]
    assert encoded["token_type_ids"][0] == [0] * 8
    features = tokenize([Example("the cat", "a dog", 1)], tokenizer, 16)
    assert list(features.flat["input_ids"]) == encoded["input_ids"][0]


def test_wordpiece_folders_stay_wordpiece(tokenizer, tmp_path):
    tokenizer.save_pretrained(str(tmp_path))
    assert tokenization.is_wordpiece(tokenization.load_tokenizer(str(tmp_path), str(tmp_path)))


def test_a_bpe_student_exports_token_ids_only(roberta_folder, tmp_path):
    import tensorflow as tf

    tokenizer = tokenization.load_tokenizer(roberta_folder, roberta_folder)
    student = encoders.build(encoders.EncoderConfig(
        "roberta", len(tokenizer), 48, 2, 3, 60, max_positions=66, type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id))
    path = export.export(export.Exportable(student, tokenizer, ("a", "b"), 16, pair=False),
                         str(tmp_path))["saved_model"]
    loaded = tf.saved_model.load(path)
    assert set(loaded.signatures) == {"serving_default"}
    x = tokenize([Example(t, None, 0) for t in TEXTS], tokenizer, 16).padded()
    x["input_ids"][x["attention_mask"] == 0] = tokenizer.pad_token_id
    served = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in x.items()})
    np.testing.assert_allclose(served["logits"].numpy(), np.asarray(student(x)), atol=1e-5)
    assert os.path.exists(os.path.join(path, "assets", "labels.txt"))


def test_a_text_signature_is_refused_for_a_bpe_student_and_off_leaves_ids_only(
        roberta_folder, tokenizer, tmp_path):
    import tensorflow as tf

    bpe = tokenization.load_tokenizer(roberta_folder, roberta_folder)
    student = encoders.build(encoders.EncoderConfig(
        "roberta", len(bpe), 48, 2, 3, 60, max_positions=66, type_vocab_size=1,
        pad_token_id=bpe.pad_token_id))
    with pytest.raises(ExportError, match="--text_signature=on: .* BPE"):
        export.export(export.Exportable(student, bpe, ("a", "b"), 16, False,
                                        text_signature="on"), str(tmp_path / "bpe"))
    assert not (tmp_path / "bpe").exists()
    wordpiece = encoders.build(encoders.EncoderConfig("bert", len(tokenizer), 48, 1, 3, 60,
                                                      max_positions=64))
    for choice, signatures in (("off", {"serving_default"}),
                               ("on", {"serving_default", "serving_text"})):
        path = export.export(export.Exportable(wordpiece, tokenizer, ("a", "b"), 16, False,
                                               text_signature=choice),
                             str(tmp_path / choice))["saved_model"]
        assert set(tf.saved_model.load(path).signatures) == signatures
