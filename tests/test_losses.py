"""Each loss against an independent numpy computation, plus its invariants."""

import numpy as np
import pytest
import tensorflow as tf

from kd_keras import losses


def np_softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def random_attention(rng, batch=3, heads=3, seq=7):
    return np_softmax(rng.randn(batch, heads, seq, seq) * 2).astype(np.float32)


def test_soft_label_ce_matches_numpy_with_temperature():
    rng = np.random.RandomState(0)
    t, s = rng.randn(4, 3).astype(np.float32), rng.randn(4, 3).astype(np.float32)
    for temperature in (1.0, 2.5):
        p = np_softmax(t / temperature)
        log_q = np.log(np_softmax(s / temperature))
        expected = -(p * log_q).sum(-1) * (temperature ** 2 if temperature != 1 else 1)
        got = losses.soft_label_ce(t, s, temperature, reduction="none").numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5)
        np.testing.assert_allclose(losses.soft_label_ce(t, s, temperature).numpy(),
                                   expected.mean(), rtol=1e-5)


def test_hard_label_ce_matches_numpy():
    rng = np.random.RandomState(1)
    logits = rng.randn(5, 3).astype(np.float32)
    labels = np.array([0, 2, 1, 1, 0])
    expected = -np.log(np_softmax(logits))[np.arange(5), labels]
    np.testing.assert_allclose(losses.hard_label_ce(labels, logits, "none").numpy(), expected,
                               rtol=1e-5)


def test_regression_mse():
    got = losses.regression_mse(np.array([1.0, 2.0]), np.array([[0.5], [3.0]], np.float32))
    assert got.numpy() == pytest.approx((0.25 + 1.0) / 2)


def numpy_attention_kl(t, s, mask, eps=losses.EPSILON):
    batch, heads, seq, _ = t.shape
    out = np.zeros(batch)
    for b in range(batch):
        total, rows = 0.0, 0
        for h in range(heads):
            for i in range(seq):
                if mask[b, i]:
                    total += np.sum(t[b, h, i] * (np.log(t[b, h, i] + eps) - np.log(s[b, h, i] + eps)))
        rows = mask[b].sum()
        out[b] = total / (heads * rows)
    return out


def test_attention_kl_matches_numpy_loop():
    rng = np.random.RandomState(2)
    t, s = random_attention(rng), random_attention(rng)
    mask = np.array([[1] * 7, [1] * 5 + [0] * 2, [1] * 3 + [0] * 4])
    got = losses.attention_kl(t, s, mask, reduction="none").numpy()
    np.testing.assert_allclose(got, numpy_attention_kl(t, s, mask), rtol=1e-4)
    assert losses.attention_kl(t, s, mask).numpy() == pytest.approx(got.mean(), rel=1e-5)


def test_attention_kl_zero_for_identical_and_ignores_padding_rows():
    rng = np.random.RandomState(3)
    t = random_attention(rng)
    mask = np.array([[1] * 7, [1] * 4 + [0] * 3, [1] * 6 + [0]])
    assert np.abs(losses.attention_kl(t, t, mask, "none").numpy()).max() < 1e-6
    s = random_attention(rng)
    changed = s.copy()
    changed[1, :, 4:, :] = random_attention(rng)[1, :, 4:, :]  # only padding query rows
    np.testing.assert_allclose(losses.attention_kl(t, s, mask, "none").numpy(),
                               losses.attention_kl(t, changed, mask, "none").numpy(), rtol=1e-6)


def test_attention_kl_finite_with_exact_zeros():
    t = np.zeros((1, 2, 3, 3), np.float32)
    t[..., 0] = 1.0  # one-hot rows: zeros everywhere else
    s = tf.Variable(np.full((1, 2, 3, 3), 1 / 3, np.float32))
    s_zero = tf.Variable(np.roll(t, 1, axis=-1))  # student puts 0 where teacher has 1
    for student in (s, s_zero):
        with tf.GradientTape() as tape:
            loss = losses.attention_kl(t, student, np.ones((1, 3)))
        grad = tape.gradient(loss, student)
        assert np.isfinite(loss.numpy()) and np.all(np.isfinite(grad.numpy()))


def test_cls_cosine_matches_numpy_and_is_zero_for_parallel():
    rng = np.random.RandomState(4)
    a, b = rng.randn(4, 6).astype(np.float32), rng.randn(4, 6).astype(np.float32)
    cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    np.testing.assert_allclose(losses.cls_cosine_loss(a, b, "none").numpy(), (1 - cos) ** 2,
                               rtol=1e-5)
    assert losses.cls_cosine_loss(a, 3.0 * a).numpy() == pytest.approx(0.0, abs=1e-6)
    assert losses.cls_cosine_loss(a, -a).numpy() == pytest.approx(4.0, rel=1e-5)


def test_cls_cosine_gradient_finite_at_zero_vector():
    student = tf.Variable(np.zeros((2, 4), np.float32))
    with tf.GradientTape() as tape:
        loss = losses.cls_cosine_loss(np.ones((2, 4), np.float32), student)
    assert np.all(np.isfinite(tape.gradient(loss, student).numpy()))


def test_unknown_reduction_is_an_error():
    with pytest.raises(ValueError, match="reduction"):
        losses.cls_cosine_loss(np.ones((1, 2)), np.ones((1, 2)), reduction="sum")
