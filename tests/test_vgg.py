"""The encoder's architecture: taps, truncation, shapes, padding and pooling options."""

import numpy as np
import pytest

from tf_propo import vgg
from tf_propo import weights
from tests.conftest import vgg_shaped_random_weights


def test_taps_are_named_and_shaped():
    taps = ("relu1_1", "pool1", "pool2", "relu3_1", "pool4")
    model = vgg.build_encoder(taps)
    out = model(np.zeros((2, 64, 48, 3), np.float32))
    assert set(out) == set(taps)
    for tap in taps:
        stride = vgg.downsampling(tap)
        assert tuple(out[tap].shape) == (2, 64 // stride, 48 // stride, vgg.channels(tap))


def test_model_is_cut_at_the_deepest_tap():
    model = vgg.build_encoder(["relu2_1", "relu1_1"])
    names = [layer.name for layer in model.layers]
    assert names[-1] == "relu2_1"
    assert "conv2_2" not in names and "pool2" not in names
    full = vgg.build_encoder(["relu5_1"])
    assert full.layers[-1].name == "relu5_1"
    assert full.count_params() > 10 * model.count_params()


def test_every_layer_by_name():
    assert vgg.deepest(["pool3", "conv4_2", "relu1_1"]) == "conv4_2"
    for layer in vgg.LAYER_ORDER[1:]:
        vgg.check_layer(layer)
    with pytest.raises(ValueError, match="unknown VGG19 layer"):
        vgg.build_encoder(["relu6_1"])


def test_pooling_and_padding_options_change_the_features():
    w = vgg_shaped_random_weights()
    image = np.random.default_rng(0).random((1, 32, 32, 3)).astype(np.float32)
    outputs = {}
    for pooling in vgg.POOLINGS:
        for padding in vgg.PADDINGS:
            model = weights.apply_weights(
                vgg.build_encoder(["pool2"], pooling=pooling, padding=padding), w)
            outputs[pooling, padding] = model(image)["pool2"].numpy()
            assert outputs[pooling, padding].shape == (1, 8, 8, 128)
    # Same interior, different border: reflection changes only the edges.
    a, b = outputs["avg", "zeros"], outputs["avg", "reflect"]
    assert not np.allclose(a, b)
    np.testing.assert_allclose(a[:, 3:5, 3:5], b[:, 3:5, 3:5], rtol=1e-4, atol=1e-5)
    assert not np.allclose(outputs["avg", "zeros"], outputs["max", "zeros"])


def test_dtype_policy_per_model():
    model = vgg.build_encoder(["relu1_1"], dtype="mixed_bfloat16")
    out = model(np.zeros((1, 16, 16, 3), np.float32))["relu1_1"]
    assert "bfloat16" in str(out.dtype)


def test_circular_padding_is_translation_equivariant():
    """On a torus, shifting the image by 16 px shifts every tap by 16 / stride exactly."""
    w = vgg_shaped_random_weights()
    taps = ("relu1_1", "pool1", "pool2", "relu3_1")
    model = weights.apply_weights(vgg.build_encoder(taps, padding="circular"), w)
    image = np.random.default_rng(1).random((1, 32, 48, 3)).astype(np.float32)
    shifted = np.roll(image, (16, -16), axis=(1, 2))
    a, b = model(image), model(shifted)
    for tap in taps:
        s = 16 // vgg.downsampling(tap)
        np.testing.assert_allclose(np.roll(a[tap].numpy(), (s, -s), axis=(1, 2)),
                                   b[tap].numpy(), rtol=1e-4, atol=1e-4)
