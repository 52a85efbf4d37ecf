"""Gatys' synthesis on the real normalised VGG19: it reaches real quality and is reproducible."""

import numpy as np

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
