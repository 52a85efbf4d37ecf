"""The grid measure and its removal, against float64 NumPy."""

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import smooth_texture
from tf_propo import grid


def test_grid_score_sees_a_stride_grid_that_a_texture_lacks():
    """About 1 for textures (their cells average out), far more with a faint 4-px grid on
    top (a decoder's), whatever the grid's phase; the periodic part is the cells' mean."""
    texture = smooth_texture(0)
    noise = np.random.default_rng(2).uniform(size=(128, 128, 3))
    assert grid.grid_score(texture) < 2 and 0.5 < grid.grid_score(noise) < 2
    y, x = np.mgrid[:128, :128]
    lattice = 0.05 * ((((y + 1) % 4) == 0) | ((x % 4) == 0))  # 5 levels in 100, every 4 px
    gridded = texture + lattice[..., None]
    assert grid.grid_score(gridded) > 5
    assert grid.grid_score(np.stack([texture, gridded])) == pytest.approx(
        (grid.grid_score(texture) + grid.grid_score(gridded)) / 2)
    cells = gridded.reshape(8, 16, 8, 16, 3).mean(axis=(0, 2))
    np.testing.assert_allclose(grid.periodic_part(gridded),
                               cells - cells.mean(axis=(0, 1)), atol=1e-12)


def test_remove_periodic_removes_the_grid_and_keeps_the_rest():
    """A 16-periodic pattern added to an image goes, the image's own periodic part goes (the
    float64 reference: grid.periodic_part), and nothing else moves; the mean stays."""
    rng = np.random.default_rng(0)
    image = rng.uniform(size=(2, 32, 48, 3))
    cell = rng.normal(size=(16, 16, 3))
    pattern = np.tile(cell - cell.mean(axis=(0, 1)), (2, 3, 1))  # the image's mean stays
    removed = grid.remove_periodic(tf.constant(image + pattern, tf.float32)).numpy()
    expected = image[1] - np.tile(grid.periodic_part(image[1]), (2, 3, 1))
    np.testing.assert_allclose(removed[1], expected, atol=1e-5)
    np.testing.assert_allclose(removed.mean(axis=(1, 2)), (image + pattern).mean(axis=(1, 2)),
                               atol=1e-5)
    assert grid.grid_score(removed[0]) < 1e-9 < grid.grid_score(image[0])


def test_remove_periodic_at_any_size_and_after_an_optimiser():
    """Sides that are not multiples of 16: the whole cells' part is taken away everywhere
    (the partial cells too); smaller than a cell: unchanged."""
    rng = np.random.default_rng(3)
    cell = rng.normal(size=(16, 16, 3))
    image = rng.uniform(size=(40, 70, 3)) + np.tile(cell - cell.mean((0, 1)), (3, 5, 1))[:40, :70]
    removed = grid.remove_periodic(tf.constant(image[None], tf.float32))[0].numpy()
    expected = image - np.tile(grid.periodic_part(image), (3, 5, 1))[:40, :70]
    np.testing.assert_allclose(removed, expected, atol=1e-5)
    assert grid.grid_score(removed) < 0.1 * grid.grid_score(image)
    small = rng.uniform(size=(1, 12, 40, 3)).astype(np.float32)
    np.testing.assert_array_equal(grid.remove_periodic(small).numpy(), small)
