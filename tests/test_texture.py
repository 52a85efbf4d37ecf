"""Texture math against float64 NumPy references, and the closed-form gradient against
tf.GradientTape."""

import numpy as np
import pytest
import tensorflow as tf

from tf_propo import texture


def np_gram(f):
    b, h, w, c = f.shape
    flat = f.reshape(b, h * w, c).astype(np.float64)
    return np.einsum("bnc,bnd->bcd", flat, flat) / (h * w)


def np_layer_loss(f, target_gram):
    c = f.shape[-1]
    d = np_gram(f) - target_gram.astype(np.float64)
    # The authors' form: w_l = 1e5 / (4 C^2) times the squared Frobenius norm.
    return 1e5 / (4 * c * c) * np.sum(d * d, axis=(1, 2))


def np_feature_gradient(f, target_gram):
    b, h, w, c = f.shape
    f64 = f.astype(np.float64)
    d = np_gram(f) - target_gram.astype(np.float64)
    weight = 1e5 / (4 * c * c)
    return 4 * weight / (h * w) * np.einsum("bhwc,bcd->bhwd", f64, d)


@pytest.fixture
def features():
    rng = np.random.default_rng(0)
    return {"a": rng.random((2, 6, 5, 4), np.float32), "b": rng.random((2, 3, 3, 7), np.float32)}


@pytest.fixture
def targets():
    rng = np.random.default_rng(1)
    return {name: np_gram(rng.random((1, 4, 4, c)).astype(np.float32)).astype(np.float32)
            for name, c in (("a", 4), ("b", 7))}


def test_gram_matrix_matches_numpy(features):
    got = texture.gram_matrix(features["a"]).numpy()
    np.testing.assert_allclose(got, np_gram(features["a"]), rtol=1e-5)
    assert got.dtype == np.float32


def test_gram_matrix_is_float32_under_bfloat16_features(features):
    bf16 = tf.cast(features["a"], tf.bfloat16)
    got = texture.gram_matrix(bf16)
    assert got.dtype == tf.float32
    np.testing.assert_allclose(got.numpy(), np_gram(features["a"]), rtol=2e-2)


def test_layer_and_total_texture_loss_match_numpy(features, targets):
    total, per_layer = texture.texture_loss(features, targets, layers=("a", "b"))
    expected = {name: np_layer_loss(features[name], targets[name]) for name in ("a", "b")}
    for name in ("a", "b"):
        np.testing.assert_allclose(per_layer[name].numpy(), expected[name], rtol=1e-4)
    np.testing.assert_allclose(total.numpy(), expected["a"] + expected["b"], rtol=1e-4)
    assert total.shape == (2,)


def test_texture_loss_is_zero_for_the_target_itself(features):
    grams = texture.gram_matrices(features, ("a", "b"))
    total, _ = texture.texture_loss(features, grams, ("a", "b"))
    np.testing.assert_allclose(total.numpy(), 0.0, atol=1e-6)


def test_feature_gradient_matches_numpy(features, targets):
    got = texture.feature_gradient(features["b"], targets["b"]).numpy()
    np.testing.assert_allclose(got, np_feature_gradient(features["b"], targets["b"]),
                               rtol=1e-4, atol=1e-7)


def test_feature_gradient_matches_gradient_tape(features, targets):
    grads = texture.feature_gradients(features, targets, ("a", "b"))
    for name in ("a", "b"):
        f = tf.constant(features[name])
        with tf.GradientTape() as tape:
            tape.watch(f)
            loss = tf.reduce_sum(texture.layer_texture_loss(texture.gram_matrix(f),
                                                            targets[name]))
        np.testing.assert_allclose(grads[name].numpy(), tape.gradient(loss, f).numpy(),
                                   rtol=1e-4, atol=1e-7)


def test_feature_gradient_has_no_gradient_ops():
    fn = tf.function(texture.feature_gradient).get_concrete_function(
        tf.TensorSpec([1, None, None, 8]), tf.TensorSpec([1, 8, 8]))
    ops = {op.type for op in fn.graph.get_operations()}
    backward = [op for op in ops if ("Grad" in op and op != "StopGradient") or "Backprop" in op]
    assert not backward, backward


def test_diversity_matches_numpy():
    rng = np.random.default_rng(2)
    f = rng.random((3, 4, 5, 6), np.float32)
    pairs = [(i, j) for i in range(3) for j in range(3) if i != j]
    expected = np.mean([np.mean(np.sum(np.abs(f[i].astype(np.float64) - f[j]), axis=-1))
                        for i, j in pairs])
    np.testing.assert_allclose(float(texture.diversity(f)), expected, rtol=1e-5)
    assert float(texture.diversity(np.repeat(f[:1], 3, axis=0))) == 0.0


def np_sliced_wasserstein(f, t, directions):
    b = f.shape[0]
    out = []
    for i in range(b):
        a = np.sort(f[i].reshape(-1, f.shape[-1]).astype(np.float64) @ directions, axis=0)
        c = np.sort(t[i].reshape(-1, t.shape[-1]).astype(np.float64) @ directions, axis=0)
        out.append(np.mean((a - c) ** 2))
    return np.array(out)


def test_sliced_wasserstein_matches_numpy_and_ignores_positions():
    rng = np.random.default_rng(3)
    f = rng.normal(size=(2, 6, 5, 4)).astype(np.float32)
    t = rng.normal(1.0, 2.0, size=(2, 6, 5, 4)).astype(np.float32)
    directions = texture.sliced_directions(4, 7, seed=2)
    np.testing.assert_allclose(np.linalg.norm(directions, axis=0), 1.0, rtol=1e-6)
    target_sorted = texture.sorted_projections(t, directions)
    got = np.asarray(texture.sliced_wasserstein(f, target_sorted, directions))
    np.testing.assert_allclose(got, np_sliced_wasserstein(f, t, directions), rtol=1e-4)
    # A distribution distance: the same values at other positions are at distance 0.
    shuffled = t.reshape(2, 30, 4)[:, rng.permutation(30)].reshape(t.shape)
    np.testing.assert_allclose(
        np.asarray(texture.sliced_wasserstein(shuffled, target_sorted, directions)), 0.0,
        atol=1e-10)


def test_a_blob_costs_more_in_the_sliced_term_than_in_the_gram_loss():
    """Why the sliced term exists: a few extreme values can lower a Gram difference while
    they raise the distribution distance."""
    rng = np.random.default_rng(4)
    target = np.abs(rng.normal(0.5, 0.2, size=(1, 16, 16, 2))).astype(np.float32)
    dimmed = target * 0.9
    blob = dimmed.copy()
    # Four extreme positions per channel restore the channels' second moments.
    deficit = (target ** 2).sum(axis=(0, 1, 2)) - (dimmed ** 2).sum(axis=(0, 1, 2))
    blob[0, :2, :2] = np.sqrt((blob[0, :2, :2] ** 2).sum(axis=(0, 1)) / 4 + deficit / 4)
    gram = lambda x: float(texture.layer_texture_loss(  # noqa: E731
        texture.gram_matrix(x), texture.gram_matrix(target))[0])
    directions = texture.sliced_directions(2, 8)
    target_sorted = texture.sorted_projections(target, directions)
    sliced = lambda x: float(texture.sliced_wasserstein(x, target_sorted, directions)[0])  # noqa
    assert gram(blob) < gram(dimmed)
    assert sliced(blob) > sliced(dimmed)
