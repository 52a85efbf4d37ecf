"""Gatys' synthesis on the real normalised VGG19: it reaches real quality and is reproducible."""

import numpy as np
import pytest

from tf_propo import gatys
from tf_propo import image_io
from tf_propo import metrics


def test_gatys_reaches_a_low_texture_loss(normalized_weights, sample_paths):
    target = image_io.resize_short_edge(image_io.read_image(sample_paths[0]), 128)
    evaluation = metrics.TextureMetrics(target)
    noise = metrics.reference_noise(seed=1, size=64)
    image = gatys.synthesize(evaluation.encoder, evaluation.target_grams, noise, steps=60)
    ratio = evaluation.texture_loss(image)[0] / evaluation.texture_loss(noise)[0]
    assert ratio < 0.01, ratio
    assert image.min() >= 0.0 and image.max() <= 1.0
    # The colours moved to the target's, away from the noise's grey mean.
    assert np.abs(image.mean((0, 1, 2)) - target.mean((0, 1))).max() < 0.05


def test_gatys_is_reproducible_and_adam_works(normalized_weights, sample_paths):
    target = image_io.read_image(sample_paths[1])
    evaluation = metrics.TextureMetrics(target)
    noise = metrics.reference_noise(seed=2, size=32)
    a = gatys.synthesize(evaluation.encoder, evaluation.target_grams, noise, steps=8)
    b = gatys.synthesize(evaluation.encoder, evaluation.target_grams, noise, steps=8)
    np.testing.assert_allclose(a, b, atol=1e-5)
    losses = []
    adam = gatys.synthesize(evaluation.encoder, evaluation.target_grams, noise, steps=30,
                            optimizer="adam",
                            on_step=lambda loss, _: losses.append(loss))
    assert len(losses) == 30 and losses[-1] < 0.2 * losses[0]
    assert adam.min() >= 0.0 and adam.max() <= 1.0


def test_reference_noise_is_seeded():
    a = metrics.reference_noise(5, (16, 24), samples=2)
    assert a.shape == (2, 16, 24, 3)
    np.testing.assert_array_equal(a, metrics.reference_noise(5, (16, 24), samples=2))
    assert not np.array_equal(a, metrics.reference_noise(6, (16, 24), samples=2))


def _quadratic(scale, centre):
    """loss_and_gradient of Σ scale·(x − centre)², float64 maths behind float32 tensors."""
    import tensorflow as tf

    def loss_and_gradient(image):
        x = image.numpy().astype(np.float64)
        return (tf.constant(np.sum(scale * (x - centre) ** 2)),
                tf.constant((2 * scale * (x - centre)).astype(np.float32)))
    return loss_and_gradient


def test_projected_lbfgs_reaches_the_bounded_minimum_of_a_quadratic():
    rng = np.random.default_rng(0)
    shape = (1, 6, 5, 3)
    scale = rng.uniform(0.5, 20.0, shape)  # badly conditioned: plain gradient steps crawl
    centre = rng.uniform(-0.5, 1.5, shape)  # about half the minimum lies on the bounds
    start = rng.uniform(0.0, 1.0, shape).astype(np.float32)
    losses = []
    result = gatys.projected_lbfgs(_quadratic(scale, centre), start, steps=60,
                                   on_step=lambda loss, current: losses.append(loss))
    np.testing.assert_allclose(result, np.clip(centre, 0.0, 1.0), atol=1e-3)
    assert result.dtype == np.float32 and result.shape == shape
    assert all(b < a for a, b in zip(losses, losses[1:]))  # every accepted step descends


def test_projected_lbfgs_keeps_every_pixel_within_trust_of_its_start():
    # A separable quadratic's minimum in a box is the centre clipped to it: with trust the box
    # is [start − trust, start + trust] within [0, 1].
    rng = np.random.default_rng(1)
    shape = (1, 6, 5, 3)
    scale = rng.uniform(0.5, 20.0, shape)
    centre = rng.uniform(-0.5, 1.5, shape)
    start = rng.uniform(0.0, 1.0, shape).astype(np.float32)
    start64 = start.astype(np.float64)
    expected = np.clip(centre, np.maximum(start64 - 0.1, 0.0), np.minimum(start64 + 0.1, 1.0))
    result = gatys.projected_lbfgs(_quadratic(scale, centre), start, steps=60, trust=0.1)
    np.testing.assert_allclose(result, expected, atol=1e-3)
    assert np.abs(result - start).max() <= 0.1 + 1e-6
    assert np.abs(expected - np.clip(centre, 0.0, 1.0)).max() > 0.3  # the box did bind
    with pytest.raises(ValueError, match="trust"):
        gatys.synthesize(None, {}, start, 1, optimizer="lbfgs", trust=0.1)


def test_projected_lbfgs_stops_where_no_step_descends():
    centre = np.full((1, 2, 2, 3), 0.25)
    calls = []
    quadratic = _quadratic(np.ones_like(centre), centre)

    def counted(image):
        calls.append(1)
        return quadratic(image)

    result = gatys.projected_lbfgs(counted, centre.astype(np.float32), steps=50)
    np.testing.assert_allclose(result, centre, atol=1e-7)
    assert len(calls) <= 1 + 6  # the start, then one direction's backtracking: no 50 steps


def test_gatys_synthesize_takes_the_projected_optimizer(normalized_weights, sample_paths):
    target = image_io.resize_short_edge(image_io.read_image(sample_paths[0]), 64)
    evaluation = metrics.TextureMetrics(target)
    noise = metrics.reference_noise(seed=3, size=32)
    image = gatys.synthesize(evaluation.encoder, evaluation.target_grams, noise, steps=10,
                             optimizer="lbfgs_projected")
    assert evaluation.texture_loss(image)[0] < 0.1 * evaluation.texture_loss(noise)[0]
    assert image.min() >= 0.0 and image.max() <= 1.0
