import keras
import numpy as np
import pytest

from tf_propo import precision
from tf_propo import texture
from tf_propo import vgg
from tf_propo import weights
from tf_propo.errors import UsageError
from tests.conftest import vgg_shaped_random_weights


def test_resolve():
    assert precision.resolve("float32") == "float32"
    assert precision.resolve("mixed_bfloat16") == "mixed_bfloat16"
    assert precision.resolve("auto") in ("float32", "mixed_bfloat16", "mixed_float16")
    with pytest.raises(UsageError, match="--precision"):
        precision.resolve("float8")


def test_texture_loss_stays_float32_under_a_bfloat16_policy():
    w = vgg_shaped_random_weights()
    image = np.random.default_rng(0).random((1, 32, 32, 3)).astype(np.float32)
    layers = ("relu1_1", "pool1", "pool2")
    losses = {}
    try:
        for policy in ("float32", "mixed_bfloat16"):
            precision.apply(policy)
            model = weights.apply_weights(vgg.build_encoder(layers), w)
            features = model(image)
            grams = texture.gram_matrices(model(image[:, ::-1]), layers)
            total, _ = texture.texture_loss(features, grams, layers)
            assert total.dtype == "float32"
            losses[policy] = float(total[0])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert losses["float32"] > 0
    np.testing.assert_allclose(losses["mixed_bfloat16"], losses["float32"], rtol=0.1)


def test_building_under_a_policy_restores_the_global_one():
    assert keras.config.dtype_policy().name == "float32"
    with precision.building_under("mixed_bfloat16"):
        inside = keras.layers.Dense(2)
    outside = keras.layers.Dense(2)
    assert inside.compute_dtype == "bfloat16" and inside.variable_dtype == "float32"
    assert outside.compute_dtype == "float32"
    with pytest.raises(RuntimeError):
        with precision.building_under("mixed_bfloat16"):
            raise RuntimeError("a failed build")
    assert keras.config.dtype_policy().name == "float32"


def test_float16_training_scales_its_loss_and_resumes(tmp_path, normalized_weights):
    """--precision=mixed_float16 trains through a LossScaleOptimizer (its dynamic scale keeps
    float16 gradients from under- or overflowing); the scale is checkpointed, so an
    interrupted run resumes to the same end."""
    import tensorflow as tf

    from tests.test_train import checkpoint_values, straight_and_resumed, train

    straight, resumed, results = straight_and_resumed(
        lambda *args: train(*args, "--precision=mixed_float16"), tmp_path)
    assert results["straight"]["precision"] == "mixed_float16"
    assert all(np.isfinite(results["straight"]["stage_losses"]))
    assert results["second"]["stage_losses"] == pytest.approx(results["straight"]["stage_losses"],
                                                           rel=1e-4)
    names = tf.train.load_checkpoint(str(straight)).get_variable_to_shape_map()
    assert "optimizer/dynamic_scale/.ATTRIBUTES/VARIABLE_VALUE" in names, sorted(names)
    a, b = checkpoint_values(straight), checkpoint_values(resumed)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-4, atol=1e-6, err_msg=key)
