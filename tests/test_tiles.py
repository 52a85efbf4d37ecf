"""tf_propo.tiles: Grams, the loss's gradient and diversity a tile at a time, against the
whole image's (float64 NumPy Grams of the whole image's features)."""

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import vgg_shaped_random_weights
from tf_propo import gatys
from tf_propo import methods
from tf_propo import metrics
from tf_propo import texture
from tf_propo import tiles
from tf_propo import vgg
from tf_propo import weights

LAYERS = texture.TEXTURE_LAYERS + (texture.DIVERSITY_LAYER,)


@pytest.fixture(scope="module")
def encoders():
    values = vgg_shaped_random_weights(3)
    return {padding: weights.apply_weights(vgg.build_encoder(LAYERS, padding=padding), values)
            for padding in ("zeros", "circular")}


def _images(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, shape).astype(np.float32)


def _whole_grams(encoder, images):
    features = encoder(tf.constant(images))
    result = {}
    for layer in texture.TEXTURE_LAYERS:
        f = features[layer].numpy().astype(np.float64)
        result[layer] = np.einsum("bhwc,bhwd->bcd", f, f) / (f.shape[1] * f.shape[2])
    return result


def test_windows_partition_the_axis_with_margins():
    assert tiles.windows(100, 64, tile=128) == [(0, 100, 0, 100)]
    zeros = tiles.windows(200, 64, tile=64)
    assert [w[2:] for w in zeros] == [(0, 64), (64, 128), (128, 192), (192, 200)]
    assert zeros[0][:2] == (0, 128) and zeros[1][:2] == (0, 192) and zeros[-1][:2] == (128, 200)
    circular = tiles.windows(192, 32, tile=64, circular=True)
    assert [w[:2] for w in circular] == [(-32, 96), (32, 160), (96, 224)]
    assert tiles.windows(200, 64, tile=64, circular=True)[-1] == (128, 264, 192, 200)
    with pytest.raises(ValueError, match="tile and margin"):
        tiles.windows(200, 20, tile=64)


def test_margins_reach_as_far_as_the_receptive_field():
    assert vgg.receptive_field("relu1_1") == 3 and vgg.receptive_field("pool4") == 124
    assert tiles.margin_for(texture.TEXTURE_LAYERS) == 64
    assert tiles.margin_for(methods.POLISH_LAYERS["ot"]) == 16
    with pytest.raises(ValueError, match="pool5"):
        tiles.margin_for(("relu1_1", "pool5"))


@pytest.mark.parametrize("padding,shape", [("zeros", (2, 136, 152, 3)),
                                           ("circular", (1, 128, 96, 3))])
def test_tiled_grams_and_gradient_are_the_whole_images(encoders, padding, shape):
    encoder, circular = encoders[padding], padding == "circular"
    images = _images(shape)
    expected = _whole_grams(encoder, images)
    grams = tiles.grams(encoder, images, circular=circular, tile=64)
    for layer in texture.TEXTURE_LAYERS:
        scale = np.abs(expected[layer]).max()
        np.testing.assert_allclose(grams[layer].numpy() / scale, expected[layer] / scale,
                                   atol=1e-5)
    # A target unlike the images, so every layer's gradient counts.
    target = {layer: (1.5 * expected[layer][:1]).astype(np.float32)
              for layer in texture.TEXTURE_LAYERS}
    whole_loss, whole_gradient = gatys.loss_and_gradient_fn(
        encoder, target, texture.TEXTURE_LAYERS)(tf.constant(images))
    loss, gradient = tiles.loss_and_gradient(encoder, images, target, circular=circular,
                                             tile=64)
    np.testing.assert_allclose(float(loss), float(whole_loss), rtol=1e-4)
    scale = np.abs(whole_gradient.numpy()).max()
    np.testing.assert_allclose(gradient.numpy() / scale, whole_gradient.numpy() / scale,
                               atol=1e-4)


def test_tiled_grams_serve_a_reflection_padded_encoder(monkeypatch):
    # Margins stop at the borders, where the tile's encoder pads as the whole image's does:
    # reflection padding (the tileable refinement's target statistics) works as zeros do.
    encoder = weights.apply_weights(vgg.build_encoder(texture.TEXTURE_LAYERS, padding="reflect"),
                                    vgg_shaped_random_weights(3))
    images = _images((1, 112, 96, 3), seed=4)
    expected = _whole_grams(encoder, images)
    monkeypatch.setattr(tiles, "TILE", 48)
    grams = tiles.gram_matrices(encoder, images)
    for layer in texture.TEXTURE_LAYERS:
        scale = np.abs(expected[layer]).max()
        np.testing.assert_allclose(grams[layer].numpy() / scale, expected[layer] / scale,
                                   atol=1e-5)


def test_tiled_diversity_is_the_whole_images(encoders):
    images = _images((3, 112, 80, 3), seed=1)
    expected = float(texture.diversity(encoders["zeros"](images)[texture.DIVERSITY_LAYER]))
    assert tiles.diversity(encoders["zeros"], images, tile=48) == pytest.approx(expected,
                                                                               rel=1e-5)


def test_large_images_go_by_tiles_with_the_same_results(normalized_weights, sample_paths,
                                                        monkeypatch):
    # The metrics and a tileable refinement at a size over the tile give what they give
    # when the whole image is one pass (zero padding: the exact gradient test above).
    from tf_propo import image_io

    target = image_io.resize_short_edge(image_io.read_image(sample_paths[0]), 64)
    start = _images((1, 96, 80, 3), seed=2) * 0.5 + 0.25
    scorer = metrics.TextureMetrics(target)

    def run():
        return (scorer.texture_loss(start),
                scorer.diversity(np.concatenate([start, start[:, ::-1]])),
                methods.refine(target, start, 2, tileable=True)[0])

    whole = run()
    monkeypatch.setattr(tiles, "TILE", 64)
    assert tiles.needed(start.shape)
    tiled = run()
    np.testing.assert_allclose(tiled[0], whole[0], rtol=1e-4)
    assert tiled[1] == pytest.approx(whole[1], rel=1e-4)
    for a, b in zip(tiled[2:], whole[2:]):
        np.testing.assert_allclose(a, b, atol=2e-3)
        assert np.abs(a - start).mean() > 1e-3  # the steps changed something
