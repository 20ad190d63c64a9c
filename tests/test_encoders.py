"""The Keras 3 encoders against independent references on tiny random checkpoints: a
numpy implementation of each family that reads Hugging Face checkpoint names itself
(tests/reference_encoders.py), and, where tf-keras is installed, Hugging Face's own TF
implementation of each family."""

import json
import os

import numpy as np
import pytest

import reference_encoders as reference
from kd_keras import encoders
from kd_keras.data.examples import Example
from kd_keras.data.features import tokenize
from kd_keras.encoders import EncoderError

SIZES = dict(vocab_size=97, num_labels=3)
FAMILY_CONFIGS = {
    "bert": ("BertConfig", "TFBertForSequenceClassification",
             dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=3,
                  intermediate_size=60, max_position_embeddings=64)),
    "roberta": ("RobertaConfig", "TFRobertaForSequenceClassification",
                dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=3,
                     intermediate_size=60, max_position_embeddings=66, type_vocab_size=1,
                     pad_token_id=1, hidden_act="gelu_new")),
    "electra": ("ElectraConfig", "TFElectraForSequenceClassification",
                dict(hidden_size=48, embedding_size=24, num_hidden_layers=2,
                     num_attention_heads=3, intermediate_size=60,
                     max_position_embeddings=64)),
    "distilbert": ("DistilBertConfig", "TFDistilBertForSequenceClassification",
                   dict(dim=48, n_layers=2, n_heads=3, hidden_dim=60,
                        max_position_embeddings=64)),
}


def pytorch_state(tf_model):
    """A Hugging Face TF model's weights under PyTorch names and layout (what
    model.safetensors holds on the hub), converted by transformers' own name rules."""
    from transformers.modeling_tf_pytorch_utils import (
        TransposeType, convert_tf_weight_name_to_pt_weight_name)

    state = {}
    for weight in tf_model.weights:
        name, transpose = convert_tf_weight_name_to_pt_weight_name(
            weight.name, start_prefix_to_remove=weight.name.split("/")[0] + "/",
            tf_weight_shape=weight.shape)
        value = weight.numpy()
        state[name] = np.ascontiguousarray(value.T if transpose != TransposeType.NO else value)
    return state


def hf_checkpoint(family, folder, seed=0):
    """A randomly initialised Hugging Face TF classifier of the family, saved as a hub
    checkpoint would be (config.json + PyTorch-named model.safetensors).  Needs tf-keras
    (a test dependency no longer installed by requirements.txt): skips without it."""
    pytest.importorskip("tf_keras")
    import tf_keras
    import transformers
    from safetensors.numpy import save_file

    config_class, model_class, sizes = FAMILY_CONFIGS[family]
    config = getattr(transformers, config_class)(**SIZES, **sizes)
    tf_keras.utils.set_random_seed(seed)
    model = getattr(transformers, model_class)(config)
    model(model.dummy_inputs, training=False)
    os.makedirs(folder, exist_ok=True)
    save_file(pytorch_state(model), os.path.join(folder, "model.safetensors"))
    config.to_json_file(os.path.join(folder, "config.json"))
    return model


def batch(pad_id=0, seed=0, rows=4, seq=7, segments=True):
    """Inputs int32 [rows, seq]; the last two rows padded with pad_id; two segments unless
    the family has no token types."""
    rng = np.random.RandomState(seed)
    ids = rng.randint(5, 97, size=(rows, seq)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[-1, -3:] = 0
    mask[-2, -1:] = 0
    ids[mask == 0] = pad_id
    types = np.zeros_like(ids)
    types[:, seq // 2:] = int(segments)
    types[mask == 0] = 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


@pytest.mark.parametrize("family", list(FAMILY_CONFIGS))
def test_each_family_matches_hugging_faces_implementation(family, tmp_path):
    """The cross-check of the numpy references themselves (runs where tf-keras is)."""
    reference = hf_checkpoint(family, str(tmp_path))
    ours = encoders.load_folder(str(tmp_path), verbose=False)
    assert ours.config.family == family and ours.num_labels == 3
    x = batch(pad_id=ours.config.pad_token_id, segments=family == "bert")
    hf_inputs = {k: v for k, v in x.items()
                 if not (family == "distilbert" and k == "token_type_ids")}
    expected = reference(hf_inputs, training=False, output_attentions=True,
                         output_hidden_states=True)
    got = ours.forward(x)
    assert len(got.hidden_states) == 3 and len(got.attentions) == 2
    for a, b in zip(got.hidden_states, expected.hidden_states):
        np.testing.assert_allclose(np.asarray(a), b.numpy(), atol=1e-5)
    for a, b in zip(got.attentions, expected.attentions):
        assert a.shape == (4, 3, 7, 7)
        np.testing.assert_allclose(np.asarray(a), b.numpy(), atol=1e-5)
    np.testing.assert_allclose(np.asarray(got.logits), expected.logits.numpy(), atol=1e-5)
    np.testing.assert_allclose(np.asarray(ours(x)), expected.logits.numpy(), atol=1e-5)


@pytest.mark.parametrize("family", list(FAMILY_CONFIGS))
def test_each_family_matches_an_independent_numpy_reference(family, tmp_path):
    state = reference.random_checkpoint(family, str(tmp_path), seed=3)
    raw = json.loads((tmp_path / "config.json").read_text())
    model = encoders.build(encoders.from_hf_dict(raw))
    # Every tensor of the checkpoint is read, and nothing is left to initialise.
    assert encoders.assign(model, state) == {"ignored": [], "initialised": []}
    x = batch(pad_id=model.config.pad_token_id, segments=family in ("bert", "electra"), seed=5)
    hidden, attentions, logits = reference.forward(family, state, raw, x)
    got = model.forward(x)
    assert len(got.hidden_states) == 3 and len(got.attentions) == 2
    for a, b in zip(got.hidden_states, hidden):
        np.testing.assert_allclose(np.asarray(a), b, atol=5e-5)
    for a, b in zip(got.attentions, attentions):
        np.testing.assert_allclose(np.asarray(a), b, atol=5e-6)
    np.testing.assert_allclose(np.asarray(got.logits), logits, atol=5e-5)
    np.testing.assert_allclose(np.asarray(model(x)), logits, atol=5e-5)


@pytest.mark.parametrize("family", list(FAMILY_CONFIGS))
def test_save_writes_the_hugging_face_layout_and_loads_again(family, tmp_path):
    from safetensors.numpy import load_file

    reference.random_checkpoint(family, str(tmp_path / "source"), seed=1)
    model = encoders.load_folder(str(tmp_path / "source"), verbose=False)
    encoders.save(model, str(tmp_path / "saved"), id2label={0: "a", 1: "b", 2: "c"})
    saved = load_file(str(tmp_path / "saved" / "model.safetensors"))
    assert {k: v.shape for k, v in saved.items()} == reference.shapes(family)
    raw = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert raw["id2label"] == {"0": "a", "1": "b", "2": "c"} and raw["model_type"] == family
    again = encoders.load_folder(str(tmp_path / "saved"), verbose=False)
    x = batch(pad_id=model.config.pad_token_id, segments=family == "bert")
    np.testing.assert_array_equal(np.asarray(again(x)), np.asarray(model(x)))
    _, _, logits = reference.forward(family, saved, raw, x)
    np.testing.assert_allclose(np.asarray(model(x)), logits, atol=5e-5)


@pytest.mark.parametrize("family", list(FAMILY_CONFIGS))
def test_saved_folders_load_in_hugging_face(family, tmp_path):
    import transformers
    from safetensors.numpy import load_file
    from transformers.modeling_tf_pytorch_utils import load_pytorch_state_dict_in_tf2_model

    hf_checkpoint(family, str(tmp_path / "source"))
    model = encoders.load_folder(str(tmp_path / "source"), verbose=False)
    encoders.save(model, str(tmp_path / "saved"), id2label={0: "a", 1: "b", 2: "c"})
    x = batch(pad_id=model.config.pad_token_id, segments=family == "bert")
    # Hugging Face reads the saved folder as one of its own checkpoints.
    config_class, model_class, _ = FAMILY_CONFIGS[family]
    hf_config = getattr(transformers, config_class).from_pretrained(str(tmp_path / "saved"))
    hf_model = getattr(transformers, model_class)(hf_config)
    hf_model(hf_model.dummy_inputs, training=False)
    load_pytorch_state_dict_in_tf2_model(
        hf_model, load_file(str(tmp_path / "saved" / "model.safetensors")),
        allow_missing_keys=False, skip_logger_warnings=True)
    inputs = {k: v for k, v in x.items()
              if not (family == "distilbert" and k == "token_type_ids")}
    np.testing.assert_allclose(hf_model(inputs, training=False).logits.numpy(),
                               np.asarray(model(x)), atol=1e-5)


def test_every_checkpoint_tensor_is_used_or_reported(tmp_path):
    from safetensors.numpy import load_file, save_file

    reference.random_checkpoint("bert", str(tmp_path))
    state = load_file(str(tmp_path / "model.safetensors"))
    model = encoders.build(encoders.from_hf_dict(
        json.loads((tmp_path / "config.json").read_text())))
    state["cls.predictions.bias"] = np.zeros(97, np.float32)  # a language-model head
    report = encoders.assign(model, state)
    assert report == {"ignored": ["cls.predictions.bias"], "initialised": []}
    # sentence-transformers checkpoints store the backbone without "bert.".
    bare = {k[len("bert."):] if k.startswith("bert.") else k: v for k, v in state.items()}
    assert encoders.assign(model, bare)["initialised"] == []
    # A base checkpoint without a classifier: the head is initialised and reported.
    headless = {k: v for k, v in state.items() if not k.startswith("classifier")}
    assert encoders.assign(model, headless)["initialised"] == ["classifier.bias",
                                                              "classifier.weight"]
    del state["bert.encoder.layer.1.output.dense.weight"]
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(EncoderError, match="lacks 1 encoder tensor.*layer.1.output.dense"):
        encoders.load_folder(str(tmp_path))
    with pytest.raises(EncoderError, match="has no config.json"):
        encoders.load_folder(str(tmp_path / "nowhere"))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(EncoderError, match="model type 'gpt2' is not supported"):
        encoders.load_folder(str(tmp_path))


def test_first_layers_cls_only_and_attention_before_dropout(tmp_path):
    reference.random_checkpoint("bert", str(tmp_path))
    model = encoders.load_folder(str(tmp_path), verbose=False)
    x = batch()
    full = model.forward(x)
    part = model.forward(x, num_layers=1, with_logits=False)
    assert part.logits is None and len(part.hidden_states) == 2
    np.testing.assert_allclose(np.asarray(part.hidden_states[1]),
                               np.asarray(full.hidden_states[1]), atol=1e-6)
    cls = model.forward(x, cls_only_last=True)
    assert cls.hidden_states[-1].shape == (4, 1, 48)
    np.testing.assert_allclose(np.asarray(cls.hidden_states[-1][:, 0]),
                               np.asarray(full.hidden_states[-1][:, 0]), atol=1e-5)
    np.testing.assert_allclose(np.asarray(cls.logits), np.asarray(full.logits), atol=1e-5)
    with pytest.raises(ValueError, match="all layers"):
        model.forward(x, num_layers=1)
    # Training mode: dropout on, but the returned attention rows are still distributions.
    trained = model.forward(x, training=True)
    np.testing.assert_allclose(np.asarray(trained.attentions[0]).sum(-1), 1.0, atol=1e-5)
    assert model.forward(x, output_attentions=False).attentions == []


def test_a_keras3_student_exports_with_both_signatures(tokenizer, tmp_path):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (ops of the raw-text signature)

    from kd_keras import export

    student = encoders.build(encoders.EncoderConfig("bert", 97, 48, 2, 3, 60,
                                                    max_positions=64, num_labels=2))
    path = export.export(export.Exportable(student, tokenizer, ("no", "yes"), 32, pair=True),
                         str(tmp_path))["saved_model"]
    examples = [Example("w2 w4 w6", "w1 w3", 1), Example("w11", "w20 w22 w7", 0)]
    x = tokenize(examples, tokenizer, 32).padded()
    expected = np.asarray(student(x))
    loaded = tf.saved_model.load(path)
    served = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in x.items()})
    assert np.abs(served["logits"].numpy() - expected).max() <= 1e-5
    text = loaded.signatures["serving_text"](text_a=tf.constant([e.text_a for e in examples]),
                                             text_b=tf.constant([e.text_b for e in examples]))
    assert np.abs(text["logits"].numpy() - expected).max() <= 1e-5
    assert [b.decode() for b in text["label"].numpy()] == [["no", "yes"][i]
                                                          for i in expected.argmax(-1)]


def test_new_weights_start_as_the_families_own_code_starts_them():
    """Truncated normal with the config's initializer_range for kernels and embeddings
    (Keras' Glorot default would be several times wider), zero biases, LayerNorm (1, 0)."""
    import keras

    keras.utils.set_random_seed(0)
    model = encoders.build(encoders.EncoderConfig("bert", 97, 48, 2, 3, 60,
                                                  max_positions=64, initializer_range=0.02))
    for variable in model.weights:
        value, name = np.asarray(variable.numpy()), variable.path.split("/")[-1]
        if name in ("kernel", "embeddings"):
            assert np.abs(value).max() <= 0.04 + 1e-6, variable.path  # cut at 2 std
            assert 0.012 < value.std() < 0.02, variable.path
        elif name in ("bias", "beta"):
            assert not value.any(), variable.path
        elif name == "gamma":
            assert (value == 1).all(), variable.path
