"""Image quilting: the seam search against brute force, and what the stitching guarantees."""

import itertools

import numpy as np
import pytest

from tf_propo import quilting


def test_min_cut_is_the_cheapest_connected_path():
    rng = np.random.default_rng(0)
    for _ in range(20):
        errors = rng.uniform(0, 1, (5, 4))
        best = min(
            (sum(errors[y, x] for y, x in enumerate(path)), path)
            for path in itertools.product(range(4), repeat=5)
            if all(abs(a - b) <= 1 for a, b in zip(path, path[1:])))
        path = quilting._min_cut(errors)
        assert all(abs(a - b) <= 1 for a, b in zip(path, path[1:]))
        assert sum(errors[y, x] for y, x in enumerate(path)) == pytest.approx(best[0])


def test_every_pixel_comes_from_the_exemplar():
    rng = np.random.default_rng(1)
    exemplar = rng.permutation(64 * 64 * 3).reshape(64, 64, 3).astype(np.float32) / (64 ** 3)
    out = quilting.quilt(exemplar, (100, 70), np.random.default_rng(2), block=16, feather=0)
    assert out.shape == (100, 70, 3)
    known = {tuple(p) for p in exemplar.reshape(-1, 3)}
    assert all(tuple(p) in known for p in out.reshape(-1, 3))


def test_overlaps_are_matched_so_a_periodic_pattern_continues_without_seams():
    # Diagonal stripes of period 8: a block placed at random would break the phase at
    # almost every join; matched overlaps continue it everywhere.
    y, x = np.mgrid[:80, :80]
    stripes = ((x + y) % 8 < 3).astype(np.float32)
    exemplar = np.stack([stripes, 0.5 * stripes, 1 - stripes], axis=-1)
    out = quilting.quilt(exemplar, (96, 96), np.random.default_rng(3), block=24)
    assert np.array_equal(out[:-1, 1:], out[1:, :-1])  # constant along anti-diagonals
    assert np.array_equal(out[:, 8:], out[:, :-8])  # period 8


def test_same_generator_same_texture_and_bad_overlap_refused():
    exemplar = np.random.default_rng(4).uniform(0, 1, (48, 48, 3)).astype(np.float32)
    a = quilting.quilt(exemplar, (64, 64), np.random.default_rng(5), block=16)
    b = quilting.quilt(exemplar, (64, 64), np.random.default_rng(5), block=16)
    c = quilting.quilt(exemplar, (64, 64), np.random.default_rng(6), block=16)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    with pytest.raises(ValueError, match="overlap"):
        quilting.quilt(exemplar, (64, 64), np.random.default_rng(5), block=16, overlap=16)
    assert quilting.default_block_size((128, 256, 3)) == 42
    assert quilting.default_block_size((512, 512, 3)) == 96


def test_tileable_textures_wrap_without_a_seam():
    from tests.conftest import SAMPLES
    from tf_propo import image_io, metrics

    ordinary, tiled = [], []
    for name in ("nature_jungle001.png", "material_metall006.png", "nature_potatoes.png"):
        exemplar = image_io.resize_short_edge(image_io.read_image(f"{SAMPLES}/{name}"), 128)
        for tileable, ratios in ((False, ordinary), (True, tiled)):
            out = quilting.quilt(exemplar, (128, 160), np.random.default_rng(0),
                                 tileable=tileable)
            assert out.shape == (128, 160, 3)
            ratios.append(metrics.seam_ratio(out))
    # Across a tileable texture's wrap, neighbours differ as much as inside it (measured
    # 1.04-1.10); an ordinary texture's opposite edges are unrelated (1.15-3.2, mean 1.9).
    assert max(tiled) < 1.5, tiled
    assert np.mean(ordinary) > 1.5, ordinary
