"""Tokenizers by family: byte-level BPE for RoBERTa, WordPiece for the others, and an
export that keeps to the ids signature where the in-graph tokenizer cannot follow."""

import json
import os

import numpy as np
import pytest

from conftest import TEXTS, write_bpe_tokenizer
from kd_keras import encoders, export, tokenization
from kd_keras.data.examples import Example
from kd_keras.data.features import tokenize
from kd_keras.data.vocab import SPECIAL_TOKENS, write_vocab
from kd_keras.errors import ExportError

@pytest.fixture(scope="module")
def roberta_folder(tmp_path_factory):
    return write_bpe_tokenizer(str(tmp_path_factory.mktemp("roberta")))


def test_roberta_folders_get_byte_level_bpe_with_roberta_pairs(roberta_folder):
    tokenizer = tokenization.load_tokenizer(roberta_folder, roberta_folder)
    assert not tokenization.is_wordpiece(tokenizer)
    encoded = tokenizer(["the cat"], ["a dog"], max_length=16)
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


# Texts that exercise the normaliser (case, accents, control characters, CJK), special
# tokens written in the text, unknown words, and pairs long enough to truncate.
TRICKY = ["The CAT sat.", "héllo Wörld naïve café", "a\tb\u00a0c\u200bd", "猫 sat 上",
          "[CLS] the [SEP] cat [MASK] [mask]", "<s> the </s> cat <mask>the <pad>",
          "unknownword xyz!!", "", "the cat " * 20, "dogs' cats, (mats) – “quoted”"]


def wordpiece_vocab(folder, cased, with_mask=True):
    words = ["the", "cat", "sat", "on", "mat", "dog", "##s", "##at", "a", "b", "c", "d",
             "hello", "world", "naive", "cafe", "!", ".", ",", "(", ")", "'", "猫", "上", "x",
             "##y", "##z", "–", "“", "”", "quote", "##d"]
    if cased:
        words += ["The", "CAT", "Wörld", "héllo", "café"]
    specials = [t for t in SPECIAL_TOKENS if with_mask or t != "[MASK]"]
    path = os.path.join(folder, "vocab.txt")
    write_vocab(path, specials + words)
    return path


def same_ids(ours, theirs):
    """Single texts and pairs, with and without truncation, as transformers gives them."""
    for max_length in (None, 12):
        kwargs = {} if max_length is None else dict(truncation=True, max_length=max_length)
        expected = theirs(TRICKY, **kwargs)
        got = ours(TRICKY, max_length=max_length)
        for name in expected.keys():  # RoBERTa's has no token_type_ids
            assert got[name] == expected[name], (name, max_length)
        pairs = TRICKY[::-1]
        expected = theirs(TRICKY, pairs, **kwargs)
        got = ours(TRICKY, pairs, max_length=max_length)
        for name in expected.keys():
            assert got[name] == expected[name], (name, max_length, "pairs")
    assert ours("The CAT")["input_ids"] == theirs("The CAT")["input_ids"]
    assert len(ours) == len(theirs)
    assert ours.pad_token_id == theirs.pad_token_id


@pytest.mark.parametrize("source", ["vocab_uncased", "vocab_cased", "vocab_without_mask",
                                    "tokenizer_json_told_to_lower_case", "bpe_json",
                                    "bpe_vocab_merges"])
def test_ids_are_transformers_ids(source, tmp_path):
    """load_tokenizer gives the ids of transformers' fast tokenizers built from the same
    files (transformers stays installed for hub downloads)."""
    from transformers import BertTokenizerFast, RobertaTokenizerFast

    folder = str(tmp_path)
    if source.startswith("vocab"):
        path = wordpiece_vocab(folder, cased=source == "vocab_cased",
                               with_mask=source != "vocab_without_mask")
        ours = tokenization.load_tokenizer(path, folder)
        theirs = BertTokenizerFast(vocab_file=path,
                                   do_lower_case=source != "vocab_cased")
    elif source == "tokenizer_json_told_to_lower_case":
        # A cased tokenizer.json beside a tokenizer_config.json that says lower-case.
        BertTokenizerFast(vocab_file=wordpiece_vocab(folder, cased=True),
                          do_lower_case=False).save_pretrained(folder)
        with open(os.path.join(folder, "tokenizer_config.json"), "w") as handle:
            json.dump({"do_lower_case": True}, handle)
        os.remove(os.path.join(folder, "vocab.txt"))
        ours = tokenization.load_tokenizer(folder, folder)
        theirs = BertTokenizerFast(tokenizer_file=os.path.join(folder, "tokenizer.json"),
                                   do_lower_case=True)
        assert ours.do_lower_case
    else:
        write_bpe_tokenizer(folder)
        if source == "bpe_vocab_merges":
            tokenization.load_tokenizer(folder, folder).backend_tokenizer.model.save(folder)
            os.remove(os.path.join(folder, "tokenizer.json"))
            theirs = RobertaTokenizerFast(vocab_file=os.path.join(folder, "vocab.json"),
                                          merges_file=os.path.join(folder, "merges.txt"))
        else:
            theirs = RobertaTokenizerFast(tokenizer_file=os.path.join(folder, "tokenizer.json"))
        ours = tokenization.load_tokenizer(folder, folder)
    same_ids(ours, theirs)


@pytest.mark.parametrize("kind", ["wordpiece", "bpe"])
def test_a_saved_tokenizer_loads_in_transformers_with_the_same_ids(kind, tmp_path):
    from transformers import AutoTokenizer

    source = tmp_path / "source"
    source.mkdir()
    if kind == "wordpiece":
        ours = tokenization.load_tokenizer(wordpiece_vocab(str(source), cased=True), "")
    else:
        ours = tokenization.load_tokenizer(write_bpe_tokenizer(str(source)), "")
    saved = str(tmp_path / "saved")
    ours.save_pretrained(saved)
    theirs = AutoTokenizer.from_pretrained(saved)
    assert type(theirs).__name__ == ("BertTokenizerFast" if kind == "wordpiece"
                                     else "RobertaTokenizerFast")
    same_ids(ours, theirs)
    if kind == "wordpiece":  # and back into kd_keras, still cased
        again = tokenization.load_tokenizer(saved, saved)
        assert not again.do_lower_case
        same_ids(again, theirs)
