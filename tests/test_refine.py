"""methods.refine, and quilting's polish with it: projected L-BFGS steps on the real VGG19."""

import numpy as np

from tf_propo import image_io
from tf_propo import methods
from tf_propo import metrics
from tf_propo import quilting


def _target_and_quilt(sample_paths, size=64):
    target = image_io.resize_short_edge(image_io.read_image(sample_paths[0]), 96)
    start = quilting.quilt(target, (size, size), np.random.default_rng(0))[None]
    return target, start


def test_polish_lowers_the_shallow_loss_and_keeps_the_quilt(normalized_weights, sample_paths):
    target, start = _target_and_quilt(sample_paths)
    shallow = metrics.TextureMetrics(target, layers=methods.POLISH_LAYERS["quilt"])
    images, seconds, _ = methods.refine(target, start, 6, methods.POLISH_LAYERS["quilt"])
    assert seconds > 0
    assert shallow.texture_loss(images)[0] < 0.5 * shallow.texture_loss(start)[0]
    assert images.min() >= 0.0 and images.max() <= 1.0
    # A polish, not a new texture: the quilt's structure is still there pixel for pixel.
    assert np.mean(np.abs(images - start)) < 0.05
    unchanged, seconds, _ = methods.refine(target, start, 0)
    np.testing.assert_array_equal(unchanged, start)
    assert seconds == 0.0


def test_refinement_after_quilting_stays_within_trust(normalized_weights, sample_paths):
    # The API bounds the refinement after quilting (methods.QUILT_TRUST): the full loss may
    # retune the quilt's grain but not repaint its blocks.
    from tf_propo import api

    target = image_io.resize_short_edge(image_io.read_image(sample_paths[0]), 96)
    result = api.TextureSynthesizer("quilt", None, 0, "float32", refine_steps=12,
                                    polish_steps=0).synthesize(target, 48, 1, 1)
    # Within the box a 16×16 patch's mean colour moves less than the blob measure's threshold.
    assert methods.QUILT_TRUST * np.sqrt(3) < metrics.NOVEL_DISTANCE
    change = np.abs(result.images - result.extra["refine"]["images_before"])
    assert 0.5 * methods.QUILT_TRUST < change.max() <= methods.QUILT_TRUST + 1e-6
    unbounded = methods.refine(target, result.extra["refine"]["images_before"], 12)[0]
    assert np.abs(unbounded - result.extra["refine"]["images_before"]).max() > \
        1.2 * methods.QUILT_TRUST  # the bound binds


def _border_contrast(images, width=2):
    """Mean |colour of the outer `width`-pixel ring - colour of the interior| of a batch."""
    x = np.asarray(images, np.float64)
    ring = np.concatenate([part.reshape(len(x), -1, 3) for part in (
        x[:, :width], x[:, -width:], x[:, :, :width], x[:, :, -width:])], axis=1)
    interior = x[:, 8:-8, 8:-8].reshape(len(x), -1, 3)
    return float(np.abs(ring.mean(axis=1) - interior.mean(axis=1)).mean())


def test_refinement_draws_no_frame(normalized_weights, sample_paths):
    # Through a zero-padded VGG19 these 12 steps darken the jungle quilt's outer pixels into
    # a frame (border contrast 0.0014 -> 0.016; seed 1: 0.003 -> 0.015); reflection padding
    # moves it by under 0.001 (0.0014 -> 0.0022). An absolute bound: the quilt's own border
    # contrast can be near 0.
    jungle = [p for p in sample_paths if "jungle" in p][0]
    target = image_io.resize_short_edge(image_io.read_image(jungle), 128)
    start = quilting.quilt(target, (96, 96), np.random.default_rng(0))[None]
    refined = methods.refine(target, start, 12)[0]
    assert _border_contrast(refined) - _border_contrast(start) < 0.004


def test_tileable_refinement_commutes_with_wrapping_shifts(normalized_weights, sample_paths):
    # Circular padding makes the refinement see a torus: shifting a tileable texture around
    # before refining gives the shifted result (16 px: a multiple of pool4's stride). With
    # zero padding the borders are special, and the same check fails.
    target, start = _target_and_quilt(sample_paths)

    def shifted_difference(tileable):
        polished = methods.refine(target, start, 4, tileable=tileable)[0]
        shifted = methods.refine(target, np.roll(start, (16, 32), axis=(1, 2)), 4,
                                 tileable=tileable)[0]
        return np.abs(shifted - np.roll(polished, (16, 32), axis=(1, 2))).max()

    assert shifted_difference(tileable=True) < 2e-3
    assert shifted_difference(tileable=False) > 1e-2


def test_tileable_gatys_commutes_with_wrapping_shifts(normalized_weights, sample_paths):
    # Gatys with tileable=True optimises on a torus as well (circular padding in the loss's
    # VGG): noise shifted around it gives the texture shifted, so the wrap has no seam.
    target = methods.TargetStatistics(
        image_io.resize_short_edge(image_io.read_image(sample_paths[0]), 96))
    noise = metrics.reference_noise(2, (48, 64))

    def shifted_difference(tileable):
        images, _, extra = methods.gatys(target, noise, 4, progress=False,
                                         tileable=tileable)
        shifted = methods.gatys(target, np.roll(noise, (16, 32), axis=(1, 2)), 4,
                                progress=False, tileable=tileable)[0]
        assert extra["tileable"] is tileable
        return np.abs(np.roll(images, (16, 32), axis=(1, 2)) - shifted).max()

    assert shifted_difference(tileable=True) < 2e-3
    assert shifted_difference(tileable=False) > 1e-2


def test_warm_up_runs_once_per_shape(normalized_weights, sample_paths):
    """The first call at a shape traces and warms up outside the reported seconds; a second
    call at that shape (an API caller's loop) does not pay for it again, a new shape does."""
    target = image_io.resize_short_edge(image_io.read_image(sample_paths[0]), 64)
    start = np.random.default_rng(5).uniform(size=(1, 40, 24, 3)).astype(np.float32)
    layers = methods.POLISH_LAYERS["quilt"]
    first = methods.refine(target, start, 1, layers)[2]["warmup_seconds"]
    again = methods.refine(target, start, 1, layers)[2]["warmup_seconds"]
    other = methods.refine(target, start[:, :32], 1, layers)[2]
    assert first > 0 and again == 0 and other["warmup_seconds"] > 0


def test_tileable_polish_keeps_to_the_targets_statistics_away_from_borders(
        normalized_weights, sample_paths):
    # A torus has no border: polished against the target's zero-padded statistics, whose
    # frame it cannot draw, a tileable quilt of the jungle sample grew 15x further from the
    # target's interior statistics (tears across it); against reflection-padded ones it
    # stays as close as the ordinary polish of the same quilt.
    from tf_propo import quilting, texture, vgg

    layers = methods.POLISH_LAYERS["quilt"]
    encoder = methods._refine_encoder(layers, "float32", "zeros", "normalized")

    def interior_grams(images):  # positions whose receptive field stays off the padding
        features = encoder(np.asarray(images, np.float32))
        return {layer: texture.gram_matrix(features[layer][:, k:-k, k:-k])
                for layer in layers for k in [16 // vgg.downsampling(layer)]}

    jungle = [p for p in sample_paths if "jungle" in p][0]
    target = image_io.resize_short_edge(image_io.read_image(jungle), 128)
    start = quilting.quilt(target, (96, 96), np.random.default_rng(0), tileable=True)[None]
    goal = interior_grams(target[None])
    distance = {}
    for tileable in (True, False):
        polished = methods.refine(target, start, 6, layers, tileable=tileable)[0]
        distance[tileable] = float(texture.gram_loss(interior_grams(polished), goal,
                                                     layers)[0][0])
    assert distance[True] < 1.25 * distance[False], distance


def test_long_polish_and_refinement_show_their_steps(normalized_weights, sample_paths,
                                                     monkeypatch, capsys):
    # Past methods.PROGRESS_PIXELS (lowered here to the test's 32²) the steps of the polish
    # and of the refinement after it each report on stderr when progress is asked for.
    from tf_propo import api

    target = image_io.resize_short_edge(image_io.read_image(sample_paths[0]), 64)
    synthesizer = api.TextureSynthesizer("quilt", None, 0, "float32", refine_steps=2,
                                         polish_steps=2)
    synthesizer.synthesize(target, 32, 1, 1, progress=True)
    assert "polish 32x32" not in capsys.readouterr().err  # below the threshold: no bar
    monkeypatch.setattr(methods, "PROGRESS_PIXELS", 32 * 32)
    synthesizer.synthesize(target, 32, 1, 1, progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert any(line.startswith("polish 32x32 [") and " 2/2 " in line for line in lines)
    assert any(line.startswith("refine 32x32 [") and " 2/2 " in line for line in lines)
    synthesizer.synthesize(target, 32, 1, 1)  # not asked for
    assert "32x32 [" not in capsys.readouterr().err
