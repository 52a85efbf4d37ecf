"""The coarse-to-fine optimal-transport pipeline: strategies, the encode/match/decode loop, and
`python -m tf_propo.synthesize --method=ot`."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import DECODERS_CONFIG, SAMPLES, make_model_dir, vgg_shaped_random_weights
from tf_propo import vgg, weights
from tf_propo.ot import DEFAULT_PASSES, DEFAULT_STRATEGY, STRATEGIES
from tf_propo.ot import decoders, linalg, sliced, synthesis

LAYERS = ["relu1_1", "relu2_1", "relu3_1"]


def correlated(n, c, seed):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(c, c))
    return (rng.gamma(2.0, size=(n, c)) @ mixing + rng.normal(size=c)).astype(np.float32)


@pytest.mark.parametrize("strategy", ["cholesky", "eigh", "pca"])
def test_covariance_strategies_are_the_linalg_methods(strategy):
    source, target = correlated(500, 6, 0), correlated(400, 6, 1)
    got = synthesis.match_features(source, target, strategy, tf.constant(0, tf.int64))
    np.testing.assert_allclose(got.numpy(), linalg.match_covariance(
        tf.constant(source), tf.constant(target), strategy,
        eps=synthesis.COVARIANCE_EPS[strategy]).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("strategy", ["sliced", "cdf"])
def test_sliced_strategies_move_the_whole_distribution(strategy):
    """More passes, closer in sliced Wasserstein distance on directions none of the passes
    used; and far closer than the start."""
    source, target = correlated(2000, 8, 2), correlated(1500, 8, 3)
    rng = np.random.default_rng(9)
    directions = rng.normal(size=(8, 64))
    directions = tf.constant(directions / np.linalg.norm(directions, axis=0), tf.float32)
    distance = lambda x: float(sliced.sliced_wasserstein(x, target, directions))  # noqa
    seed = tf.constant(4, tf.int64)
    one = synthesis.match_features(source, target, strategy, seed, passes=1)
    eight = synthesis.match_features(source, target, strategy, seed, passes=8)
    assert distance(eight) < distance(one) < 0.5 * distance(tf.constant(source))
    assert distance(eight) < 0.05 * distance(tf.constant(source))


def test_unknown_strategy():
    with pytest.raises(ValueError, match="strategy"):
        synthesis.match_features(np.zeros((4, 2), np.float32), np.zeros((4, 2), np.float32),
                                 "wasserstein", tf.constant(0, tf.int64))


@pytest.fixture(scope="module")
def random_pipeline():
    # Seeded: the decoders are thin (8 channels), and an unlucky draw can leave every ReLU of
    # one layer dead, so the pipeline paints a flat image whatever the noise.
    keras.utils.set_random_seed(0)
    encoder = weights.apply_weights(vgg.build_encoder(LAYERS, pooling="max"),
                                    vgg_shaped_random_weights())
    family = decoders.DecoderFamily(encoder, LAYERS, width=0.0625)
    return synthesis.OptimalTransportSynthesis(family, passes=2)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_pipeline_runs_coarse_to_fine(random_pipeline, strategy):
    rng = np.random.default_rng(0)
    target = rng.uniform(size=(40, 36, 3)).astype(np.float32)
    targets = random_pipeline.target_features(target)
    assert targets["relu3_1"].shape == (10 * 9, 256) and targets["rgb"].shape == (40 * 36, 3)
    assert random_pipeline.layers == ("relu3_1", "relu2_1", "relu1_1")
    noise = rng.uniform(size=(1, 32, 32, 3)).astype(np.float32)
    timings = {}
    a = random_pipeline.synthesize(targets, noise, strategy, 5, timings)
    b = random_pipeline.synthesize(targets, noise, strategy, 5)
    assert a.shape == (1, 32, 32, 3)
    assert float(tf.reduce_min(a)) >= 0 and float(tf.reduce_max(a)) <= 1
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)  # same seed, same texture
    assert set(timings) == {"encode", "match", "decode"}
    if strategy in ("sliced", "cdf"):
        c = random_pipeline.synthesize(targets, noise, strategy, 6)
        assert np.abs(a.numpy() - c.numpy()).max() > 1e-3  # the rotations follow the seed


@pytest.mark.parametrize("strategy", ["eigh", "cdf"])
def test_circular_pipeline_makes_tileable_textures(random_pipeline, strategy):
    """With circular padding the whole pipeline lives on a torus: noise shifted around it
    gives the same texture shifted (every step is per position or translation-equivariant),
    so the texture has no seam at its wrap. Reflection padding sees the borders. (Exact
    sorting is left out: ReLU features tie, and ties are broken by position.)"""
    rng = np.random.default_rng(1)
    target = rng.uniform(size=(40, 36, 3)).astype(np.float32)
    noise = rng.uniform(size=(1, 32, 48, 3)).astype(np.float32)
    shift = dict(shift=(16, -16), axis=(1, 2))
    gaps = {}
    for padding in ("circular", "reflect"):
        pipeline = random_pipeline.with_padding(padding)
        assert pipeline.padding == padding and random_pipeline.with_padding(padding) is pipeline
        targets = pipeline.target_features(target)
        a = pipeline.synthesize(targets, noise, strategy, 5).numpy()
        assert a.std() > 0.05, "a flat texture is shift-invariant whatever the padding"
        b = pipeline.synthesize(targets, np.roll(noise, **shift), strategy, 5).numpy()
        gaps[padding] = float(np.abs(np.roll(a, **shift) - b).max())
    assert gaps["circular"] < 1e-3 and gaps["reflect"] > 1e-2, gaps


def synthesize(*args):
    result = subprocess.run([sys.executable, "-m", "tf_propo.synthesize", "--method=ot",
                             f"--target={os.path.join(SAMPLES, 'nature_potatoes.png')}", *args],
                            capture_output=True, text=True, timeout=600)
    return result


def test_ot_command(tmp_path, normalized_weights):
    decoders_dir = make_model_dir(tmp_path / "decoders", DECODERS_CONFIG)
    outputs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.png"
        result = synthesize(f"--decoders={decoders_dir}", "--strategy=cdf", "--size=40",
                            "--seed=3", "--passes=2", f"--out={out}")
        assert result.returncode == 0, result.stderr
        # No native log line on success (cdf's integer transposes once made oneDNN print one).
        assert "oneDNN" not in result.stderr and "E0000" not in result.stderr, result.stderr
        record = json.loads(result.stdout.strip().splitlines()[-1])
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]  # reproducible with --seed
    assert record["method"] == "ot" and record["strategy"] == "cdf" and record["size"] == 40
    for key in ("seconds", "texture_loss", "noise_texture_loss", "loss_ratio"):
        assert key in record
    from tf_propo import image_io

    assert image_io.read_image(record["out"]).shape == (40, 40, 3)


def test_bad_ot_input(tmp_path, normalized_weights):
    propo = tmp_path / "propo"
    propo.mkdir()
    from tf_propo import model_dir

    model_dir.save_config(str(propo), {"mode": "propo", "stages": 1, "layers": ["relu1_1"],
                                       "width": 0.1, "grad_mode": "local",
                                       "vgg_weights": "normalized"})
    cases = [
        (["--size=0"], "size"),
        (["--strategy=wasserstein"], "strategy"),
        ([f"--decoders={tmp_path / 'missing'}"], "no such directory"),
        ([f"--decoders={propo}"], "not decoders"),
    ]
    for args, message in cases:
        result = synthesize(*args, f"--out={tmp_path / 'o.png'}")
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, result.stderr)
        assert not (tmp_path / "o.png").exists()


def test_bundled_decoders_make_textures(tmp_path, normalized_weights):
    """The default `--method=ot` on the real, bundled decoders, and every strategy on them:
    far below 0.2 loss/noise on a real photographic texture (128 px keeps it
    fast; the strategies other than the default run in-process on one loaded model)."""
    from tf_propo import image_io, methods, metrics
    from tf_propo.ot.synthesis import BUNDLED_DECODERS_SHA256, bundled_decoders

    config = json.loads(open(os.path.join(bundled_decoders(), "config.json")).read())
    assert config["weights_sha256"] == BUNDLED_DECODERS_SHA256
    result = synthesize("--size=128", "--seed=1", "--precision=float32",
                        f"--out={tmp_path / 'default.png'}")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["strategy"] == DEFAULT_STRATEGY and record["loss_ratio"] < 0.05

    target = image_io.resize_short_edge(  # as the command's default --target_size
        image_io.read_image(os.path.join(SAMPLES, "nature_potatoes.png")), 256)
    evaluation = metrics.TextureMetrics(target)
    noise = metrics.reference_noise(1, 128)
    noise_loss = evaluation.texture_loss(noise)[0]
    ot = methods.load_optimal_transport(None, DEFAULT_PASSES)
    for strategy in STRATEGIES:
        images, _, _ = methods.optimal_transport(ot, target, noise, 1, strategy)
        ratio = evaluation.texture_loss(images)[0] / noise_loss
        assert ratio < 0.05, (strategy, ratio)
        if strategy == record["strategy"]:  # the command is this, in a process of its own
            assert abs(ratio / record["loss_ratio"] - 1) < 1e-3, (ratio, record)
            raw, _, extra = methods.optimal_transport(ot, target, noise, 1, strategy,
                                                      polish_steps=0)
            assert extra["polish_steps"] == 0
            assert record["polish_steps"] == methods.POLISH_STEPS["ot"]
            # The polish is what brings the decoders' soft result close to the target.
            assert evaluation.texture_loss(raw)[0] / noise_loss > 2 * ratio


def test_modified_bundled_decoders_are_refused(tmp_path, monkeypatch):
    import shutil

    from tf_propo.errors import UsageError

    bundled = synthesis.bundled_decoders()
    fake = tmp_path / "ot"
    shutil.copytree(os.path.dirname(os.path.dirname(bundled)), fake / "x",
                    ignore=shutil.ignore_patterns("weights.npz"))
    config = fake / "x" / "weights" / "decoders" / "config.json"
    config.write_text(config.read_text().replace(synthesis.BUNDLED_DECODERS_SHA256, "0" * 64))
    monkeypatch.setattr(synthesis, "__file__", str(fake / "x" / "synthesis.py"))
    with pytest.raises(UsageError, match="modified"):
        synthesis.bundled_decoders()
