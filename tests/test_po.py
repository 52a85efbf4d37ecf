"""The pseudo-optimizer models: the authors' architecture and size, shapes, gradient modes,
and that training makes the loss go down."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_propo import po
from tf_propo import texture
from tf_propo import vgg
from tf_propo import weights
from tests.conftest import vgg_shaped_random_weights


def test_stage_layer_sets_are_progressive():
    sets = po.stage_layers(5)
    assert sets[0] == ("relu1_1",)
    assert sets[4] == texture.TEXTURE_LAYERS
    assert all(sets[i] == sets[i + 1][:i + 1] for i in range(4))
    assert po.stage_layers(1) == (texture.TEXTURE_LAYERS,)


def test_full_width_matches_the_authors_parameter_counts():
    # Counted from the authors' code: 20.6M for a 5-layer stage, 28.0M for ProPO.
    stage = po.build_pseudo_optimizer(texture.TEXTURE_LAYERS, width=1.0)
    assert abs(stage.count_params() - 20.6e6) < 0.05e6
    total = sum(po.build_pseudo_optimizer(s, 1.0, name=f"s{i}").count_params()
                for i, s in enumerate(po.stage_layers(5)))
    assert abs(total - 28.0e6) < 0.1e6


@pytest.fixture(scope="module")
def random_encoder():
    return weights.apply_weights(vgg.build_encoder(texture.TEXTURE_LAYERS),
                                 vgg_shaped_random_weights())


def run_model(model, size=32, batch=2):
    rng = np.random.default_rng(0)
    pre = rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)
    target = rng.random((1, size, size, 3)).astype(np.float32)
    grams = texture.gram_matrices(model.features(target, model.all_layers), model.all_layers)
    return model({"pre": pre, "target_grams": grams})


def test_progressive_forward_shapes_any_size(random_encoder):
    model = po.ProgressiveOptimizer(random_encoder, stages=3, width=0.05)
    for size in (32, 48):
        out = run_model(model, size=size)
        assert len(out["images"]) == 4 and len(out["losses"]) == 3
        for image in out["images"]:
            assert image.shape == (2, size, size, 3)
            assert float(tf.reduce_min(image)) >= 0 and float(tf.reduce_max(image)) <= 1
        assert set(out["layer_losses"][2]) == set(po.stage_layers(3)[2])
        # The pre-sigmoid images behind them, for terms that must not saturate.
        assert len(out["pre"]) == 4
        for pre, image in zip(out["pre"], out["images"]):
            np.testing.assert_allclose(tf.sigmoid(pre), image, rtol=1e-5, atol=1e-6)


def test_image_logits_inverts_the_sigmoid_with_finite_black_and_white():
    image = np.array([0.0, 0.5 / 255, 1 / 255, 0.25, 0.5, 0.9, 254.5 / 255, 1.0])
    eps = 0.5 / 255
    clipped = np.clip(image, eps, 1 - eps)
    expected = np.log(clipped / (1 - clipped))  # float64 reference
    got = np.asarray(po.image_logits(image.astype(np.float32)))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert got[0] == pytest.approx(-6.23, abs=0.01) and got[-1] == pytest.approx(6.23, abs=0.01)


def test_local_gradients_build_no_gradient_ops(random_encoder):
    model = po.ProgressiveOptimizer(random_encoder, stages=2, width=0.05)
    grams = {l: tf.zeros([1, vgg.channels(l), vgg.channels(l)]) for l in model.all_layers}
    fn = tf.function(lambda pre: model({"pre": pre, "target_grams": grams})["images"][-1])
    graph = fn.get_concrete_function(tf.TensorSpec([1, 32, 32, 3])).graph
    ops = {op.type for op in graph.get_operations()}
    backward = [op for op in ops if ("Grad" in op and op != "StopGradient") or "Backprop" in op]
    assert not backward, backward


def test_total_gradient_mode_differs_from_local(random_encoder):
    keras.utils.set_random_seed(0)
    local = po.ProgressiveOptimizer(random_encoder, stages=1, width=0.05)
    keras.utils.set_random_seed(0)
    total = po.ProgressiveOptimizer(random_encoder, stages=1, width=0.05, grad_mode="total")
    a, b = run_model(local)["images"][-1], run_model(total)["images"][-1]
    assert a.shape == b.shape and not np.allclose(a, b)
    with pytest.raises(ValueError, match="grad_mode"):
        po.ProgressiveOptimizer(random_encoder, grad_mode="other")


def test_total_gradients_are_the_tape_derivatives_through_deeper_layers(random_encoder):
    """grad_mode=total's stage inputs (autodiff of zero probes added to the features) equal a
    gradient tape on the encoder's intermediate features; for the deepest layer, where
    nothing lies beyond, they equal the closed-form local gradient, and not for the others."""
    model = po.ProgressiveOptimizer(random_encoder, stages=1, width=0.05, grad_mode="total")
    layers = model.layer_sets[0]
    rng = np.random.default_rng(1)
    image = tf.constant(rng.random((2, 32, 32, 3)), tf.float32)
    target = rng.random((1, 32, 32, 3)).astype(np.float32)
    grams = texture.gram_matrices(model.features(target, layers), layers)

    features, grads = model._total_gradients(image, layers, grams)
    with tf.GradientTape() as tape:
        tape.watch(image)
        reference_features = model.features(image, layers)
        loss = tf.reduce_sum(texture.texture_loss(reference_features, grams, layers)[0])
    reference = tape.gradient(loss, reference_features)
    local = texture.feature_gradients(reference_features, grams, layers)
    for layer in layers:
        np.testing.assert_allclose(features[layer], reference_features[layer], rtol=1e-5,
                                   atol=1e-6, err_msg=layer)
        scale = float(tf.reduce_max(tf.abs(reference[layer])))
        np.testing.assert_allclose(grads[layer], reference[layer], rtol=1e-4,
                                   atol=1e-5 * scale, err_msg=layer)
    deepest = vgg.deepest(layers)
    scale = float(tf.reduce_max(tf.abs(local[deepest])))
    np.testing.assert_allclose(grads[deepest], local[deepest], rtol=1e-4, atol=1e-5 * scale)
    assert not np.allclose(grads["relu1_1"], local["relu1_1"], rtol=1e-2, atol=0)


def test_training_lowers_the_texture_loss(normalized_weights, sample_paths):
    """A few Adam steps on one target: the one-stage PO learns to lower the loss."""
    from tf_propo import image_io

    keras.utils.set_random_seed(1)
    encoder = weights.apply_weights(vgg.build_encoder(texture.TEXTURE_LAYERS),
                                    normalized_weights)
    model = po.ProgressiveOptimizer(encoder, stages=1, width=0.1)
    target = image_io.resize_short_edge(image_io.read_image(sample_paths[0]), 64)[:32, :32]
    grams = texture.gram_matrices(model.features(target[None], model.all_layers),
                                  model.all_layers)
    optimizer = keras.optimizers.Adam(2e-3, beta_1=0.5, epsilon=1e-3)
    variables = model.stages[0].trainable_variables
    pre = tf.random.stateless_uniform([2, 32, 32, 3], [0, 0], -1.0, 1.0)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(model({"pre": pre, "target_grams": grams},
                                        training=True)["losses"][0])
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    losses = [float(step()) for _ in range(40)]
    assert min(losses[-5:]) < 0.5 * losses[0], losses


def test_reflect_padding_option(random_encoder):
    zeros = po.build_pseudo_optimizer(("relu1_1", "pool1"), width=0.05, name="z")
    reflect = po.build_pseudo_optimizer(("relu1_1", "pool1"), width=0.05, padding="reflect",
                                        name="r")
    assert zeros.count_params() == reflect.count_params()
    grads = {"relu1_1": np.ones((1, 16, 16, 64), np.float32),
             "pool1": np.ones((1, 8, 8, 64), np.float32)}
    reflect.set_weights(zeros.get_weights())
    a, b = zeros(grads).numpy(), reflect(grads).numpy()
    assert a.shape == b.shape == (1, 16, 16, 3)
    # A constant input: reflection keeps the output constant, zeros make the border differ.
    assert np.ptp(b) < 1e-4 * max(np.abs(b).max(), 1e-6) + 1e-5
    assert np.ptp(a) > 1e-3
    with pytest.raises(ValueError, match="padding"):
        po.build_pseudo_optimizer(("relu1_1",), padding="edge")


def test_circular_padding_makes_the_stage_translation_equivariant():
    net = po.build_pseudo_optimizer(("relu1_1", "pool1", "pool2"), width=0.05,
                                    padding="circular", name="c")
    rng = np.random.default_rng(3)
    grads = {"relu1_1": rng.normal(size=(1, 32, 32, 64)).astype(np.float32),
             "pool1": rng.normal(size=(1, 16, 16, 64)).astype(np.float32),
             "pool2": rng.normal(size=(1, 8, 8, 128)).astype(np.float32)}
    shifted = {k: np.roll(v, (2 * v.shape[1] // 8, 0), axis=(1, 2)) for k, v in grads.items()}
    a, b = net(grads).numpy(), net(shifted).numpy()
    np.testing.assert_allclose(np.roll(a, 8, axis=1), b, rtol=1e-3, atol=1e-4)


def test_padded_model_keeps_the_weights_and_tiles(random_encoder):
    """padded("circular") is the same trained model run on a torus: the same weights, and a
    start noise rolled by a multiple of 16 gives the texture rolled alike (no seam at the
    wrap); the zero-padded original does not commute so."""
    model = po.ProgressiveOptimizer(random_encoder, stages=2, width=0.05)
    circular = model.padded("circular")
    assert circular is model.padded("circular")
    for name, network in model.networks.items():
        for a, b in zip(network.get_weights(), circular.networks[name].get_weights()):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(model.encoder.get_weights(), circular.encoder.get_weights()):
        np.testing.assert_array_equal(a, b)
    rng = np.random.default_rng(6)
    pre = rng.uniform(-1, 1, (1, 32, 48, 3)).astype(np.float32)
    target = rng.random((1, 32, 32, 3)).astype(np.float32)
    layers = model.all_layers
    rolled = np.roll(pre, (16, -16), axis=(1, 2))
    gaps = {}
    for name, m in (("circular", circular), ("zeros", model)):
        grams = texture.gram_matrices(m.features(target, layers), layers)
        a = m({"pre": pre, "target_grams": grams})["images"][-1].numpy()
        b = m({"pre": rolled, "target_grams": grams})["images"][-1].numpy()
        gaps[name] = np.abs(np.roll(a, (16, -16), axis=(1, 2)) - b).max()
    assert gaps["circular"] < 1e-4 and gaps["zeros"] > 1e-3, gaps


def test_start_noise_any_shape():
    square = po.start_noise(3, 32, 2).numpy()
    assert square.shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(po.start_noise(3, (32, 32), 2).numpy(), square)
    assert po.start_noise(3, (16, 48)).shape == (1, 16, 48, 3)
