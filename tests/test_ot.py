"""Optimal-transport building blocks against float64 NumPy references."""

import numpy as np
import pytest
import tensorflow as tf

from tf_propo.ot import linalg
from tf_propo.ot import sliced


def correlated(n, c, seed, rank=None):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(rank or c, c))
    return (rng.normal(size=(n, rank or c)) ** 3 @ mix + rng.normal(size=c)).astype(np.float32)


@pytest.mark.parametrize("method", ["cholesky", "eigh"])
def test_match_covariance_gives_the_target_moments(method):
    source, target = correlated(4000, 6, 0), correlated(3000, 6, 1)
    out = linalg.match_covariance(tf.constant(source), tf.constant(target), method).numpy()
    np.testing.assert_allclose(out.mean(0), target.mean(0), atol=1e-3 * np.abs(target).max())
    np.testing.assert_allclose(np.cov(out.T.astype(np.float64), bias=True),
                               np.cov(target.T.astype(np.float64), bias=True), rtol=2e-3,
                               atol=2e-3 * np.abs(np.cov(target.T)).max())


def test_eigh_transform_matches_numpy_zca():
    source, target = correlated(500, 5, 2), correlated(500, 5, 3)
    cs, ct = np.cov(source.T, bias=True), np.cov(target.T, bias=True)

    def power(m, p):
        w, v = np.linalg.eigh(m)
        return (v * np.maximum(w, 1e-5) ** p) @ v.T

    expected = power(cs, -0.5) @ power(ct, 0.5)
    got = linalg.covariance_transform(tf.constant(cs), tf.constant(ct), "eigh").numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-10)


def test_rank_deficient_features_stay_finite():
    source = correlated(200, 8, 4, rank=3)  # 5 dead directions
    source[:, 0] = 0.0  # a dead ReLU channel
    target = correlated(200, 8, 5)
    for method in linalg.METHODS:
        out = linalg.match_covariance(tf.constant(source), tf.constant(target), method)
        assert np.all(np.isfinite(out.numpy())), method


def test_pca_keeps_the_requested_variance_share():
    target = correlated(2000, 10, 6, rank=3)
    basis = linalg.principal_basis(linalg.mean_and_covariance(target)[1], 0.9).numpy()
    assert 1 <= basis.shape[1] <= 3
    values = np.sort(np.linalg.eigvalsh(np.cov(target.T, bias=True)))[::-1]
    assert values[:basis.shape[1]].sum() / values.sum() >= 0.9
    source = correlated(2000, 10, 7)
    out = linalg.match_covariance(tf.constant(source), tf.constant(target), "pca").numpy()
    # Inside the kept subspace the covariance is the target's.
    cov_in = basis.T @ np.cov(out.T, bias=True) @ basis
    np.testing.assert_allclose(cov_in, basis.T @ np.cov(target.T, bias=True) @ basis,
                               rtol=1e-2, atol=1e-2 * np.abs(cov_in).max())


def test_random_rotation_is_orthogonal_seeded_and_unbiased():
    q = sliced.random_rotation(16, [1, 2]).numpy()
    np.testing.assert_allclose(q @ q.T, np.eye(16), atol=1e-5)
    np.testing.assert_array_equal(q, sliced.random_rotation(16, [1, 2]).numpy())
    # Haar: E[Q] = 0. Without the sign fix the diagonal of Q averages clearly positive.
    mean_diag = np.mean([np.diag(sliced.random_rotation(4, [s, 0]).numpy()).mean()
                         for s in range(400)])
    assert abs(mean_diag) < 0.06


@pytest.mark.parametrize("task_elements", [sliced.TASK_ELEMENTS, 4])
def test_match_sorted_is_exact_1d_transport(task_elements, monkeypatch):
    # Five columns: the sorts split them between threads unevenly, or (4 values per task)
    # one column per task, more tasks than cores.
    monkeypatch.setattr(sliced, "TASK_ELEMENTS", task_elements)
    rng = np.random.default_rng(8)
    source, target = rng.normal(size=(7, 5)), rng.exponential(size=(7, 5))
    got = sliced.match_sorted(tf.constant(source), tf.constant(target)).numpy()
    for d in range(5):
        expected = np.empty(7)
        expected[np.argsort(source[:, d])] = np.sort(target[:, d])
        np.testing.assert_allclose(got[:, d], expected)
    # Unequal counts: the midpoint ("hazen") quantiles of the larger set, interpolated.
    big = np.linspace(0.0, 1.0, 101)[:, None] ** 2
    got = sliced.match_sorted(tf.constant([[5.0], [1.0]], tf.float64), tf.constant(big)).numpy()
    np.testing.assert_allclose(got[:, 0], [np.quantile(big, 0.75, method="hazen"),
                                           np.quantile(big, 0.25, method="hazen")], atol=1e-12)


def test_match_cdf_approximates_the_target_marginals():
    rng = np.random.default_rng(9)
    source = rng.normal(size=(5000, 3))
    target = rng.exponential(size=(4000, 3)) * [1.0, 2.0, 0.5]
    got = sliced.match_cdf(tf.constant(source), tf.constant(target), bins=256).numpy()
    for d in range(3):
        for q in (0.1, 0.5, 0.9):
            assert abs(np.quantile(got[:, d], q) - np.quantile(target[:, d], q)) \
                < 0.03 * target[:, d].std() + 0.02
        # Monotone: ranks are kept.
        assert np.all(np.diff(got[np.argsort(source[:, d]), d]) >= -1e-9)
    # A source far below the target lands within the target's range (to a bin's width),
    # its minimum too.
    got = sliced.match_cdf(tf.constant(source - 10), tf.constant(target), bins=256).numpy()
    width = (target.max(0) - (source - 10).min(0)) / 256
    assert np.all(got.min(0) >= target.min(0) - width)
    assert np.all(got.max(0) <= target.max(0) + width)


@pytest.mark.parametrize("matcher", ["sort", "cdf"])
def test_sliced_passes_do_not_increase_the_sliced_distance(matcher):
    rng = np.random.default_rng(10)
    source = tf.constant(rng.normal(size=(3000, 4)))
    centers = rng.normal(size=(3, 4)) * 3
    target = tf.constant(centers[rng.integers(0, 3, 2000)] + rng.normal(size=(2000, 4)) * 0.3)
    directions = rng.normal(size=(4, 200))
    directions = tf.constant(directions / np.linalg.norm(directions, axis=0))
    distances = [float(sliced.sliced_wasserstein(source, target, directions))]
    x = source
    for i in range(12):
        rotation = sliced.random_rotation(4, [i, 7], dtype=tf.float64)
        x = sliced.sliced_ot_pass(x, target, rotation, matcher)
        distances.append(float(sliced.sliced_wasserstein(x, target, directions)))
    tolerance = 1e-9 if matcher == "sort" else 0.02 * distances[0]
    assert all(b <= a + tolerance for a, b in zip(distances, distances[1:])), distances
    assert distances[-1] < 0.05 * distances[0], distances
