"""Image quilting and its polish as a graph (tf_propo.graph_quilting, export.polish): their pieces
against float64 NumPy, the NumPy quilting, TensorFlow's autodiff and methods.refine, the
texture's properties, and the export as SavedModel and LiteRT."""

import os

import cv2
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import SAMPLES
from tests.test_export import command, last_json
from tf_propo import graph_quilting as quilting
from tf_propo import image_io
from tf_propo import quilting as numpy_quilting
from tf_propo.export import polish

TARGET = os.path.join(SAMPLES, "material_metall006.png")


def test_correlation_by_dft_matches_a_direct_sum():
    rng = np.random.default_rng(0)
    image = rng.uniform(-1, 1, (23, 30, 3))
    template = rng.uniform(-1, 1, (7, 5, 3))
    expected = np.array([[np.sum(image[y:y + 7, x:x + 5] * template) for x in range(26)]
                         for y in range(17)])
    got = quilting._Correlator(tf.constant(image, tf.float32))(
        tf.constant(template, tf.float32)).numpy()
    assert got.shape == (17, 26)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_colour_match_gives_the_exemplars_mean_and_covariance():
    rng = np.random.default_rng(1)
    mixing = np.array([[0.2, 0.05, 0.0], [0.03, 0.1, 0.02], [0.0, 0.04, 0.15]])
    exemplar = np.clip(0.5 + rng.normal(size=(40, 40, 3)) @ mixing, 0, 1)
    image = np.clip(0.3 + 0.1 * rng.normal(size=(32, 32, 3)), 0, 1)
    cov = np.cov(image.reshape(-1, 3).T, bias=True) + quilting.COLOUR_EPS * np.eye(3)
    lower = quilting._cholesky3(tf.constant(cov, tf.float32)).numpy()
    np.testing.assert_allclose(lower, np.linalg.cholesky(cov), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(quilting._lower_inverse3(tf.constant(lower)).numpy(),
                               np.linalg.inv(lower), rtol=1e-4)
    matched = quilting.match_colours(tf.constant(image, tf.float32),
                                     tf.constant(exemplar, tf.float32), eps=0.0).numpy()
    pixels = matched.reshape(-1, 3).astype(np.float64)
    target = exemplar.reshape(-1, 3)
    np.testing.assert_allclose(pixels.mean(0), target.mean(0), atol=2e-3)
    np.testing.assert_allclose(np.cov(pixels.T, bias=True), np.cov(target.T, bias=True),
                               atol=1e-3)


def test_seams_follow_the_numpy_minimum_cut():
    errors = np.random.default_rng(2).uniform(0, 1, (3, 20, 6)).astype(np.float32)
    masks = quilting._seam_masks(tf.constant(errors)).numpy()
    for error, mask in zip(errors, masks):
        np.testing.assert_array_equal(mask, numpy_quilting._cut_mask(error))


def test_stitching_copies_exemplar_blocks_along_seams():
    """feather 0: every pixel is an exemplar pixel, and each block's part that no later
    block overlaps is one exemplar window; the same noise gives the same texture."""
    exemplar = image_io.read_image(TARGET)[:96, :80]
    noise = tf.random.stateless_uniform([70, 100, 3], (3, 4), -1, 1)
    block, overlap = 32, 8
    out = quilting.stitch(exemplar, noise, block, overlap, feather=0).numpy()
    assert out.shape == (70, 100, 3)
    colours = {tuple(p) for p in exemplar.reshape(-1, 3)}
    assert all(tuple(p) in colours for p in out.reshape(-1, 3))
    inner = out[overlap:block - overlap, overlap:block - overlap]  # block (0, 0) alone there
    windows = np.lib.stride_tricks.sliding_window_view(exemplar, inner.shape, (0, 1, 2))
    assert np.any(np.all(windows == inner, axis=(-3, -2, -1)))
    np.testing.assert_array_equal(out, quilting.stitch(exemplar, noise, block, overlap,
                                                       feather=0).numpy())
    other = quilting.stitch(exemplar, -noise, block, overlap, feather=0).numpy()
    assert np.abs(other - out).mean() > 0.01


def test_overlaps_are_matched_so_a_periodic_pattern_continues_without_seams():
    y, x = np.mgrid[:80, :80]
    stripes = ((x + y) % 8 < 3).astype(np.float32)
    exemplar = np.stack([stripes, 0.5 * stripes, 1 - stripes], axis=-1)
    noise = tf.random.stateless_uniform([96, 96, 3], (1, 2), -1, 1)
    out = quilting.stitch(exemplar, noise, 24, 6).numpy()
    assert np.array_equal(out[:-1, 1:], out[1:, :-1])  # constant along anti-diagonals
    assert np.array_equal(out[:, 8:], out[:, :-8])  # period 8


@pytest.mark.parametrize("implementation", ["numpy", "graph"])
def test_usage_penalty_spreads_the_blocks_over_the_exemplar(implementation):
    """An exemplar a quarter flat, the rest noise: the flat blocks agree best with whatever
    flat block is placed, so the plain algorithm copies the flat quarter over most of the
    texture; with the usage penalty (the default) blocks come from the whole exemplar
    (even use: 75% of the texture noise). Measured: 22% of the texture noisy without it,
    62% with it (NumPy; the graph 23% and 57%)."""
    rng = np.random.default_rng(0)
    exemplar = np.empty((64, 128, 3), np.float32)
    exemplar[:, :32] = 0.5 + 0.01 * rng.normal(size=(64, 32, 3))
    exemplar[:, 32:] = np.clip(0.5 + 0.25 * rng.normal(size=(64, 96, 3)), 0, 1)
    block, overlap = quilting.block_and_overlap(64)

    def noisy_share(penalty):
        shares = []
        for seed in range(3):
            if implementation == "numpy":
                out = numpy_quilting.quilt(exemplar, (128, 128), np.random.default_rng(seed),
                                           block=block, usage_penalty=penalty)
            else:
                noise = tf.random.stateless_uniform([128, 128, 3], (seed, 0), -1, 1)
                out = quilting.stitch(exemplar, noise, block, overlap,
                                      usage_penalty=penalty).numpy()
            local = (out - cv2.blur(out, (5, 5))) ** 2  # noise, not the flat half's grain
            shares.append(np.mean(cv2.blur(local, (5, 5)).mean(-1) > 0.01))
        return np.mean(shares)

    plain, spread = noisy_share(0.0), noisy_share(numpy_quilting.USAGE_PENALTY)
    assert spread > 0.45 and spread > 2 * plain, (plain, spread)


def test_quilt_keeps_the_exemplars_structure(normalized_weights):
    """The same measure the NumPy quilting's test uses: the graph's texture is as close to
    the exemplar in VGG statistics as the NumPy one's, far closer than the noise."""
    from tf_propo import metrics

    exemplar = image_io.read_image(TARGET)
    block, overlap = quilting.block_and_overlap(128)
    exemplar = image_io.resize_short_edge(exemplar, 128)
    noise = tf.random.stateless_uniform([2, 128, 128, 3], (5, 6), -1, 1)
    graph = np.stack([quilting.quilt(exemplar, n, block, overlap).numpy() for n in noise])
    reference = np.stack([numpy_quilting.quilt(exemplar, (128, 128),
                                               np.random.default_rng(i), block=block)
                          for i in range(2)])
    losses = metrics.TextureMetrics(exemplar).texture_loss(
        np.concatenate([graph, reference, (noise.numpy() + 1) / 2]))
    assert max(losses[:2]) < 2 * max(losses[2:4]), losses
    assert max(losses[:2]) < 0.05 * min(losses[4:]), losses


def test_graph_lbfgs_takes_the_steps_of_the_numpy_one():
    """On a bounded quadratic, whose minimum lies partly outside [0, 1] (the active set
    matters) and whose curvature varies (the pairs matter), both give the same iterate."""
    from tf_propo import gatys

    rng = np.random.default_rng(3)
    weight = rng.uniform(0.5, 20.0, (1, 6, 5, 3))
    centre = rng.uniform(-0.3, 1.3, (1, 6, 5, 3))
    start = rng.uniform(0, 1, (1, 6, 5, 3)).astype(np.float32)

    def loss_and_gradient(x):
        x = tf.cast(x, tf.float64)
        return (tf.cast(tf.reduce_sum(weight * (x - centre) ** 4 + weight * (x - centre) ** 2),
                        tf.float32),
                tf.cast(4 * weight * (x - centre) ** 3 + 2 * weight * (x - centre), tf.float32))

    for steps in (1, 4, 9):
        expected = gatys.projected_lbfgs(loss_and_gradient, start, steps)
        got = polish.projected_lbfgs(loss_and_gradient, start, steps).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-5)
    assert float(loss_and_gradient(got)[0]) < 0.5 * float(loss_and_gradient(start)[0])


@pytest.mark.parametrize("layers", [("relu1_1", "pool1"), ("relu1_1", "pool1", "pool2")])
def test_polish_encoder_and_its_gradients_are_vgg19s(normalized_weights, layers):
    """The hand-written gradients (convolutions, ReLU, pooling, reflection padding) give
    autodiff's through the Keras encoder, at an odd size too, for the quilt's polish layers
    and a block deeper."""
    from tf_propo import gatys, texture, weights

    keras_encoder = weights.pretrained_encoder(layers, padding="reflect", dtype="float32")
    encoder = polish.ShallowEncoder(keras_encoder, layers)
    images = tf.random.stateless_uniform([2, 37, 50, 3], (7, 8))
    expected, got = keras_encoder(images), encoder(images)
    for layer in layers:
        np.testing.assert_allclose(got[layer], expected[layer], rtol=1e-5, atol=1e-4)
    target = tf.random.stateless_uniform([1, 40, 40, 3], (9, 9))
    grams = texture.gram_matrices(keras_encoder(target), layers)
    loss, gradient = polish.loss_and_gradient_fn(encoder, grams)(images)
    keras_loss, keras_gradient = gatys.loss_and_gradient_fn(keras_encoder, grams, layers)(images)
    np.testing.assert_allclose(loss, keras_loss, rtol=1e-5)
    assert float(tf.norm(gradient - keras_gradient) / tf.norm(keras_gradient)) < 1e-5


def test_graph_polish_is_the_refinement(normalized_weights):
    """The exported polish computes what synthesize's does (methods.refine, float32)."""
    from tf_propo import methods, texture, weights

    layers = methods.POLISH_LAYERS["quilt"]
    exemplar = image_io.resize_short_edge(image_io.read_image(TARGET), 64)
    noise = tf.random.stateless_uniform([64, 64, 3], (1, 1), -1, 1)
    quilt = quilting.quilt(exemplar, noise, *quilting.block_and_overlap(64)).numpy()[None]
    expected, _, _ = methods.refine(methods.TargetStatistics(exemplar), quilt, 4, layers)
    encoder = polish.ShallowEncoder(weights.pretrained_encoder(
        layers, padding="reflect", dtype="float32"), layers)
    grams = texture.gram_matrices(encoder(exemplar[None]), layers)
    got = polish.polish(quilt, encoder, grams, 4).numpy()
    assert np.abs(got - quilt).mean() > 100 * np.abs(got - expected).mean()
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_the_graph_quilt_method_computes_the_exported_pipeline(normalized_weights):
    """methods.quilt(graph=True) in float32 (evaluate's quilt:graph) gives the exported
    pipeline's texture for the same seed: what the benchmark measures is what exports."""
    from tf_propo import methods, po
    from tf_propo.export import pipeline as pipelines

    exemplar = image_io.resize_short_edge(image_io.read_image(TARGET), 96)
    images, _, extra = methods.quilt(exemplar, (64, 80), 2, 5, polish_steps=2, graph=True)
    assert images.shape == (2, 64, 80, 3) and extra["graph"]
    pipeline = pipelines.QuiltPipeline(96, polish_steps=2)
    noise = po.start_noise(5, (64, 80), 2)
    for image, start in zip(images, noise):
        exported = pipeline({"target": exemplar[None], "noise": start[None]}, resize=False)
        np.testing.assert_allclose(exported[0], image, atol=1e-5)
    with pytest.raises(Exception, match="no tileable mode"):
        methods.quilt(exemplar, 64, 1, 5, tileable=True, graph=True)


def test_quilting_exports_by_default(tmp_path, normalized_weights):
    """No --model_dir: the command exports quilting; the .tflite matches the graph and has
    the runner's tensors, and the SavedModel serves any size and cached statistics."""
    pytest.importorskip("ai_edge_litert")
    lite = tmp_path / "q.tflite"
    record = last_json(command("tf_propo.export", "--format=tflite", "--size=64",
                               "--target_size=96", "--polish_steps=2", f"--out={lite}"))
    assert record["mode"] == "quilt" and record["bytes"] == os.path.getsize(lite)
    assert record["polish_steps"] == 2 and record["bytes"] < 10e6
    assert record["parity"]["image_relative_error"] < 1e-4
    from tf_propo.export import run as litert

    interpreter = litert.interpreter(model_path=str(lite))
    assert litert.input_shapes(interpreter) == {"target": [1, 96, 96, 3],
                                                "noise": [1, 64, 64, 3]}

    import tf_propo

    served = tmp_path / "served"
    result = tf_propo.TextureSynthesizer("quilt", target_size=96, polish_steps=1).export(
        str(served))
    assert result["mode"] == "quilt" and result["parity"]["texture_loss_ratio"] < 1.25
    assert result["polish_steps"] == 1
    loaded = tf.saved_model.load(str(served))
    image = tf.constant(np.round(image_io.read_image(TARGET) * 255).astype(np.uint8))
    texture = loaded.signatures["serving_default"](
        image=image, seed=tf.constant(7, tf.int64), size=tf.constant([48, 80]))["texture"]
    assert texture.shape == (48, 80, 3) and texture.dtype == tf.uint8
    statistics = loaded.signatures["statistics"](image=image)
    assert statistics["exemplar"].shape == (96, 96, 3)
    assert {key for key in statistics if key.startswith("gram_")} == {"gram_relu1_1",
                                                                       "gram_pool1"}
    assert statistics["gram_pool1"].shape == (64, 64)
    cached = loaded.signatures["from_statistics"](
        **statistics, seed=tf.constant(7, tf.int64), size=tf.constant([48, 80]))["texture"]
    np.testing.assert_array_equal(cached.numpy(), texture.numpy())


def test_bad_quilting_export_input(tmp_path):
    cases = [
        (["--format=compact"], "needs a model_dir"),
        (["--format=tflite", "--quantize=fp16"], "no weights to quantize"),
        ([f"--model_dir={tmp_path}", "--method=quilt"], "--method=quilt takes no"),
        ([f"--model_dir={tmp_path}", "--polish_steps=2"], "the polish belongs to quilting"),
        (["--polish_steps=-1"], "polish_steps"),
    ]
    for args, message in cases:
        result = command("tf_propo.export", *args, f"--out={tmp_path / 'x.tflite'}")
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, result.stderr)
        assert os.listdir(tmp_path) == []
