"""The grid that strided networks draw: measured, and removed.

The decoders of OT (strides 2 to 16) and the gradient of VGG19 (pooling strides 2 to 16) leave
patterns fixed to the pixel grid: faint lattices and checkerboards. All of them repeat every
16 px, where a texture has next to nothing (the mean of each position over all 16×16 cells
averages its content out: one cell's worth of its variance), so

    grid_score      the grid measure: that 16-periodic part's variance times the number of
                    cells, over the image's variance: about 1 for a texture without a grid
                    (the real textures here 0.2-1.1, tiled ones up to 7), far more with one
    remove_periodic an image less its 16-periodic part: a notch filter at the multiples of
                    1/16 that takes the grid and leaves the texture
"""

import numpy as np
import tensorflow as tf

GRID_PERIOD = 16


def periodic_part(image, period=GRID_PERIOD):
    """The `period`-periodic part of an image [H, W, C] in float64: the mean over all whole
    period × period cells of each position in a cell, less its mean; [period, period, C]."""
    image = np.asarray(image, np.float64)
    height, width = (image.shape[0] // period) * period, (image.shape[1] // period) * period
    cells = image[:height, :width].reshape(height // period, period, width // period, period,
                                           -1)
    mean = cells.mean(axis=(0, 2))
    return mean - mean.mean(axis=(0, 1))


def grid_score(images, period=GRID_PERIOD):
    """The grid measure of an image [H, W, 3] or a batch (mean over images): the variance of
    the luminance's periodic part times the number of cells, over the luminance's variance."""
    images = np.asarray(images, np.float32)
    scores = []
    for image in images[None] if images.ndim == 3 else images:
        luminance = image.mean(axis=-1, keepdims=True)
        cells = (image.shape[0] // period) * (image.shape[1] // period)
        variance = np.var(np.asarray(luminance, np.float64))
        part = periodic_part(luminance, period)
        scores.append(np.mean(part ** 2) * cells / variance if variance > 0 else 0.0)
    return float(np.mean(scores))


def remove_periodic(images, period=GRID_PERIOD, dtype=tf.float64):
    """images [B, H, W, C] less their `period`-periodic part (periodic_part of the whole
    cells, repeated over the image), float32; the image's mean stays. Images smaller than a
    cell come back as they are.

    The means are summed in `dtype`, float64 by default, so that an image rolled by whole
    cells gets the same float32 part bit for bit: binned matching (OT's cdf) would turn a
    rounding into a seam. LiteRT has no float64: an exported graph sums in float32."""
    images = tf.cast(images, tf.float32)
    if images.shape[1] is not None and min(images.shape[1], images.shape[2]) < period:
        return images
    shape = tf.shape(images)
    height, width = shape[1] // period * period, shape[2] // period * period
    cells = tf.reshape(tf.cast(images[:, :height, :width], dtype),
                       [shape[0], height // period, period, width // period, period,
                        images.shape[-1]])
    periodic = tf.reduce_mean(cells, [1, 3])
    periodic -= tf.reduce_mean(periodic, [1, 2], keepdims=True)
    tiled = tf.tile(periodic, [1, -(-shape[1] // period), -(-shape[2] // period), 1])
    return images - tf.cast(tiled[:, :shape[1], :shape[2]], tf.float32)
