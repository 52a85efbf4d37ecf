"""The OT pipeline's per-layer decoders: shapes, the reconstruction loss against NumPy, and
their training through the training app (resume, bad flags)."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import SAMPLES, vgg_shaped_random_weights
from tf_propo import vgg
from tf_propo.ot import decoders

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "decoders.flags")


@pytest.mark.parametrize("layer", decoders.DECODER_LAYERS)
def test_decoder_inverts_the_layer_shape(layer):
    decoder = decoders.build_decoder(layer, width=0.0625)
    scale = vgg.downsampling(layer)
    features = tf.random.uniform([2, 48 // scale, 32 // scale, vgg.channels(layer)], seed=1)
    image = decoder(features)
    assert image.shape == (2, 48, 32, 3)
    assert image.dtype == tf.float32


def test_decoders_exist_only_for_relu_b_1():
    with pytest.raises(ValueError, match="relu4_1"):
        decoders.build_decoder("pool4")


def test_reconstruction_losses_match_numpy():
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(3, 8, 8, 3)).astype(np.float32)
    decoded = {"relu1_1": rng.uniform(size=(3, 8, 8, 3)).astype(np.float32)}
    features = {"relu1_1": rng.normal(size=(3, 8, 8, 4)).astype(np.float32)}
    encoded = {"relu1_1": rng.normal(size=(3, 8, 8, 4)).astype(np.float32)}
    pixel, feature = decoders.reconstruction_losses(tf.constant(images), features, decoded,
                                                    encoded, feature_weight=0.5)["relu1_1"]
    d = lambda a, b: np.mean((a.astype(np.float64) - b) ** 2, axis=(1, 2, 3))  # noqa: E731
    np.testing.assert_allclose(pixel.numpy(), d(decoded["relu1_1"], images), rtol=1e-5)
    np.testing.assert_allclose(feature.numpy(),
                               0.5 * d(encoded["relu1_1"], features["relu1_1"]), rtol=1e-5)


def test_family_losses_are_zero_for_a_perfect_decoder():
    """The family compares each decoder's image with the input, and its re-encoding with the
    input's features: a decoder that returned the input exactly would score 0 on both."""
    from tf_propo import weights

    encoder = weights.apply_weights(
        vgg.build_encoder(["relu1_1", "relu2_1"], pooling="max"), vgg_shaped_random_weights())
    family = decoders.DecoderFamily(encoder, ["relu1_1", "relu2_1"], width=0.0625)
    images = tf.random.uniform([2, 16, 16, 3], seed=2)
    out = family(images)
    for layer in ("relu1_1", "relu2_1"):
        pixel, feature = out["losses"][layer]
        assert pixel.shape == (2,) and float(tf.reduce_min(pixel)) > 0
        features = encoder(images)
        perfect = decoders.reconstruction_losses(
            images, features, {layer: images}, {layer: family.encode(images, layer)})
        np.testing.assert_allclose(perfect[layer][0].numpy(), 0.0, atol=1e-7)
        np.testing.assert_allclose(perfect[layer][1].numpy(), 0.0, atol=1e-5)


def train(*args):
    return subprocess.run([sys.executable, "-m", "tf_propo.train", f"--flagfile={CONFIG}",
                           f"--targets={SAMPLES}", "--holdout=0", "--resize=64",
                           "--crop_size=32", "--batch_size=2", "--width=0.0625",
                           "--layers=relu1_1,relu2_1,relu3_1", "--steps=4",
                           "--checkpoint_every=2", "--summary_every=2", "--image_every=2",
                           "--precision=float32", *args],
                          capture_output=True, text=True, timeout=600)


def test_decoders_train_and_resume(tmp_path, normalized_weights):
    model_dir = tmp_path / "decoders"
    first = train(f"--model_dir={model_dir}", "--run_steps=2")
    assert first.returncode == 0, first.stderr
    second = train(f"--model_dir={model_dir}")
    assert second.returncode == 0, second.stderr
    assert "resuming" in second.stderr
    result = json.loads(second.stdout.strip().splitlines()[-1])
    assert result["step"] == 4
    assert set(result["losses"]) == {f"{kind}_loss/relu{b}_1" for kind in ("pixel", "feature")
                                     for b in (1, 2, 3)}
    assert all(np.isfinite(v) for v in result["losses"].values())
    config = json.loads((model_dir / "config.json").read_text())
    assert config["mode"] == "decoders" and config["layers"] == ["relu1_1", "relu2_1",
                                                                 "relu3_1"]
    # Restoring puts the trained weights back into freshly initialised decoders.
    from tf_propo import model_dir as model_dirs

    fresh = model_dirs.build_model(model_dirs.load_config(str(model_dir)))
    restored = model_dirs.build_model(model_dirs.load_config(str(model_dir)))
    model_dirs.restore(str(model_dir), restored)
    for layer in config["layers"]:
        a = fresh.decoders[layer].get_layer("to_rgb").kernel.numpy()
        b = restored.decoders[layer].get_layer("to_rgb").kernel.numpy()
        assert not np.allclose(a, b)
    reader = tf.train.load_checkpoint(str(model_dir))
    saved = [reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
             if reader.get_variable_to_shape_map()[k] == list(b.shape)]
    assert any(np.array_equal(b, t) for t in saved)
    assert config["upsampling"] == "nearest"

    # A fine-tune may change the upsampling (the weights keep their shapes); a resume may not.
    tuned = tmp_path / "bilinear"
    fine_tune = train(f"--model_dir={tuned}", f"--init_from={model_dir}", "--steps=1",
                      "--upsampling=bilinear")
    assert fine_tune.returncode == 0, fine_tune.stderr
    assert json.loads((tuned / "config.json").read_text())["upsampling"] == "bilinear"
    bilinear = model_dirs.build_model(model_dirs.load_config(str(tuned)))
    assert bilinear.decoders["relu2_1"].get_layer("block2_up").interpolation == "bilinear"
    resume = train(f"--model_dir={tuned}", "--steps=2", "--upsampling=nearest")
    assert resume.returncode == 2 and resume.stderr.strip().count("\n") == 0, resume.stderr
    assert "upsampling=bilinear" in resume.stderr


def test_decoders_reject_other_layers(tmp_path):
    result = train(f"--model_dir={tmp_path / 'x'}", "--layers=pool2")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "pool2" in result.stderr
    assert not (tmp_path / "x").exists()


def _random_family(layers=("relu1_1", "relu2_1"), upsampling="nearest"):
    from tf_propo import weights

    keras.utils.set_random_seed(0)  # thin decoders: an unlucky draw leaves a layer dead
    encoder = weights.apply_weights(vgg.build_encoder(layers, pooling="max"),
                                    vgg_shaped_random_weights())
    return decoders.DecoderFamily(encoder, layers, width=0.0625, upsampling=upsampling)


def test_reflect_padded_encoder_draws_no_border():
    """Synthesis encodes with reflection padding: a uniform image has the same features
    everywhere, borders included (zero padding, as trained, makes them differ there, which
    the decoders turn into frames); away from the borders the trained encoder's features."""
    family = _random_family()
    encoders, _ = family.padded("reflect")
    uniform = tf.fill([1, 32, 32, 3], 0.4)
    spread = {name: float(np.abs(f - f[:, 8:9, 8:9]).max()) for name, f in (
        ("reflect", encoders["relu2_1"](uniform).numpy()),
        ("zeros", family.encode(uniform, "relu2_1").numpy()))}
    assert spread["reflect"] < 1e-4 and spread["zeros"] > 1e-2, spread
    image = np.random.default_rng(3).uniform(size=(1, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(encoders["relu2_1"](image).numpy()[:, 3:-3, 3:-3],
                               family.encode(image, "relu2_1").numpy()[:, 3:-3, 3:-3],
                               rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="padding"):
        family.padded("zeros")


@pytest.mark.parametrize("upsampling", decoders.UPSAMPLING)
def test_circular_networks_commute_with_wrapping_shifts(upsampling):
    """Circular padding: shifting the input around the torus shifts the features and the
    decoded image alike (by the layer's scale), which is what makes tileable textures; the
    trained (reflect) decoders' weights are kept. Bilinear upsampling wraps too."""
    family = _random_family(upsampling=upsampling)
    encoders, circular = family.padded("circular")
    _, reflect = family.padded("reflect")
    image = np.random.default_rng(4).uniform(size=(1, 32, 48, 3)).astype(np.float32)
    shifted = np.roll(image, (8, -12), axis=(1, 2))
    features = encoders["relu2_1"](image)
    np.testing.assert_allclose(encoders["relu2_1"](shifted).numpy(),
                               np.roll(features.numpy(), (4, -6), axis=(1, 2)), atol=1e-4)
    decoded = circular["relu2_1"](features).numpy()
    np.testing.assert_allclose(circular["relu2_1"](np.roll(features, (4, -6), axis=(1, 2))),
                               np.roll(decoded, (8, -12), axis=(1, 2)), atol=1e-4)
    gap = np.abs(reflect["relu2_1"](np.roll(features, (4, -6), axis=(1, 2))).numpy()
                 - np.roll(reflect["relu2_1"](features).numpy(), (8, -12), axis=(1, 2)))
    assert gap.max() > 1e-3  # reflection sees the borders
    for a, b in zip(circular["relu2_1"].get_weights(), family.decoders["relu2_1"].get_weights()):
        np.testing.assert_array_equal(a, b)


def test_training_flag_takes_the_decoders_upsamplings():
    """train defines --upsampling without importing TensorFlow: its choices must be the
    decoders' own. (In a subprocess: two apps' flags cannot share one process.)"""
    code = ("import tf_propo.train; from absl import flags; "
            "print(','.join(flags.FLAGS['upsampling'].parser.enum_values))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert tuple(result.stdout.strip().split(",")) == decoders.UPSAMPLING
