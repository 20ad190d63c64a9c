"""TinyBERT's augmentation (--augment_method=mlm): the masked-LM head of each family
against numpy by hand on the independent reference encoders, the candidates it proposes,
the copies it makes, and a run that makes them from a local checkpoint."""

import json
import os
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file
from scipy.special import erf

import reference_encoders as reference
from kd_keras import config as config_lib
from kd_keras import encoders, tokenization
from kd_keras.data import augment
from kd_keras.data.examples import Example
from kd_keras.data.vocab import write_vocab
from kd_keras.encoders import EncoderError
from kd_keras.pipeline import transfer
from test_encoders import batch
from test_end_to_end import REPO, run_cli_batch

sys.path.insert(0, os.path.join(REPO, "scripts"))
import make_example_data  # noqa: E402

HEAD_NAMES = {  # family -> (dense, norm, bias, untied decoder or None), as on the hub
    "bert": ("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm",
             "cls.predictions.bias", None),
    "roberta": ("lm_head.dense", "lm_head.layer_norm", "lm_head.bias",
                "lm_head.decoder.weight"),
    "distilbert": ("vocab_transform", "vocab_layer_norm", "vocab_projector.bias", None),
}


def add_head(folder, family, seed=1):
    """Adds a random masked-LM head under the family's hub names to the folder's
    model.safetensors; returns all tensors."""
    path = os.path.join(folder, "model.safetensors")
    state = dict(load_file(path))
    hidden = state[[k for k in state if k.endswith("word_embeddings.weight")][0]].shape
    vocab, width = hidden
    dense, norm, bias, decoder = HEAD_NAMES[family]
    rng = np.random.RandomState(seed)
    state[f"{dense}.weight"] = 0.3 * rng.normal(size=(width, width)).astype(np.float32)
    state[f"{dense}.bias"] = 0.1 * rng.normal(size=width).astype(np.float32)
    state[f"{norm}.weight"] = (1 + 0.2 * rng.normal(size=width)).astype(np.float32)
    state[f"{norm}.bias"] = 0.1 * rng.normal(size=width).astype(np.float32)
    state[bias] = rng.normal(size=vocab).astype(np.float32)
    if decoder:
        state[decoder] = 0.2 * rng.normal(size=(vocab, width)).astype(np.float32)
    save_file(state, path, metadata={"format": "pt"})
    return state


def head_by_hand(family, state, config, hidden):
    """Logits [n, vocab] from final hidden states [n, hidden], in float64."""
    dense, norm, bias, decoder = HEAD_NAMES[family]
    w = {k: v.astype(np.float64) for k, v in state.items()}
    h = hidden @ w[f"{dense}.weight"].T + w[f"{dense}.bias"]
    h = 0.5 * h * (1 + erf(h / np.sqrt(2)))  # exact GELU in all three (RoBERTa's too)
    eps = config.get("layer_norm_eps", 1e-12)
    h = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + eps)
    h = h * w[f"{norm}.weight"] + w[f"{norm}.bias"]
    words = w[[k for k in w if k.endswith("word_embeddings.weight")][0]]
    return h @ (w[decoder] if decoder else words).T + w[bias]


@pytest.mark.parametrize("family", list(HEAD_NAMES))
def test_the_masked_lm_head_gives_numpys_logits_at_each_rows_position(family, tmp_path):
    reference.random_checkpoint(family, str(tmp_path), seed=3)
    state = add_head(str(tmp_path), family)
    raw = json.loads((tmp_path / "config.json").read_text())
    lm = encoders.load_masked_lm(str(tmp_path))
    x = batch(pad_id=raw["pad_token_id"], segments=family == "bert", seed=5)
    positions = np.array([0, 6, 2, 3], np.int32)  # row 1's last token; rows 2-3 padded later
    hidden = reference.forward(family, state, raw, x)[0][-1]  # [batch, seq, hidden]
    expected = head_by_hand(family, state, raw, hidden[np.arange(4), positions])
    got = lm.logits_at(x, positions)
    assert got.shape == (4, reference.VOCAB)
    np.testing.assert_allclose(got, expected, atol=2e-4, rtol=1e-4)


def test_a_checkpoint_without_a_masked_lm_head_says_what_to_pass(tmp_path):
    reference.random_checkpoint("bert", str(tmp_path / "bert"), seed=0)
    with pytest.raises(EncoderError, match="has no masked-LM head.*bert-base-uncased"):
        encoders.load_masked_lm(str(tmp_path / "bert"))
    reference.random_checkpoint("electra", str(tmp_path / "electra"), seed=0)
    with pytest.raises(EncoderError, match="BERT, RoBERTa and DistilBERT only"):
        encoders.load_masked_lm(str(tmp_path / "electra"))


VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "great", "fine", "bad",
         "##ly", ",", "\u0120good", "\u0120nice", "x1"]


def test_candidates_are_the_lms_likeliest_whole_words_with_that_word_masked():
    asked = []
    logits = np.random.RandomState(0).normal(size=(3, len(VOCAB)))

    def score(texts):  # row k: the logits the LM gives its k-th masked text
        asked.extend(texts)
        return logits[:len(texts)]

    candidates = augment.MaskedLMCandidates(VOCAB, lower_case=True, mask_token="[MASK]",
                                            score=score, count=3)
    found = candidates(["Good", "x1", ",", "bad", "unknownword", "fine"])
    # Only words that are one whole-word token are masked, one at a time, in place.
    assert asked == ["[MASK] x1 , bad unknownword fine", "Good x1 , [MASK] unknownword fine",
                     "Good x1 , bad unknownword [MASK]"]
    words = {"good": [5, 11], "great": [6], "fine": [7], "bad": [8], "nice": [12]}
    for row, (position, word) in enumerate([(0, "good"), (3, "bad"), (5, "fine")]):
        best = {w: max(logits[row, i] for i in ids) for w, ids in words.items()}
        expected = sorted((w for w in best if w != word), key=lambda w: -best[w])[:3]
        assert found[position] == expected
    assert found[1] == found[2] == found[4] == []
    # A row of NaN (the mask cut off by truncation) proposes nothing.
    nan = augment.MaskedLMCandidates(VOCAB, True, "[MASK]",
                                     lambda texts: np.full((len(texts), len(VOCAB)), np.nan))
    assert nan(["good", "bad"]) == [[], []]


REVIEW_WORDS = sorted(set(make_example_data.POSITIVE + make_example_data.NEGATIVE
                          + make_example_data.MIDDLING + make_example_data.NEUTRAL))
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def masked_lm_folder(folder, seed=0):
    """A tiny random BERT with a masked-LM head and a WordPiece vocabulary of the review
    words (scripts/make_example_data.py), saved as a hub checkpoint."""
    os.makedirs(folder, exist_ok=True)
    write_vocab(os.path.join(folder, "vocab.txt"),
                SPECIALS + REVIEW_WORDS + [",", ".", "##s", "##ly"])
    tokenizer = tokenization.load_tokenizer(os.path.join(folder, "vocab.txt"), folder)
    import keras
    keras.utils.set_random_seed(seed)
    model = encoders.build(encoders.EncoderConfig("bert", len(tokenizer), 48, 2, 3, 60,
                                                  max_positions=64))
    encoders.save(model, folder, tokenizer)
    add_head(folder, "bert", seed)
    return folder


def test_mlm_copies_keep_each_texts_length_never_hold_special_tokens_and_repeat(tmp_path):
    folder = masked_lm_folder(str(tmp_path / "lm"))
    lm = encoders.load_masked_lm(folder)
    tokenizer = tokenization.load_tokenizer(folder, str(tmp_path))

    def candidates(max_length=32):
        return transfer.masked_lm_candidates(lm, tokenizer, max_length, count=4)

    examples = [Example("The staff was very friendly , the room perfect .", "okay view", 1),
                Example("Noisy hotel and cold food", None, 0)]
    copies = augment.augment(examples, 3, "mlm", seed=2, candidates=candidates())
    assert copies == augment.augment(examples, 3, "mlm", 2, candidates())
    assert copies != augment.augment(examples, 3, "mlm", 3, candidates())
    proposed = candidates()
    changed = 0
    for k, copy in enumerate(copies):
        source = examples[k // 3]
        for text, original in ((copy.text_a, source.text_a), (copy.text_b, source.text_b)):
            if original is None:
                assert text is None
                continue
            new, old = augment.words(text), augment.words(original)
            assert len(new) == len(old)  # the length class stays
            assert not any(token in text for token in SPECIALS)
            for position, (a, b) in enumerate(zip(new, old)):
                assert a == b or a in proposed(old)[position], (a, b)
                changed += a != b
    assert changed > 0
    # 8 tokens ([CLS], 6 words, [SEP]) cut the text after "friendly": the words beyond
    # the cut get no candidates, those before it theirs.
    text = augment.words(examples[0].text_a)
    cut = candidates(max_length=8)(text)
    assert cut[:5] == proposed(text)[:5] and all(cut[:5])
    assert cut[6:] == [[]] * (len(text) - 6)


def test_mlm_needs_a_checkpoint_with_a_head_before_anything_runs():
    config = config_lib.RunConfig(
        data=config_lib.DataConfig(augment=1, augment_method="mlm"),
        model=config_lib.ModelConfig(teacher="tiny"))
    with pytest.raises(ValueError, match="--augment_model"):
        config_lib.validate(config)


def test_a_run_augments_with_a_local_masked_lm_once_and_refuses_a_headless_one(tmp_path):
    folder = str(tmp_path)
    make_example_data.write_example(folder, train_size=48, dev_size=16)
    lm = masked_lm_folder(str(tmp_path / "lm"))
    headless = str(tmp_path / "headless")
    reference.random_checkpoint("bert", headless)
    tokenization.load_tokenizer(os.path.join(lm, "vocab.txt"), folder).save_pretrained(
        headless)
    common = [f"--train_file={folder}/train.csv", f"--dev_file={folder}/dev.csv",
              "--text_fields=review", "--label_field=sentiment", "--teacher=tiny",
              "--tiny_layers=1", "--tiny_hidden_size=32", "--tiny_heads=2",
              "--teacher_epochs=1", "--student_layers=1", "--epochs=1",
              "--epochs_per_stage=1", "--max_seq_length=32", "--batch_size=16",
              "--speed_seconds=0", "--schedule=kd", "--mode=distill", "--augment=2",
              "--augment_method=mlm"]
    run = [*common, f"--augment_model={lm}", f"--model_dir={tmp_path}/run"]
    first, again, refused = run_cli_batch(
        run, run, [*common, f"--augment_model={headless}", f"--model_dir={tmp_path}/other"],
        check=False)
    assert first.returncode == 0, first.stderr
    assert "Augmenting the 48 training texts (2 copies each, mlm)" in first.stdout
    assert "masked-LM head" in first.stdout
    written = [n for n in os.listdir(f"{tmp_path}/run/cache") if n.startswith("augmented_")]
    with open(os.path.join(f"{tmp_path}/run/cache", written[0])) as handle:
        texts = [json.loads(line) for line in handle][:-1]
    with open(f"{folder}/train.csv") as handle:
        originals = [line.split(",")[1] for line in handle.readlines()[1:]]
    assert len(texts) == 96 and sum(t["text_a"] not in originals for t in texts) > 48
    with open(f"{tmp_path}/run/run_identity.json") as handle:
        added = json.load(handle)["added_text"]
    assert (added["augment_method"], added["augment_model"]) == ("mlm", os.path.abspath(lm))
    assert again.returncode == 0 and "Reusing 2 augmented copies" in again.stdout
    assert refused.returncode == 2
    assert refused.stderr.strip().count("\n") == 0 and "has no masked-LM head" in refused.stderr
