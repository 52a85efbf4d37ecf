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


def test_dtype_policy_frozen_weights_in_compute_dtype():
    """A frozen encoder under a mixed policy keeps its weights in the compute dtype (no
    float32 master copies to cast on every call)."""
    model = vgg.build_encoder(["relu1_1"], dtype="mixed_bfloat16")
    assert {v.dtype for v in model.weights} == {"bfloat16"}
    assert {v.dtype for v in vgg.build_encoder(["relu1_1"], dtype="float32").weights} \
        == {"float32"}


@pytest.mark.parametrize("size", [1, 2, 3, 5])
@pytest.mark.parametrize("axis", [1, 2])
def test_circular_pad_and_its_folded_gradient_against_numpy(size, axis):
    import tensorflow as tf

    rng = np.random.default_rng(size)
    x = rng.standard_normal((2, size, size + 1, 3))
    padded_shape = list(x.shape)
    padded_shape[axis] += 2
    upstream = rng.standard_normal(padded_shape)
    x_tf = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_tf)
        y = vgg.circular_pad(x_tf, axis)
        loss = tf.reduce_sum(y * upstream)
    moved = np.moveaxis(x, axis, 0)
    np.testing.assert_array_equal(
        np.moveaxis(y.numpy(), axis, 0), np.concatenate([moved[-1:], moved, moved[:1]]))
    # Reference: each padded row's gradient goes back to the row it was copied from.
    g = np.moveaxis(upstream, axis, 0)
    expected = g[1:-1].copy()
    expected[-1] += g[0]
    expected[0] += g[-1]
    np.testing.assert_allclose(tape.gradient(loss, x_tf).numpy(),
                               np.moveaxis(expected, 0, axis), rtol=1e-12, atol=1e-12)
