"""The public Python API: presets, any size, tileable output, arguments checked by name, and
the docstring examples, which run here."""

import doctest
import os

import numpy as np
import pytest

import tf_propo
from tests.conftest import SAMPLES
from tf_propo import api, image_io

TARGET = os.path.join(SAMPLES, "nature_jungle001.png")


def test_docstring_examples_run():
    result = doctest.testmod(api, extraglobs={"np": np}, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 3 and result.failed == 0


def test_presets_are_listed_with_their_size():
    presets = {p.name: p for p in tf_propo.list_presets()}
    assert {"quilt", "quilt_raw", "quilt_refined", "propo", "gatys", "ot", "ot_sliced",
            "ot_eigh"} <= set(presets)
    assert presets["quilt"].megabytes == 0 and 1 < presets["propo"].megabytes < 10
    assert all(p.description for p in presets.values())
    assert set(tf_propo.__all__) >= {"TextureSynthesizer", "list_presets", "texture_loss"}


def test_quilt_preset_any_shape_tileable_seeded(normalized_weights):
    synth = tf_propo.TextureSynthesizer.from_preset("quilt")
    images = synth.generate(TARGET, size=(96, 160), samples=2, seed=3, tileable=True)
    assert images.shape == (2, 96, 160, 3) and images.dtype == np.uint8
    assert not np.array_equal(images[0], images[1])
    np.testing.assert_array_equal(images, synth.generate(TARGET, (96, 160), 2, 3, True))
    # The target as a path, a uint8 array, a float array or a tensor: the same texture.
    import tensorflow as tf

    pixels = image_io.read_image(TARGET)
    for target in (image_io.to_uint8(pixels), pixels, tf.constant(pixels)):
        np.testing.assert_array_equal(synth.generate(target, 64, seed=1),
                                      synth.generate(TARGET, 64, seed=1))


@pytest.mark.parametrize("call, argument", [
    (lambda s: s.generate(TARGET, size=8), "size"),
    (lambda s: s.generate(TARGET, size=(64, 0.5)), "size"),
    (lambda s: s.generate(TARGET, samples=0), "samples"),
    (lambda s: s.generate(TARGET, seed=-1), "seed"),
    (lambda s: s.generate(np.zeros((8, 8, 3)), 32), "target"),
    (lambda s: s.generate(np.full((32, 32, 3), 2.0), 32), "target"),
])
def test_bad_arguments_raise_value_errors_naming_them(call, argument):
    synth = tf_propo.TextureSynthesizer.from_preset("quilt")
    with pytest.raises(ValueError, match=argument):
        call(synth)
    with pytest.raises(ValueError, match="name must be one of"):
        tf_propo.TextureSynthesizer.from_preset("fastest")
    with pytest.raises(ValueError, match="precision must be one of"):
        tf_propo.TextureSynthesizer.from_preset("quilt", precision="fp8")


def test_sizes_that_cannot_fit_raise_before_any_work(monkeypatch):
    from tf_propo import memory

    monkeypatch.setattr(memory, "available", lambda: 8e9)
    synth = tf_propo.TextureSynthesizer.from_preset("quilt_raw")
    with pytest.raises(tf_propo.UsageError, match=r"size \(4096, 4096\) with samples=1: .* "
                                                  r"more than the 8 GB free here"):
        synth.generate("no such file.png", size=4096)  # refused before the target is read


def test_precision_sets_the_networks_arithmetic_and_nothing_else():
    """from_preset builds its networks under the asked policy (as the apps' --precision),
    leaving the process' global policy as it was."""
    import keras

    before = keras.config.dtype_policy().name
    for precision, compute in (("float32", "float32"), ("mixed_bfloat16", "bfloat16")):
        synth = tf_propo.TextureSynthesizer.from_preset("ot_eigh", precision=precision)
        assert synth.policy == precision
        encoder = synth.model.family.encoder
        assert encoder.get_layer("conv1_1").compute_dtype == compute
        assert keras.config.dtype_policy().name == before


def test_neural_presets_and_the_texture_loss(normalized_weights):
    propo = tf_propo.TextureSynthesizer.from_preset("propo")
    images = propo.generate(TARGET, size=64, samples=2, seed=1)
    assert images.shape == (2, 64, 64, 3)
    # Any shape in multiples of 16, and tileable (circular padding throughout).
    assert propo.generate(TARGET, size=(48, 96), tileable=True).shape == (1, 48, 96, 3)
    with pytest.raises(ValueError, match="multiples of 16"):
        propo.generate(TARGET, size=(64, 72))
    ot = tf_propo.TextureSynthesizer.from_preset("ot_eigh")  # any shape, tileable
    assert ot.generate(TARGET, size=(48, 80), seed=1, tileable=True).shape == (1, 48, 80, 3)
    assert ot.generate(TARGET, size=(40, 72), seed=1).shape == (1, 40, 72, 3)
    with pytest.raises(ValueError, match="multiples of 16"):
        ot.generate(TARGET, size=(40, 80), tileable=True)
    quilt = tf_propo.TextureSynthesizer.from_preset("quilt").generate(TARGET, 64, seed=2)
    refined = tf_propo.TextureSynthesizer.from_preset("quilt_refined").generate(
        TARGET, 64, seed=2)
    from tf_propo import metrics

    target = image_io.resize_short_edge(image_io.read_image(TARGET), 256)
    loss = tf_propo.texture_loss(refined, target)
    expected = metrics.TextureMetrics(target).texture_loss(refined / 255.0)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    # The refinement steps lower the loss they descend: through a reflection-padded VGG19.
    reflected = metrics.TextureMetrics(target, padding="reflect")
    assert reflected.texture_loss(refined / 255.0)[0] < reflected.texture_loss(quilt / 255.0)[0]


@pytest.mark.parametrize("preset", ["quilt", "ot_eigh"])
def test_statistics_are_computed_once_and_give_the_same_texture(preset, normalized_weights):
    synth = tf_propo.TextureSynthesizer.from_preset(preset)
    stats = synth.statistics(TARGET)
    first = synth.generate(stats, 48, seed=1)
    asked = []
    kept = stats.get
    stats.get = lambda key, compute: kept(key, lambda: asked.append(key) or compute())
    again = synth.generate(stats, 48, seed=1)
    assert asked == []  # nothing of the target's was computed a second time
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, synth.generate(TARGET, 48, seed=1))
