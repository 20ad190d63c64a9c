"""Loss terms as objects: the new losses against numpy, each term reading the right layers,
and how much of each model a set of terms needs."""

import types

import numpy as np
import pytest

from kd_keras import losses, terms

RNG = np.random.RandomState(0)


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], np.int32)


def test_attention_mse_by_hand():
    t, s = softmax(RNG.randn(2, 3, 5, 5)), softmax(RNG.randn(2, 3, 5, 5))
    expected = []
    for b in range(2):
        n = MASK[b].sum()
        expected.append(((t[b, :, :n, :n] - s[b, :, :n, :n]) ** 2).mean())
    got = np.asarray(losses.attention_mse(t, s, MASK, reduction="none"))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert float(losses.attention_mse(t, t, MASK)) == 0.0


def test_hidden_mse_by_hand_ignores_padding():
    t, s = RNG.randn(2, 5, 4), RNG.randn(2, 5, 4)
    expected = [((t[0] - s[0]) ** 2).mean(), ((t[1, :3] - s[1, :3]) ** 2).mean()]
    np.testing.assert_allclose(np.asarray(losses.hidden_mse(t, s, MASK, "none")), expected,
                               rtol=1e-5)
    s[1, 3:] += 100.0  # padding positions never count
    np.testing.assert_allclose(np.asarray(losses.hidden_mse(t, s, MASK, "none"))[1],
                               expected[1], rtol=1e-5)


def outputs(layers, width, seed):
    rng = np.random.RandomState(seed)
    return types.SimpleNamespace(
        logits=rng.randn(2, 3).astype(np.float32),
        attentions=[softmax(rng.randn(2, 3, 5, 5)).astype(np.float32) for _ in range(layers)],
        hidden_states=[rng.randn(2, 5, width).astype(np.float32) for _ in range(layers + 1)])


def test_each_term_reads_its_layer_pair():
    teacher, student = outputs(4, 6, 1), outputs(2, 6, 2)
    batch = {"attention_mask": MASK, "labels": np.array([0, 2])}
    kl, cos, hid, att = (terms.make(name, 0.5 if name == "cls_cosine" else 1.0, (1, 2))
                         for name in ("attention_kl", "cls_cosine", "hidden_mse",
                                      "attention_mse"))
    assert [t.name for t in (kl, cos, hid, att)] == ["att_kl_s1_t2", "cos_s1_t2",
                                                    "hid_mse_s1_t2", "att_mse_s1_t2"]
    assert cos.weight == 0.5 and kl.weight == 1.0
    np.testing.assert_allclose(kl(teacher, student, batch), losses.attention_kl(
        teacher.attentions[1], student.attentions[0], MASK, "none"))
    np.testing.assert_allclose(att(teacher, student, batch), losses.attention_mse(
        teacher.attentions[1], student.attentions[0], MASK, "none"))
    np.testing.assert_allclose(cos(teacher, student, batch), losses.cls_cosine_loss(
        teacher.hidden_states[2][:, 0], student.hidden_states[1][:, 0], "none"))
    doubled = lambda v: 2 * v  # noqa: E731  (a stand-in projection)
    np.testing.assert_allclose(hid(teacher, student, batch, doubled), losses.hidden_mse(
        teacher.hidden_states[2], 2 * student.hidden_states[1], MASK, "none"), rtol=1e-6)
    soft, hard = terms.make("soft", 1.0, temperature=2.0), terms.make("hard", 0.1)
    assert hard.weight == pytest.approx(0.1) and not hard.uses_teacher
    np.testing.assert_allclose(soft(teacher, student, batch), losses.soft_label_ce(
        teacher.logits, student.logits, 2.0, "none"))
    np.testing.assert_allclose(hard(None, student, batch), losses.hard_label_ce(
        batch["labels"], student.logits, "none"))
    embedding = terms.make("embedding_mse", 1.0)
    assert embedding.name == "emb_mse" and embedding.pair == (0, 0)
    np.testing.assert_allclose(embedding(teacher, student, batch), losses.hidden_mse(
        teacher.hidden_states[0], student.hidden_states[0], MASK, "none"))
    with pytest.raises(ValueError, match="Unknown loss term 'mse'. Choose from: soft, hard, "
                                         "attention_kl, cls_cosine"):
        terms.make("mse", 1.0, (1, 2))
    with pytest.raises(ValueError, match="needs a layer pair"):
        terms.make("cls_cosine", 1.0)


def layer_terms(names, pair):
    return [terms.make(name, 1.0, pair) for name in names]


def requirements(active, cached=False):
    return terms.requirements(active, student_num_layers=3, teacher_num_layers=6,
                              cached_teacher_logits=cached)


def test_requirements_run_only_what_the_terms_read():
    paper = ["attention_kl", "cls_cosine"]
    sid_stage_2 = layer_terms(paper, (1, 2)) + layer_terms(paper, (2, 4))
    assert requirements(sid_stage_2) == terms.Requirements(
        student_layers=2, student_logits=False, teacher_layers=4, teacher_logits=False,
        student_cls_only=True, teacher_cls_only=True, attentions=True)
    kd = [terms.make("soft", 1.0, temperature=1.0), terms.make("hard", 0.1)]
    assert requirements(kd, cached=True) == terms.Requirements(
        3, True, None, False, True, False, False)  # no teacher pass at all
    assert requirements(kd).teacher_layers == 6 and requirements(kd).teacher_logits
    finetune = [terms.make("hard", 1.0)]
    assert requirements(finetune).teacher_layers is None
    # A term reading every position of the deepest pair turns the [CLS]-only trick off.
    hidden = layer_terms(["hidden_mse"], (2, 4))
    assert not requirements(hidden).student_cls_only
    assert not requirements(hidden).teacher_cls_only
    below = layer_terms(["hidden_mse"], (1, 2)) + layer_terms(["cls_cosine"], (2, 4))
    assert requirements(below).student_cls_only and requirements(below).teacher_cls_only
    assert not requirements(below).attentions
    embeddings_only = requirements([terms.make("embedding_mse", 1.0)])
    assert (embeddings_only.student_layers, embeddings_only.teacher_layers) == (0, 0)
